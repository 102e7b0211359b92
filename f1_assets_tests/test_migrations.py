"""Schema migrations on DuckDB and PostgreSQL: a warehouse of release 0.1 (its sql/schema.sql, kept in
data/schema_v0_1.sql) holding 2023-01 is upgraded in place with every row intact, once; an empty one is
created at head with the same structure; concurrent first starts create it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import numpy as np
import pandas as pd
import psycopg
import pytest

from f1_assets import cli, migrations
from f1_assets.migrations import BASELINE, HEAD, MigrationError
from f1_assets.partitions import parse_race_key
from f1_assets.resources.fastf1 import FastF1Resource
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import TABLES, WAREHOUSE_TABLES
from f1_assets.transforms import jolpica
from f1_assets.transforms.fastf1_laps import laps_to_rows
from f1_assets.transforms.features import build_lap_features, build_telemetry_features
from f1_assets.transforms.profiles import driver_profiles
from f1_assets_tests.conftest import PG_BASE, fresh_pg_schema
from f1_assets_tests.helpers import replay_pages

SCHEMA_V0_1 = (Path(__file__).parent / "data" / "schema_v0_1.sql").read_text()
SECTORS = ["sector1_time_ms", "sector2_time_ms", "sector3_time_ms"]


# ------------------------------------------------------------------------- a release-0.1 warehouse with data


def _telemetry_samples() -> pd.DataFrame:
    """Two cars, two laps, five samples a lap: raw telemetry as the Parquet holds it."""
    n = 20
    return pd.DataFrame({
        "DriverNumber": np.repeat([1, 44], 10), "Driver": np.repeat(["VER", "HAM"], 10),
        "LapNumber": np.tile(np.repeat([1.0, 2.0], 5), 2), "SessionTime": pd.to_timedelta(np.arange(n), unit="s"),
        "Speed": np.linspace(100, 300, n), "RPM": 11_000.0, "nGear": 7.0, "Throttle": np.linspace(0, 100, n),
        "Brake": np.tile([0.0, 1.0, 1.0, 0.0, 1.0], 4), "DRS": 12.0, "X": 0.0, "Y": 0.0, "Z": 0.0,
        "Interpolated": False,
    })


@pytest.fixture(scope="module")
def release_0_1_rows(shared_data, recorded_upstreams, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Rows of every table in release 0.1's shape: 2023-01 from the recorded Jolpica pages (raw tables,
    lap and telemetry features, profiles), Baku 2018 through FastF1 (fastf1_laps without sector times)."""
    replay = shared_data / "jolpica-replay"
    schedule = jolpica.parse_schedule(replay_pages(replay, "ergast@f1@2023.json"))
    results = jolpica.parse_results(replay_pages(replay, "ergast@f1@2023@1@results.json"))
    laps = jolpica.parse_laps(replay_pages(replay, "ergast@f1@2023@1@laps.json"))
    pit_stops = jolpica.parse_pit_stops(replay_pages(replay, "ergast@f1@2023@1@pitstops.json"))
    features = build_lap_features(schedule[schedule["round"] == 1].iloc[0], results, laps, pit_stops)
    baku = FastF1Resource(livetiming_url=recorded_upstreams.livetiming_url,
                          schedule_url=recorded_upstreams.schedule_url, jolpica_url=recorded_upstreams.jolpica_url,
                          cache_dir=str(tmp_path_factory.mktemp("fastf1"))).load_race(parse_race_key("2018-04"))
    fastf1 = laps_to_rows(baku.session.laps, 2018, 4, baku.session.results["DriverId"].to_dict())
    now = pd.Timestamp("2024-05-01 12:00", tz="UTC")
    audit = pd.DataFrame({
        "audit_id": [str(uuid.uuid4()), str(uuid.uuid4())], "timestamp": [now, now + pd.Timedelta(minutes=3)],
        "dag_id": "race_pipeline", "dag_run_id": "run-1", "task_id": None, "partition_key": "2023-01",
        "event_type": ["run_start", "run_end"], "actor": "cli:host", "resource": [None, "raw_laps"],
        "action": ["run", "write"], "status": ["started", "success"],
        "metadata": ['{"rows_written": {}}', '{"rows_written": {"raw_laps": 1055}}'], "git_commit_sha": "abc",
        "container_image_digest": None,
    })
    return {
        "raw_races": schedule, "raw_results": results,
        "raw_sprint_results": jolpica.parse_sprint([]),
        "raw_qualifying": jolpica.parse_qualifying(replay_pages(replay, "ergast@f1@2023@1@qualifying.json")),
        "raw_laps": laps, "raw_pit_stops": pit_stops,
        "fastf1_laps": fastf1.drop(columns=SECTORS),
        "lap_features": features,
        "telemetry_features": build_telemetry_features(_telemetry_samples(), season=2023, rnd=1),
        "driver_profiles": driver_profiles(features, results).assign(updated_at=now),
        "jolpica_request_log": pd.DataFrame({"requested_at": [1_700_000_000.5, 1_700_000_001.25]}),
        "pipeline_audit_log": audit,
    }


