"""Baseline: the schema of release 0.1 (its sql/schema.sql, kept as f1_assets_tests/data/schema_v0_1.sql).

Release 0.1 created its tables at every start and recorded no version. `f1_assets.migrations.upgrade`
records a warehouse holding those tables as this revision, then upgrades it; an empty warehouse is
created at head from the declarations instead. So no database is ever built through this step.
"""

revision = "0001"
down_revision = None


def upgrade() -> None:
    pass
