"""pipeline_audit_log on PostgreSQL: the run-status sensors append rows for start, success and failure,
once per run whoever else wrote them; the database itself refuses UPDATE, DELETE and TRUNCATE."""

import json
import socket

import dagster as dg
import psycopg
import pytest

from f1_assets import audit
from f1_assets.assets import features, ingest_jolpica
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.helpers import materialize, materialize_calendar, resources

pytestmark = pytest.mark.shared_data


def _event(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> dg.DagsterEvent:
    return instance.all_logs(run_id, of_type=event_type)[0].dagster_event


def _audit(instance, result, warehouse_url):
    """Run the audit sensors for a finished run exactly as the daemon would."""
    run = instance.get_run_by_id(result.run_id)
    res = {"warehouse": WarehouseResource(url=warehouse_url)}
    started = dg.build_run_status_sensor_context(
        "audit_run_started", _event(instance, run.run_id, dg.DagsterEventType.RUN_START), instance, run,
        resources=res)
    audit.audit_run_started(started)
    if result.success:
        end = dg.build_run_status_sensor_context(
            "audit_run_succeeded", _event(instance, run.run_id, dg.DagsterEventType.RUN_SUCCESS), instance, run,
            resources=res)
        audit.audit_run_succeeded(end)
    else:
        end = dg.build_run_status_sensor_context(
            "audit_run_failed", _event(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE), instance, run,
            resources=res).for_run_failure()
        audit.audit_run_failed(end)


def test_audit_rows_for_success_and_failure_and_append_only(instance, pg_url, replay_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", "europe-docker.pkg.dev/p/f1/f1-assets@sha256:" + "ab" * 32)
    res = resources(pg_url, str(tmp_path / "blobs"), replay_server.base_url)
    instance.add_dynamic_partitions("races", ["2023-01"])
    # failure: lap_features needs the race calendar, which is not materialized yet
    failed = materialize([features.lap_features], partition_key="2023-01", instance=instance, resources=res,
                         raise_on_error=False)
    assert not failed.success
    _audit(instance, failed, pg_url)

    materialize_calendar(instance, 2023, res)
    ok = materialize([*ingest_jolpica.RACE_ASSETS, features.lap_features], partition_key="2023-01",
                     instance=instance, resources=res)
    _audit(instance, ok, pg_url)
    _audit(instance, ok, pg_url)  # a sensor tick evaluated twice: the rows exist, none is added

    rows = warehouse_from_url(pg_url).query(
        "SELECT dag_run_id, partition_key, event_type, status, action, actor, metadata::text AS metadata, "
        "git_commit_sha, container_image_digest FROM pipeline_audit_log ORDER BY timestamp")
    assert rows[["event_type", "status"]].values.tolist() == [
        ["run_start", "started"], ["run_end", "failure"], ["run_start", "started"], ["run_end", "success"]]
    assert rows["dag_run_id"].tolist() == [failed.run_id] * 2 + [ok.run_id] * 2
    assert set(rows["partition_key"]) == {"2023-01"}
    assert rows["git_commit_sha"].str.fullmatch("[0-9a-f]{40}").all()
    failure, success = json.loads(rows["metadata"][1]), json.loads(rows["metadata"][3])
    assert "raw_races" in failure["error"] or failure["failed_steps"] == ["lap_features"]
    assert success["rows_written"] == {"raw_results": 20, "raw_qualifying": 20, "raw_sprint_results": 0,
                                       "raw_laps": 1055, "raw_pit_stops": 50, "lap_features": 1055}
    # the design's task execution detail: image digest, host, input and output URIs, retries
    assert set(rows["container_image_digest"]) == {"sha256:" + "ab" * 32}
    assert success["host"] == socket.gethostname() and success["retry_count"] == 0
    pg = pg_url.split("?")[0]
    assert {u.split("?")[0].split("#")[0] for u in success["outputs"]} == {pg}
    assert {u.split("#")[1] for u in success["outputs"]} == set(success["rows_written"])
    tables_read = {u.split("#")[1] for u in success["inputs"] if "#" in u}
    assert {"raw_results", "raw_laps", "raw_pit_stops"} <= tables_read  # lap_features' inputs
    assert any(u.startswith(replay_server.base_url) for u in success["inputs"])  # the upstream pages

    for statement in ("UPDATE pipeline_audit_log SET status = 'success'", "DELETE FROM pipeline_audit_log",
                      "TRUNCATE pipeline_audit_log"):
        with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.Error, match="append-only"):
            conn.execute(statement)
    assert warehouse_from_url(pg_url).count("pipeline_audit_log") == 4

    # applying the schema again (every writer start does) keeps the rows and the protection
    warehouse_from_url(pg_url).apply_schema()
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute("DELETE FROM pipeline_audit_log")


def test_a_failure_message_names_the_error_the_step_raised_not_dagsters_wrapper():
    """A step that raises a plain exception: Dagster wraps it ("Error occurred while executing op …"); the
    message the CLI prints and the audit row records is the step's own error."""

    @dg.asset
    def broken() -> None:
        int("big")

    @dg.asset
    def refused() -> None:
        raise dg.Failure(description="the dump's data date is older", allow_retries=False)

    for asset, expected in ((broken, "ValueError: invalid literal for int() with base 10: 'big'"),
                            (refused, "the dump's data date is older")):
        result = dg.materialize([asset], raise_on_error=False)
        (event,) = result.get_step_failure_events()
        assert audit.failure_message(event) == expected


def test_run_io_counts_step_retries(instance):
    """A step that fails once and succeeds on its retry: the audit's retry count is 1."""
    attempts = []

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=2))
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return 1

    result = dg.materialize([flaky], instance=instance)
    assert result.success and len(attempts) == 2
    assert audit.run_io(instance, result.run_id).retries == 1
    tags = {"dagster/retry_number": "2"}  # the run itself is the second retry of a failed run
    assert audit.run_io(instance, result.run_id, tags).retries == 3