@pytest.fixture(params=["duckdb", "postgres"])
def engine_urls(request, tmp_path) -> Iterator[tuple[str, str]]:
    """Two empty warehouses of one engine: (the old one, a fresh one)."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'old.duckdb'}", f"duckdb:///{tmp_path / 'fresh.duckdb'}"
        return
    with fresh_pg_schema() as old, fresh_pg_schema() as fresh:
        yield old, fresh


def _path(url: str) -> str:
    return url[len("duckdb://"):]


def _plain(frame: pd.DataFrame) -> list[tuple]:
    """Rows as tuples of plain Python values (None for every kind of null), for a driver to insert."""
    return [tuple(None if pd.isna(v) else (v.item() if isinstance(v, np.generic) else v) for v in row)
            for row in frame.astype(object).itertuples(index=False)]


_COLUMNS_OF = ("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
               "AND table_name = ? ORDER BY ordinal_position")


def _release_0_1_shape(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The frame cut to the columns release 0.1's table had (today's transforms write later columns too)."""
    return frame[[c for c in frame.columns if c in columns]]


def _make_release_0_1(url: str, rows: dict[str, pd.DataFrame]) -> None:
    """The warehouse release 0.1 made at its start, loaded with `rows`, written without f1_assets."""
    if url.startswith("duckdb://"):
        con = duckdb.connect(_path(url))
        con.execute(SCHEMA_V0_1.split("-- @postgres-only", 1)[0])
        for name, frame in rows.items():
            frame = _release_0_1_shape(frame, [r[0] for r in con.execute(_COLUMNS_OF, [name]).fetchall()])
            con.register("staging", frame)
            con.execute(f"INSERT INTO {name} ({', '.join(frame.columns)}) SELECT * FROM staging")
            con.unregister("staging")
        con.close()
        return
    with psycopg.connect(url) as conn:
        conn.execute(SCHEMA_V0_1)
        for name, frame in rows.items():
            frame = _release_0_1_shape(frame, [r[0] for r in conn.execute(_COLUMNS_OF.replace("?", "%s"), [name])])
            marks = ", ".join(["%s"] * len(frame.columns))
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {name} ({', '.join(frame.columns)}) VALUES ({marks})", _plain(frame))


def _fetch(url: str, sql: str) -> pd.DataFrame:
    """A query on a connection of its own: no f1_assets code (which would migrate first)."""
    if url.startswith("duckdb://"):
        con = duckdb.connect(_path(url))
        try:
            return con.execute(sql).df()
        finally:
            con.close()
    with psycopg.connect(url) as conn:
        cur = conn.execute(sql)
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def _columns(url: str) -> dict[str, list[str]]:
    got = _fetch(url, "SELECT table_name, column_name FROM information_schema.columns "
                      "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")
    return {name: group["column_name"].tolist() for name, group in got.groupby("table_name")}


