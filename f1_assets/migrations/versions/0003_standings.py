"""raw_driver_standings, raw_constructor_standings: the championship standings after each round (Jolpica
`/{season}/{round}/driverStandings` and `/constructorStandings`), new tables, empty until their races are
materialized (task 14-A).

The DDL is frozen here as the declarations in f1_assets/tables/raw.yaml made it at this revision (portable:
DuckDB and PostgreSQL); a later change of those declarations ships as its own step. Forward-only, as every
step here (no downgrade).
"""

from alembic import op

revision = "0003"
down_revision = "0002"

TABLES = (
    """CREATE TABLE IF NOT EXISTS raw_driver_standings (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    driver_id       TEXT NOT NULL,
    position        INTEGER,
    position_text   TEXT NOT NULL,
    points          DOUBLE PRECISION NOT NULL,
    wins            INTEGER NOT NULL,
    constructor_ids TEXT,
    PRIMARY KEY (season, round, driver_id)
)""",
    """CREATE TABLE IF NOT EXISTS raw_constructor_standings (
    season         INTEGER NOT NULL,
    round          INTEGER NOT NULL,
    constructor_id TEXT NOT NULL,
    position       INTEGER,
    position_text  TEXT NOT NULL,
    points         DOUBLE PRECISION NOT NULL,
    wins           INTEGER NOT NULL,
    PRIMARY KEY (season, round, constructor_id)
)""",
)


def upgrade() -> None:
    for ddl in TABLES:
        op.execute(ddl)
