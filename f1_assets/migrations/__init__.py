"""Versioned schema migrations of the warehouse: Alembic, driven from code (no alembic.ini).

The steps are `versions/NNNN_<what>.py` (revision id = the four digits, one linear chain, forward
only); the applied version is Alembic's `alembic_version` table in the warehouse. `upgrade(warehouse)`
brings a warehouse to `HEAD`, on DuckDB (SQLAlchemy dialect `duckdb_engine`) and PostgreSQL
(`postgresql+psycopg`, under an advisory lock so concurrent first starts queue):

- at head: one version query, nothing else (no SQLAlchemy, no Alembic import);
- empty: every warehouse table is created from the declarations (`f1_assets.tables.WAREHOUSE_TABLES`;
  the Parquet tables live in the blob store) plus the PostgreSQL-only objects (`postgres_objects.sql`),
  and HEAD is recorded: the script `schema_script()`, which is also the generated `sql/schema.sql`
  (for psql, deploy/postgres_roles.sql);
- holding the tables of release 0.1 but no version: recorded as `BASELINE`, then upgraded;
- behind: each pending step in its own transaction with its version update.

Called by `f1_assets.storage.warehouse` (`Warehouse.apply_schema`, once per process per warehouse)
and by `f1-assets migrate`.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from f1_assets.settings import redact
from f1_assets.tables import WAREHOUSE_TABLES

if TYPE_CHECKING:
    from f1_assets.storage.warehouse import Warehouse

SCRIPT_LOCATION = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"  # Alembic's default name and shape
POSTGRES_ONLY_MARKER = "-- @postgres-only"
BASELINE = "0001"
HEAD = max(p.name[:4] for p in (SCRIPT_LOCATION / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
# the tables of release 0.1 (the baseline); a warehouse holding some of them but no version is not adopted
BASELINE_TABLES = ("raw_races", "raw_results", "raw_sprint_results", "raw_qualifying", "raw_laps",
                   "raw_pit_stops", "fastf1_laps", "jolpica_request_log", "lap_features", "telemetry_features",
                   "driver_profiles", "pipeline_audit_log")
ADVISORY_LOCK = "SELECT pg_advisory_lock(hashtext('f1_assets.schema'))"

_HEADER = """\
-- GENERATED from f1_assets/tables (the table declarations) and f1_assets/migrations: do not edit.
-- Regenerate with `f1-assets migrate --print-sql > sql/schema.sql`; a test fails when it differs.
--
-- The schema of an empty warehouse at version {head}, as the pipeline creates it at its first start
-- (and as deploy/postgres_roles.sql makes it with psql). A warehouse that already holds tables is
-- upgraded in place by the versioned migrations instead (`f1-assets migrate`): this script records
-- a version only when it finds no table, so applying it to an older warehouse leaves that to them.
-- Above the `@postgres-only` marker is the portable part that DuckDB (the embedded default) applies.
--
-- Units: times and durations in milliseconds (suffix _ms), fuel in kg, speed in km/h, throttle in %.
-- Every race-partitioned table carries the partition columns season and round; a partition write
-- replaces exactly the rows of one (season, round) in one transaction.
"""


class MigrationError(dg.Failure, RuntimeError):
    """The warehouse cannot be brought to the schema of this code (a partial or newer schema, a role
    that may not create or alter the tables). Inside a step it is a `dg.Failure(allow_retries=False)`:
    retrying cannot fix it. Its message is one redacted line."""

    def __init__(self, message: str):
        super().__init__(description=redact(message), allow_retries=False)


# How long a schema change waits for a table another session holds (a long read, an idle transaction)
# before giving up with a message naming the wait, instead of hanging and stalling readers behind it.
LOCK_TIMEOUT = "30s"


@dataclass(frozen=True)
class Outcome:
    """What `upgrade` did: "current" (nothing), "created" (empty → head), "adopted" (release 0.1
    recorded as the baseline, then upgraded) or "upgraded"."""

    action: str
    from_version: str | None
    to_version: str
    steps: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.action == "current":
            return f"schema at version {self.to_version}: nothing to do"
        if self.action == "created":
            return f"empty warehouse: created every table at version {self.to_version}"
        start = f"release 0.1 tables recorded as version {BASELINE}, then " if self.action == "adopted" else ""
        return f"{start}upgraded {self.from_version} → {self.to_version}: " + ", ".join(self.steps)


def schema_script(engine: str) -> str:
    """The SQL that makes an empty warehouse at HEAD: version, tables, then (PostgreSQL) its own objects."""
    parts = [
        _HEADER.format(head=HEAD),
        "-- the schema version (Alembic's table), recorded only in a warehouse with no table yet",
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (\n    version_num VARCHAR(32) NOT NULL,\n"
        f"    CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num)\n);",
        f"INSERT INTO {VERSION_TABLE} (version_num) SELECT '{HEAD}'\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM {VERSION_TABLE})\n"
        "  AND NOT EXISTS (SELECT 1 FROM information_schema.tables\n"
        "                  WHERE table_schema = current_schema() AND table_name = 'raw_races');\n",
    ]
    for declared in WAREHOUSE_TABLES.values():
        about = textwrap.wrap(f"{declared.name}: {declared.description}", 105)
        parts.append("".join(f"-- {line}\n" for line in about) + declared.ddl(engine))
    if engine == "postgres":
        parts.append(f"{POSTGRES_ONLY_MARKER}\n\n{(SCRIPT_LOCATION / 'postgres_objects.sql').read_text()}")
    return "\n".join(parts)


def upgrade(warehouse: Warehouse) -> Outcome:
    """Bring `warehouse` to HEAD (see the module docstring); one version query when it is there."""
    if warehouse.schema_version() == HEAD:
        return Outcome("current", HEAD, HEAD)
    return _upgrade_locked(warehouse)


def _upgrade_locked(warehouse: Warehouse) -> Outcome:
    """`_steps` with database refusals as one line: a lock wait that timed out is a WarehouseError (it may
    pass later), anything else the database refuses (permissions, no schema) a MigrationError."""
    import duckdb
    import psycopg
    import sqlalchemy as sa

    from f1_assets.storage.warehouse import WarehouseError

    try:
        return _steps(warehouse)
    except (sa.exc.DBAPIError, psycopg.Error, duckdb.Error) as exc:
        cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        problem = " ".join(str(cause).split()) or type(cause).__name__
        if "lock timeout" in problem:
            raise WarehouseError(redact(
                f"schema upgrade of the {warehouse.kind} warehouse waited {LOCK_TIMEOUT} for a table another session "
                f"holds ({problem}); nothing was changed: end that session's transaction and run `f1-assets migrate`"
            )) from None
        raise MigrationError(
            f"schema upgrade of the {warehouse.kind} warehouse refused by the database: {problem}. Nothing was "
            "changed by the refused step. The role of F1_WAREHOUSE_URL needs CREATE on its schema and must own the "
            "f1-assets tables (see deploy/postgres_roles.sql)"
        ) from None


def _steps(warehouse: Warehouse) -> Outcome:
    import sqlalchemy as sa
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = _config()
    with warehouse.sqlalchemy_connection() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(ADVISORY_LOCK)  # held until the connection closes
            conn.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")  # for the DDL below, not the queue above
            conn.commit()
        current = MigrationContext.configure(conn).get_current_revision()
        present = set(conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )).scalars())
        conn.commit()
        if current == HEAD:  # another process got here first
            return Outcome("current", HEAD, HEAD)
        if current is None and not present & set(WAREHOUSE_TABLES):
            with conn.begin():  # one transaction; by the driver itself: many statements, `%` no placeholders
                conn.connection.driver_connection.execute(schema_script(warehouse.kind))
            return Outcome("created", None, HEAD)
        script = ScriptDirectory.from_config(config)
        if current is None:
            missing = [t for t in BASELINE_TABLES if t not in present]
            if missing:
                raise MigrationError(
                    f"the {warehouse.kind} warehouse holds some f1-assets tables but no schema version, and lacks "
                    f"{missing} of release 0.1: not a release-0.1 warehouse; move its tables away or complete them"
                )
        else:
            try:
                script.get_revision(current)
            except CommandError:
                raise MigrationError(
                    f"the {warehouse.kind} warehouse's schema is at version {current!r}, which this code does not "
                    f"know (its head is {HEAD}): it was upgraded by a newer release; run that release"
                ) from None
        config.attributes["connection"] = conn
        if current is None:
            command.stamp(config, BASELINE)
            conn.commit()
        start = current or BASELINE
        steps = tuple(Path(rev.path).stem for rev in reversed(list(script.iterate_revisions(HEAD, start))))
        command.upgrade(config, HEAD)
        conn.commit()
        return Outcome("adopted" if current is None else "upgraded", start, HEAD, steps)


def drift(warehouse: Warehouse) -> list[str]:
    """How the warehouse's tables differ from the declarations at head (a column dropped or added by hand,
    a table missing): one line per table, empty when they agree. Run by `f1-assets migrate`."""
    lines = []
    for name, table in WAREHOUSE_TABLES.items():
        stored, declared = warehouse.columns(name), table.column_names
        if not stored:
            lines.append(f"{name}: missing")
            continue
        lacks, extra = [c for c in declared if c not in stored], [c for c in stored if c not in declared]
        if lacks or extra:
            lines.append(f"{name}: " + "; ".join(part for part in (
                f"lacks declared column(s) {lacks}" if lacks else "", f"has undeclared column(s) {extra}" if extra
                else "") if part))
    return lines


@functools.cache
def _register_duckdb() -> None:
    """Alembic finds a dialect's DDL implementation by name; DuckDB's is Alembic's default one."""
    from alembic.ddl.impl import DefaultImpl

    type("DuckDBImpl", (DefaultImpl,), {"__dialect__": "duckdb"})


def _config():
    from alembic.config import Config

    _register_duckdb()
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config