def _snapshot(url: str, columns: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    """Every row of every declared table, in the given columns, in a stable order."""
    return {name: _fetch(url, f"SELECT {', '.join(columns[name])} FROM {name} "
                              f"ORDER BY {', '.join(TABLES[name].primary_key or columns[name])}")
            for name in WAREHOUSE_TABLES if name in columns}  # (tables a later release added are not in 0.1)


def _structure(url: str) -> dict[str, list]:
    """Columns (type, nullability, default), keys, indexes and triggers, named by what they are, not by name."""
    # (in column order, without ordinal_position: PostgreSQL keeps the number of a column a migration dropped)
    columns = _fetch(url, "SELECT table_name, column_name, data_type, is_nullable, column_default, "
                          "character_maximum_length FROM information_schema.columns WHERE table_schema = "
                          "current_schema() ORDER BY table_name, ordinal_position")
    if url.startswith("duckdb://"):
        keys = _fetch(url, "SELECT table_name, constraint_type, constraint_column_names::VARCHAR AS cols FROM "
                           "duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')")
        indexes = _fetch(url, "SELECT table_name, is_unique, expressions FROM duckdb_indexes()")
        triggers = pd.DataFrame()
    else:
        keys = _fetch(url, "SELECT tc.table_name, tc.constraint_type, array_agg(k.column_name::text ORDER BY "
                           "k.ordinal_position)::text AS cols FROM information_schema.table_constraints tc JOIN "
                           "information_schema.key_column_usage k USING (constraint_schema, constraint_name, "
                           "table_name) WHERE tc.table_schema = current_schema() AND tc.constraint_type IN "
                           "('PRIMARY KEY', 'UNIQUE') GROUP BY tc.table_name, tc.constraint_type, tc.constraint_name")
        indexes = _fetch(url, "SELECT tablename, regexp_replace(indexdef, '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', "
                              "'CREATE \\1INDEX ON ') AS def FROM pg_indexes WHERE schemaname = current_schema()")
        triggers = _fetch(url, "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) LIKE '%append_only()' AS fn "
                               "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
                               "AND c.relnamespace = current_schema()::regnamespace")
    return {what: sorted(map(tuple, frame.astype(str).values.tolist()))
            for what, frame in (("columns", columns), ("keys", keys), ("indexes", indexes), ("triggers", triggers))}


def _ddl_fingerprint(url: str) -> str:
    """Changes with any DDL: the DuckDB file's bytes; PostgreSQL's catalog rows (their xmin) of the schema."""
    if url.startswith("duckdb://"):
        return hashlib.sha256(Path(_path(url)).read_bytes()).hexdigest()
    rows = _fetch(url, """
        SELECT 'class', c.relname, c.xmin::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace
        UNION ALL SELECT 'attribute', c.relname || '.' || a.attname, a.xmin::text FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace = current_schema()::regnamespace
        UNION ALL SELECT 'trigger', t.tgname, t.xmin::text FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = current_schema()::regnamespace
        UNION ALL SELECT 'function', p.proname, p.xmin::text FROM pg_proc p
            WHERE p.pronamespace = current_schema()::regnamespace
        UNION ALL SELECT 'version', version_num, '' FROM alembic_version""")
    assert len(rows) > 100
    return hashlib.sha256(rows.sort_values(list(rows.columns)).to_csv().encode()).hexdigest()


@contextlib.contextmanager
def _version_reader(url: str) -> Iterator[str]:
    """The URL of a fresh LOGIN role that may only read alembic_version in `url`'s schema."""
    role, schema = f"f1_reader_{uuid.uuid4().hex[:8]}", url.rsplit("%3D", 1)[1]
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        conn.execute(f'GRANT SELECT ON "{schema}".alembic_version TO "{role}"')
    base = urlsplit(PG_BASE)
    netloc = f"{role}@{base.hostname}" + (f":{base.port}" if base.port else "")
    try:
        yield urlunsplit((base.scheme, netloc, base.path, f"options=-csearch_path%3D{schema}", ""))
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


# ------------------------------------------------------------------------- the upgrade


@pytest.mark.shared_data
def test_release_0_1_warehouse_is_upgraded_in_place_once(engine_urls, release_0_1_rows):
    old_url, fresh_url = engine_urls
    _make_release_0_1(old_url, release_0_1_rows)
    old_columns = _columns(old_url)
    before = _snapshot(old_url, old_columns)
    assert {name: len(frame) for name, frame in before.items()} == {
        name: len(frame) for name, frame in release_0_1_rows.items()}
    assert len(before["raw_laps"]) == 1055 and len(before["fastf1_laps"]) == 848

    wh = warehouse_from_url(old_url)
    assert wh.schema_version() is None
    outcome = wh.apply_schema()
    assert (outcome.action, outcome.from_version, outcome.to_version) == ("adopted", BASELINE, HEAD)
    assert outcome.steps == ("0002_fastf1_laps_sector_times", "0003_standings", "0004_lap_weather_sectors",
                             "0005_telemetry_kinematics", "0006_eras")

    # every row intact, table by table, value by value
    after = _snapshot(old_url, old_columns)
    for name in before:
        pd.testing.assert_frame_equal(after[name], before[name], obj=name)
    # the new columns, at the end, NULL for the rows written before
    new_columns = _columns(old_url)
    added = {name: [c for c in cols if c not in old_columns.get(name, [])] for name, cols in new_columns.items()}
    assert added["alembic_version"] == ["version_num"] and added["fastf1_laps"][:3] == SECTORS
    assert {"raw_driver_standings", "raw_constructor_standings", "era_statistics", "circuit_versions"} <= set(added)
    for name in WAREHOUSE_TABLES:  # every table has exactly the declared columns, in the declared order
        assert new_columns[name] == TABLES[name].column_names, name
    eras = _fetch(old_url, "SELECT DISTINCT era FROM lap_features")["era"].tolist()
    assert eras == ["ground_effect"]  # the NOT NULL column added by 0006 is filled for the rows written before
    nulls = _fetch(old_url, "SELECT COUNT(*) AS n, " + ", ".join(f"COUNT({c}) AS {c}" for c in SECTORS)
                   + " FROM fastf1_laps")
    assert nulls.iloc[0].tolist() == [848, 0, 0, 0]
    assert _fetch(old_url, "SELECT version_num FROM alembic_version")["version_num"].tolist() == [HEAD]

    # a second upgrade is a no-op: no DDL, the version unchanged (on PostgreSQL it even runs as a role
    # that may only read the version table: any DDL, IF NOT EXISTS included, would be refused)
    fingerprint = _ddl_fingerprint(old_url)
    assert migrations.upgrade(warehouse_from_url(old_url)).action == "current"
    assert _ddl_fingerprint(old_url) == fingerprint
    if not old_url.startswith("duckdb://"):
        with _version_reader(old_url) as reader_url:  # (its GRANT changes the catalog: after the fingerprint)
            assert migrations.upgrade(warehouse_from_url(reader_url)).action == "current"
    assert warehouse_from_url(old_url).schema_version() == HEAD

    # the upgraded warehouse writes the new columns; a fresh one made from the declarations is the same
    rows = release_0_1_rows["fastf1_laps"].assign(**{c: pd.array([1000] * 848, dtype="Int64") for c in SECTORS})
    assert wh.replace_partitions("fastf1_laps", rows, [{"season": 2018, "round": 4}]) == 848
    assert wh.count("fastf1_laps") == 848
    fresh = warehouse_from_url(fresh_url)
    assert fresh.apply_schema().action == "created"
    assert _structure(fresh_url) == _structure(old_url)


def test_concurrent_first_starts_create_the_schema_once_on_postgres(pg_url):
    outcomes, errors = [], []

    def start() -> None:
        try:
            outcomes.append(warehouse_from_url(pg_url).apply_schema().action)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(outcomes) == ["created"] + ["current"] * 5
    assert _fetch(pg_url, "SELECT version_num FROM alembic_version")["version_num"].tolist() == [HEAD]


FIRST_START = textwrap.dedent(
    """
    import sys
    from f1_assets.storage.warehouse import warehouse_from_url
    print(warehouse_from_url(sys.argv[1]).apply_schema().action)
    """
)


def test_concurrent_first_starts_create_the_schema_once_on_duckdb(duckdb_url):
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_START, duckdb_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [proc.communicate(timeout=180) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["created", "current", "current", "current"]
    assert _fetch(duckdb_url, "SELECT version_num FROM alembic_version")["version_num"].tolist() == [HEAD]


def test_a_warehouse_it_cannot_upgrade_is_refused_naming_why(warehouse_url):
    def execute(sql: str) -> None:
        if warehouse_url.startswith("duckdb://"):
            duckdb.connect(_path(warehouse_url)).execute(sql).close()  # DuckDB's execute returns the connection
            return
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            conn.execute(sql)

    execute(TABLES["raw_laps"].ddl("duckdb"))  # some f1-assets table, no version
    with pytest.raises(MigrationError, match=r"holds some f1-assets tables but no schema version, and lacks "
                                             r"\['raw_races', 'raw_results'"):
        warehouse_from_url(warehouse_url).apply_schema()
    execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    execute("INSERT INTO alembic_version VALUES ('0099')")
    with pytest.raises(MigrationError, match=f"at version '0099', which this code does not know \\(its head is {HEAD}"):
        warehouse_from_url(warehouse_url).apply_schema()


def test_the_schema_is_checked_once_per_process(warehouse_url):
    assert warehouse_from_url(warehouse_url).apply_schema().action == "created"
    rename = "ALTER TABLE alembic_version RENAME TO alembic_version_aside"
    if warehouse_url.startswith("duckdb://"):
        duckdb.connect(_path(warehouse_url)).execute(rename).close()
    else:
        with psycopg.connect(warehouse_url, autocommit=True) as conn:
            conn.execute(rename)
    # another Warehouse object of the same database in this process: not even the version query
    other = warehouse_from_url(warehouse_url)
    other.ensure_schema()
    assert other.count("raw_laps") == 0
    assert other.schema_version() is None  # the version table is still gone: nothing looked for it


def test_f1_assets_migrate_command(duckdb_url, monkeypatch, capsys):
    monkeypatch.setenv("F1_WAREHOUSE_URL", duckdb_url)
    assert cli.main(["migrate"]) == 0
    assert "duckdb warehouse: empty warehouse: created every table at version " + HEAD in capsys.readouterr().err
    assert cli.main(["migrate"]) == 0
    assert f"schema at version {HEAD}: nothing to do" in capsys.readouterr().err
    assert cli.main(["migrate", "--print-sql"]) == 0
    assert capsys.readouterr().out == (Path(__file__).resolve().parents[1] / "sql" / "schema.sql").read_text()

    # a column dropped by hand at the head version: migrate names the drift (exit 1) instead of "nothing to do"
    duckdb.connect(_path(duckdb_url)).execute("ALTER TABLE raw_laps DROP COLUMN position").close()
    assert cli.main(["migrate"]) == 1
    assert "raw_laps: lacks declared column(s) ['position']" in capsys.readouterr().err


def test_the_versions_are_one_chain_ending_at_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [HEAD]
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert chain == [BASELINE, "0002", "0003", "0004", "0005", "0006"] and chain[-1] == HEAD
    for rev in script.walk_revisions():
        assert Path(rev.path).name.startswith(f"{rev.revision}_")  # the file's number is its revision id


def test_a_role_that_may_not_alter_the_tables_gets_one_line_and_no_retry(pg_url):
    """A release-0.1 warehouse upgraded by a role that may only read: a MigrationError (non-retryable
    dg.Failure) naming the database's refusal and what the role needs; the schema stays as it was."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(SCHEMA_V0_1)
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute(f"INSERT INTO alembic_version VALUES ('{BASELINE}')")  # 0.1, stamped: one step to go
    with _version_reader(pg_url) as reader_url:
        with pytest.raises(MigrationError) as refused:
            warehouse_from_url(reader_url).apply_schema()
    message = str(refused.value)
    assert "refused by the database: must be owner of table fastf1_laps" in message
    assert "needs CREATE on its schema and must own the f1-assets tables" in message and "\n" not in message
    assert refused.value.allow_retries is False
    assert "sector1_time_ms" not in _columns(pg_url)["fastf1_laps"]  # nothing half-done
