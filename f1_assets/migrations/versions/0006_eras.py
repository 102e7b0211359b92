"""Eras (task 14-D): lap_features gains `era` (text, NOT NULL); new tables `era_statistics` (per-era
mean/std of the telemetry features, from the train split) and `circuit_versions` (circuit layouts told
apart by the median telemetry lap distance), both written whole by their ML assets.

The rows already in lap_features get their era from their season here (the regulation periods of
f1_assets/transforms/eras.py, frozen below as they are at this revision), so the column is NOT NULL at
once. DuckDB refuses to alter a column of a table with indexes ("entries that depend on it"): there the
two lap_features indexes are dropped and made again around it (same names and columns as the DDL of
f1_assets/tables makes them). The new tables' DDL is frozen here as the declarations in
f1_assets/tables/ml.yaml made it at this revision (portable: DuckDB and PostgreSQL).
Forward-only, as every step here (no downgrade).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

# (name, first season, last season) as in f1_assets/transforms/eras.py ERAS at this revision
ERAS = (
    ("front_engine", 1950, 1960),
    ("rear_engine_1500cc", 1961, 1965),
    ("three_litre", 1966, 1976),
    ("ground_effect_venturi", 1977, 1982),
    ("turbo", 1983, 1988),
    ("naturally_aspirated", 1989, 1994),
    ("three_litre_v10", 1995, 2005),
    ("v8", 2006, 2013),
    ("hybrid", 2014, 2021),
    ("ground_effect", 2022, 2025),
    ("active_aero", 2026, 9999),
)
LAP_FEATURES_INDEXES = (("lap_features_race_date", "race_date"), ("lap_features_driver_id", "driver_id"))

TABLES = (
    """CREATE TABLE IF NOT EXISTS era_statistics (
    era          TEXT NOT NULL,
    feature      TEXT NOT NULL,
    n            INTEGER NOT NULL,
    mean         DOUBLE PRECISION,
    std          DOUBLE PRECISION,
    train_races  INTEGER NOT NULL,
    first_season INTEGER,
    last_season  INTEGER,
    null_reason  TEXT,
    computed_at  TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (era, feature)
)""",
    """CREATE TABLE IF NOT EXISTS circuit_versions (
    circuit_id            TEXT NOT NULL,
    version_id            TEXT NOT NULL,
    first_season          INTEGER NOT NULL,
    first_round           INTEGER NOT NULL,
    last_season           INTEGER NOT NULL,
    last_round            INTEGER NOT NULL,
    median_lap_distance_m DOUBLE PRECISION,
    change_pct            DOUBLE PRECISION,
    races                 INTEGER NOT NULL,
    laps                  INTEGER NOT NULL,
    PRIMARY KEY (version_id)
)""",
)


def upgrade() -> None:
    duckdb = op.get_bind().dialect.name == "duckdb"
    cases = " ".join(f"WHEN season BETWEEN {first} AND {last} THEN '{name}'" for name, first, last in ERAS)
    if duckdb:
        for index, _ in LAP_FEATURES_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {index}")
    # NOT NULL before the UPDATE, through a temporary default: DuckDB refuses to build an index in a
    # transaction that altered a table after updating it ("outstanding updates"); the default goes again
    op.add_column("lap_features", sa.Column("era", sa.Text(), nullable=True, server_default="unknown"))
    op.execute("ALTER TABLE lap_features ALTER COLUMN era SET NOT NULL")
    op.execute(f"UPDATE lap_features SET era = CASE {cases} ELSE 'unknown' END")
    op.execute("ALTER TABLE lap_features ALTER COLUMN era DROP DEFAULT")
    if duckdb:
        for index, column in LAP_FEATURES_INDEXES:
            op.execute(f"CREATE INDEX IF NOT EXISTS {index} ON lap_features ({column})")
    for ddl in TABLES:
        op.execute(ddl)
