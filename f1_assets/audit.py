"""The pipeline audit log: one `pipeline_audit_log` row per run start, success and failure.

Written by the run-status sensors below (registered through `sensors.SENSORS`), for every job of the
code location: run id, job, partition, who launched it (sensor, schedule, backfill or a person), the
git commit of the code, and the rows each asset wrote (from its `dagster/row_count` metadata).
The table is append-only, enforced by PostgreSQL itself (a trigger in the Postgres-only part of
`sql/schema.sql` rejects UPDATE, DELETE and TRUNCATE); the writer only ever INSERTs, with an
`audit_id` it generates (uuid4), so the portable table works on the DuckDB default as well.
"""

import datetime as dt
import functools
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import dagster as dg

from f1_assets import settings
from f1_assets.resources.storage import WarehouseResource

AUDIT_TABLE = "pipeline_audit_log"
COLUMNS = ("audit_id", "timestamp", "dag_id", "dag_run_id", "task_id", "partition_key", "event_type", "actor",
           "resource", "action", "status", "metadata", "git_commit_sha", "container_image_digest")
_INSERT = (
    f"INSERT INTO {AUDIT_TABLE} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('CAST(%s AS JSON)' if c == 'metadata' else '%s' for c in COLUMNS)})"
)
_REPO = Path(__file__).resolve().parents[1]


@functools.cache
def git_commit_sha() -> str | None:
    """The commit of the running code: F1_GIT_SHA (set in images without .git), else `git rev-parse`."""
    if settings.git_sha():
        return settings.git_sha()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def actor_of(run: dg.DagsterRun) -> str:
    """Who launched the run, from Dagster's own run tags."""
    tags = run.tags
    for tag, kind in (("dagster/sensor_name", "sensor"), ("dagster/schedule_name", "schedule"),
                      ("dagster/backfill", "backfill")):
        if tags.get(tag):
            return f"{kind}:{tags[tag]}"
    return f"user:{tags['dagster/user']}" if tags.get("dagster/user") else "manual"


def rows_written(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """Rows per asset from the run's materializations (`dagster/row_count`)."""
    # `all_logs` is the instance's documented per-run event accessor (no public filter by run id exists
    # on fetch_materializations).
    out: dict[str, int] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = entry.asset_materialization
        if mat is None:
            continue
        count = mat.metadata.get("dagster/row_count")
        out[mat.asset_key.to_user_string()] = int(count.value) if count is not None else 0
    return out


def audit_row(run: dg.DagsterRun, event_type: str, status: str, metadata: dict[str, Any],
              written: dict[str, int] | None = None) -> dict[str, Any]:
    written = written or {}
    return {
        "audit_id": str(uuid.uuid4()),
        "timestamp": dt.datetime.now(dt.UTC),
        "dag_id": run.job_name,
        "dag_run_id": run.run_id,
        "task_id": None,
        "partition_key": run.tags.get("dagster/partition"),
        "event_type": event_type,
        "actor": actor_of(run),
        "resource": ",".join(sorted(written)) or None,
        "action": "write" if written else "run",
        "status": status,
        "metadata": json.dumps({"rows_written": written, **metadata}, default=str),
        "git_commit_sha": git_commit_sha(),
        "container_image_digest": os.environ.get("DAGSTER_CURRENT_IMAGE"),
    }


def write_audit_row(warehouse: WarehouseResource, row: dict[str, Any]) -> None:
    warehouse.get().execute(_INSERT, [row[c] for c in COLUMNS])


_SENSOR = dict(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=15)


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.STARTED, name="audit_run_started", **_SENSOR,
                      description="Appends a pipeline_audit_log row when a run starts.")
def audit_run_started(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> None:
    run = context.dagster_run
    write_audit_row(warehouse, audit_row(run, "run_start", "started", {"tags": dict(run.tags)}))


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="audit_run_succeeded", **_SENSOR,
                      description="Appends a pipeline_audit_log row (rows written per asset) when a run succeeds.")
def audit_run_succeeded(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> None:
    run = context.dagster_run
    written = rows_written(context.instance, run.run_id)
    write_audit_row(warehouse, audit_row(run, "run_end", "success", {}, written))


@dg.run_failure_sensor(name="audit_run_failed", **_SENSOR,
                       description="Appends a pipeline_audit_log row with the error when a run fails.")
def audit_run_failed(context: dg.RunFailureSensorContext, warehouse: WarehouseResource) -> None:
    run = context.dagster_run
    written = rows_written(context.instance, run.run_id)
    error = context.failure_event.message if context.failure_event else None
    steps = [e.step_key for e in context.get_step_failure_events()]
    write_audit_row(warehouse, audit_row(run, "run_end", "failure", {"error": error, "failed_steps": steps}, written))


AUDIT_SENSORS = [audit_run_started, audit_run_succeeded, audit_run_failed]
