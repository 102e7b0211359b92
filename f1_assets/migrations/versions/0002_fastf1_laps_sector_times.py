"""fastf1_laps: sector times (FastF1 Sector1Time/Sector2Time/Sector3Time), whole ms, nullable.

Rows written before this step keep NULL sector times until their race is materialized again.
Forward-only, as every step here (no downgrade).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    for sector in (1, 2, 3):
        op.add_column("fastf1_laps", sa.Column(f"sector{sector}_time_ms", sa.BigInteger(), nullable=True))
