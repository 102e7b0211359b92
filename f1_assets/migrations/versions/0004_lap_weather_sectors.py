"""Weather per lap (FastF1 WeatherData stream) in fastf1_laps; sector times and weather in lap_features.

fastf1_laps gains the weather of each lap (air/track temperature, humidity, pressure, wind, rainfall);
lap_features gains the sector times (from fastf1_laps) and the weather with its bins `weather` (per lap)
and `race_weather` (per race). All nullable: rows written before this step keep NULL until their race
is materialized again (then `weather`/`race_weather` are at least 'UNKNOWN').
Forward-only, as every step here (no downgrade).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

# the column order of f1_assets/tables (appended last, where ALTER TABLE ADD COLUMN puts them)
FASTF1_LAPS = [
    ("air_temp_c", sa.DOUBLE_PRECISION),
    ("track_temp_c", sa.DOUBLE_PRECISION),
    ("humidity_pct", sa.DOUBLE_PRECISION),
    ("pressure_mbar", sa.DOUBLE_PRECISION),
    ("wind_speed_mps", sa.DOUBLE_PRECISION),
    ("wind_direction_deg", sa.DOUBLE_PRECISION),
    ("rainfall", sa.Boolean),
]
LAP_FEATURES = [
    ("sector1_ms", sa.BigInteger),
    ("sector2_ms", sa.BigInteger),
    ("sector3_ms", sa.BigInteger),
    ("air_temp_c", sa.DOUBLE_PRECISION),
    ("track_temp_c", sa.DOUBLE_PRECISION),
    ("humidity_pct", sa.DOUBLE_PRECISION),
    ("rainfall", sa.Boolean),
    ("weather", sa.Text),
    ("race_weather", sa.Text),
]


def upgrade() -> None:
    for table, columns in (("fastf1_laps", FASTF1_LAPS), ("lap_features", LAP_FEATURES)):
        for name, kind in columns:
            op.add_column(table, sa.Column(name, kind(), nullable=True))
