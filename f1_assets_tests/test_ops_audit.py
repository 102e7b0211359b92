"""pipeline_audit_log: every run gets a start and an end row however it was launched, and on
PostgreSQL the runtime role can only INSERT and SELECT it (deploy/postgres_roles.sql).

Runs here are launched by `dagster asset materialize` in a subprocess with no daemon: the rows come
from the Definitions' executor, inside the run. The `f1-assets` CLI's rows are tested in test_ops_cli.py.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest

from f1_assets import audit
from f1_assets.assets import ingest_jolpica
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import schema_sql, warehouse_from_url
from f1_assets_tests.conftest import PG_BASE, fresh_pg_schema
from f1_assets_tests.helpers import materialize, resources, synthetic_schedule
from f1_assets_tests.jolpica_server import JolpicaReplayServer

REPO = Path(__file__).resolve().parents[1]
ROLES_SCRIPT = REPO / "deploy" / "postgres_roles.sql"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
SCHEDULE = synthetic_schedule(2024, [(1, dt.date(2024, 3, 2), False)])
UNSETTLED = 36500  # F1_SETTLE_DAYS: the calendar fetches no season tables (the replay server has none)


def _audit_rows(url: str):
    return warehouse_from_url(url).query(
        "SELECT dag_run_id, dag_id, partition_key, event_type, status, actor, metadata FROM pipeline_audit_log "
        "ORDER BY timestamp")


def _materialize(env: dict[str, str], select: str, partition: str, log: Path) -> subprocess.Popen:
    """`dagster asset materialize` in the background, its output in a file (a full pipe would block it)."""
    with open(log, "w") as out:
        return subprocess.Popen([DAGSTER, "asset", "materialize", "-m", "f1_assets.definitions", "--select", select,
                                 "--partition", partition], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_dagster_cli_runs_get_start_and_end_rows_without_a_daemon(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    instance = dg.DagsterInstance.from_config(str(home))  # its SQLite storage made once, before two runs race
    with JolpicaReplayServer(SCHEDULE) as server:
        env = dict(os.environ, DAGSTER_HOME=str(home), F1_HOME=str(tmp_path / "f1_home"), F1_WAREHOUSE_URL=url,
                   F1_JOLPICA_URL=server.base_url, F1_SETTLE_DAYS=str(UNSETTLED))
        ok = _materialize(env, "raw_races", "2024", tmp_path / "ok.log")
        # the replay server has no 2023: HTTP 404, a failure
        failed = _materialize(env, "raw_races", "2023", tmp_path / "failed.log")
        ok.wait(timeout=240)
        failed.wait(timeout=240)
    assert ok.returncode == 0, (tmp_path / "ok.log").read_text()[-3000:]
    assert failed.returncode != 0, (tmp_path / "failed.log").read_text()[-3000:]

    rows = _audit_rows(url).sort_values(["partition_key", "event_type"], ascending=[False, False])
    assert rows[["dag_id", "partition_key", "event_type", "status"]].values.tolist() == [
        ["__ASSET_JOB", "2024", "run_start", "started"], ["__ASSET_JOB", "2024", "run_end", "success"],
        ["__ASSET_JOB", "2023", "run_start", "started"], ["__ASSET_JOB", "2023", "run_end", "failure"]]
    assert set(rows["actor"]) == {"manual"}
    assert len(set(rows["dag_run_id"])) == 2
    ends = rows[rows["event_type"] == "run_end"].set_index("partition_key")["metadata"]
    assert '"raw_races": 1' in ends["2024"] and "404" in ends["2023"]

    # the daemon's run-status sensors, run late for the same runs, find the rows there and add none
    monkeypatch.setenv("F1_WAREHOUSE_URL", url)
    res = {"warehouse": WarehouseResource()}
    for run in instance.get_runs():
        start = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)[0].dagster_event
        audit.audit_run_started(dg.build_run_status_sensor_context(
            "audit_run_started", start, instance, run, resources=res))
        if run.status == dg.DagsterRunStatus.SUCCESS:
            end = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0].dagster_event
            audit.audit_run_succeeded(dg.build_run_status_sensor_context(
                "audit_run_succeeded", end, instance, run, resources=res))
        else:
            end = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
            audit.audit_run_failed(dg.build_run_status_sensor_context(
                "audit_run_failed", end, instance, run, resources=res).for_run_failure())
    assert len(_audit_rows(url)) == 4


def test_one_row_per_run_and_event_type_in_both_warehouses(warehouse_url):
    """The unique (dag_run_id, event_type) refuses a second row even to a writer that skips the check."""
    wh = warehouse_from_url(warehouse_url)
    wh.apply_schema()
    run = audit.RunRef("race_pipeline", str(uuid.uuid4()), {"dagster/partition": "2024-01"})
    warehouse = WarehouseResource(url=warehouse_url)
    audit.record_start(warehouse, run)
    audit.record_start(warehouse, run)
    assert wh.count("pipeline_audit_log") == 1
    row = audit.audit_row(run, audit.RUN_START, audit.STARTED, {})
    columns = ", ".join(audit.COLUMNS)
    values = ", ".join("CAST(%s AS JSON)" if c == "metadata" else "%s" for c in audit.COLUMNS)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        wh.execute(f"INSERT INTO pipeline_audit_log ({columns}) VALUES ({values})", [row[c] for c in audit.COLUMNS])


def _url_for(role: str, schema: str) -> str:
    base = urlsplit(PG_BASE)
    netloc = f"{role}@{base.hostname}" + (f":{base.port}" if base.port else "")
    return urlunsplit((base.scheme, netloc, base.path, f"options=-csearch_path%3D{schema}", ""))


def _run_roles_script(schema: str, admin: str, runtime: str) -> None:
    """deploy/postgres_roles.sql as psql runs it: its variables set, `\\ir` inlined (sql/schema.sql is
    `schema_sql(postgres=True)`: test_tables.py checks the file is up to date)."""
    text = ROLES_SCRIPT.read_text()
    for name, value in (("schema", schema), ("admin", admin), ("runtime", runtime)):
        text = text.replace(f':"{name}"', f'"{value}"')
    text = text.replace("\\ir ../sql/schema.sql", schema_sql(postgres=True))
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(text)


FORBIDDEN = {
    "DISABLE TRIGGER": "ALTER TABLE pipeline_audit_log DISABLE TRIGGER pipeline_audit_log_no_update_delete",
    "DROP TRIGGER": "DROP TRIGGER pipeline_audit_log_no_truncate ON pipeline_audit_log",
    "DROP TABLE": "DROP TABLE pipeline_audit_log",
    "UPDATE": "UPDATE pipeline_audit_log SET status = 'success'",
    "DELETE": "DELETE FROM pipeline_audit_log",
    "TRUNCATE": "TRUNCATE pipeline_audit_log",
}


def test_runtime_role_can_only_insert_and_select_the_audit_log(tmp_path):
    """A fresh non-superuser LOGIN role runs the pipeline; the superuser is the admin that owns the log."""
    runtime = f"f1_runtime_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{runtime}" LOGIN')
    try:
        with fresh_pg_schema() as admin_url:
            schema = admin_url.rsplit("%3D", 1)[1]
            admin = psycopg.connect(PG_BASE).info.user
            _run_roles_script(schema, admin, runtime)
            _run_roles_script(schema, admin, runtime)  # twice: idempotent
            runtime_url = _url_for(runtime, schema)

            # the pipeline starts as the runtime role (applies schema.sql, owner-only part skipped) and works
            warehouse_from_url(runtime_url).apply_schema()
            with JolpicaReplayServer(SCHEDULE) as server, dg.instance_for_test() as instance:
                result = materialize([ingest_jolpica.raw_races], partition_key="2024", instance=instance,
                                     resources=resources(runtime_url, str(tmp_path / "blobs"), server.base_url,
                                                         settle_days=UNSETTLED))
            assert result.success
            run = audit.RunRef("season_calendar", result.run_id, {"dagster/partition": "2024"})
            audit.record_start(WarehouseResource(url=runtime_url), run)
            assert warehouse_from_url(runtime_url).count("pipeline_audit_log") == 1

            for what, statement in FORBIDDEN.items():
                with psycopg.connect(runtime_url, autocommit=True) as conn:
                    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="owner|permission denied"):
                        conn.execute(statement)
                        pytest.fail(f"the runtime role could {what}")
            with psycopg.connect(admin_url) as conn:
                owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'pipeline_audit_log' "
                                     "AND schemaname = %s", [schema]).fetchone()[0]
                assert owner == admin
                with pytest.raises(psycopg.Error, match="append-only"):  # even the owner, by the trigger
                    conn.execute("DELETE FROM pipeline_audit_log")
            assert warehouse_from_url(runtime_url).count("pipeline_audit_log") == 1
            assert warehouse_from_url(runtime_url).count("raw_races", {"season": 2024}) == 1
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{runtime}"')
            conn.execute(f'DROP ROLE "{runtime}"')

