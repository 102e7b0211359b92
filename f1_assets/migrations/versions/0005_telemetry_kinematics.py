"""telemetry_features: track position, g-forces and corners per driver-lap (issue 14).

telemetry_features gains the lap's distance (speed integrated over time, as FastF1's `add_distance`),
the peak lateral / braking / acceleration g (from speed and the X,Y path: f1_assets/transforms/kinematics.py),
the count of samples beyond the design's |g| <= 6 (flagged, never dropped) and the corner summary from
FastF1's circuit info (corners passed, slowest corner, its minimum speed). All nullable: rows written
before this step keep NULL until their race is materialized again; the corner columns stay NULL for a
race whose circuit info is not available.
Forward-only, as every step here (no downgrade).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

# the column order of f1_assets/tables/features.yaml (appended last, where ALTER TABLE ADD COLUMN puts them)
TELEMETRY_FEATURES = [
    ("lap_distance_m", sa.DOUBLE_PRECISION),
    ("max_lateral_g", sa.DOUBLE_PRECISION),
    ("max_braking_g", sa.DOUBLE_PRECISION),
    ("max_accel_g", sa.DOUBLE_PRECISION),
    ("g_over_limit_samples", sa.Integer),
    ("corners_passed", sa.Integer),
    ("slowest_corner", sa.Integer),
    ("min_corner_speed_kmh", sa.DOUBLE_PRECISION),
]


def upgrade() -> None:
    for name, kind in TELEMETRY_FEATURES:
        op.add_column("telemetry_features", sa.Column(name, kind(), nullable=True))
