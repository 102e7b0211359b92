"""The pipeline audit log: a `run_start` and a `run_end` row (status success or failure) in
`pipeline_audit_log` for every run, however it was launched.

Three writers; each inserts a row only when the run has none of that event type yet (unique
`(dag_run_id, event_type)`, declared in `f1_assets/tables/ops.yaml`), so the first one wins and the others
are no-ops:
- `audited_executor`, the executor of the Definitions: it runs inside every launched run (UI,
  `dagster asset materialize`/`job execute`, sensors, schedules, backfills; daemon up or down) and
  writes the start row before the first step and the end row after the last one;
- the `f1-assets` CLI (`cli.py`): `execute_in_process` replaces a job's executor, so the CLI writes
  its runs' rows itself, and the end row of its own runs that were killed (kill -9);
- the run-status sensors below (daemon): the backstop for a run that fails before its executor starts.

Rows carry the run id, job, partition, who launched it (sensor, schedule, backfill, CLI or a person),
the git commit of the code and the rows each asset wrote (from its `dagster/row_count` metadata).
Every value goes through `settings.redact`: no URL password reaches the table. The rows go to the
warehouse of F1_WAREHOUSE_URL (the Definitions' warehouse follows the same variable). On PostgreSQL
the table is append-only in the database itself (owner/runtime roles and triggers,
`f1_assets/migrations/postgres_objects.sql`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg

from f1_assets import settings
from f1_assets.io_managers.warehouse import table_uri
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.tables import table

AUDIT_TABLE = "pipeline_audit_log"
COLUMNS = tuple(table(AUDIT_TABLE).column_names)
_CASTS = {"audit_id": "CAST(%s AS UUID)", "metadata": "CAST(%s AS JSON)"}
# insert-if-absent: portable (DuckDB tables made before the unique constraint have none to conflict on)
_INSERT = (
    f"INSERT INTO {AUDIT_TABLE} ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(_CASTS.get(c, '%s') for c in COLUMNS)} "
    f"WHERE NOT EXISTS (SELECT 1 FROM {AUDIT_TABLE} WHERE dag_run_id = %s AND event_type = %s)"
)
RUN_START, RUN_END = "run_start", "run_end"
STARTED, SUCCESS, FAILURE = "started", "success", "failure"
# set by the f1-assets CLI on its runs: "<host>:<pid>:<process start ticks>" (see cli.py)
CLI_PROCESS_TAG = "f1/cli_process"
_REPO = Path(__file__).resolve().parents[1]
MAX_URIS = 50  # per row and direction: a history run of 400 races reads one table per asset, not 400 URIs


class RunRef(NamedTuple):
    """What a row needs of a run; a DagsterRun has the same attributes."""

    job_name: str
    run_id: str
    tags: Mapping[str, str]


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


def actor_of(run: RunRef | dg.DagsterRun) -> str:
    """Who launched the run, from its tags."""
    tags = run.tags
    for tag, kind in (("dagster/sensor_name", "sensor"), ("dagster/schedule_name", "schedule"),
                      ("dagster/backfill", "backfill")):
        if tags.get(tag):
            return f"{kind}:{tags[tag]}"
    if tags.get(CLI_PROCESS_TAG):
        return f"cli:{tags[CLI_PROCESS_TAG].split(':')[0]}"
    return f"user:{tags['dagster/user']}" if tags.get("dagster/user") else "manual"


class RunIO(NamedTuple):
    """What a run read and wrote, from its own events."""

    written: dict[str, int]  # rows per asset (`dagster/row_count` of its materializations)
    outputs: list[str]  # URIs written (`dagster/uri` of the materializations: table or object)
    inputs: list[str]  # URIs read: inputs loaded by the IO managers, upstream pages fetched (`source_urls`)
    retries: int  # step retries inside the run, plus the run's own retry number


def _uris(value: Any) -> list[str]:
    value = getattr(value, "value", value)
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if isinstance(v, str) and ("://" in v or v.startswith("/"))]


def _capped(uris: set[str]) -> list[str]:
    ordered = sorted(uris)
    if len(ordered) <= MAX_URIS:
        return ordered
    return [*ordered[:MAX_URIS], f"... and {len(ordered) - MAX_URIS} more"]


def _input_uri(loaded: Any) -> list[str]:
    """Where an input the IO managers loaded lives: `<warehouse URL>#<table>` or `<blob store URL>#<asset>`
    (the assets name their inputs after the upstream asset). Input metadata would say it directly, but Dagster
    records input metadata as an observation of the upstream asset: one per load, in the asset's history."""
    name, manager = getattr(loaded, "input_name", None), getattr(loaded, "manager_key", None)
    if not name:
        return []
    if manager == "warehouse_io_manager":
        return [table_uri(WarehouseResource(), name)]
    if manager == "parquet_io_manager":
        return [settings.redact_url(f"{BlobStoreResource().effective_url()}#{name}")]
    return []


def run_io(instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str] | None = None) -> RunIO:
    """Rows per asset, output and input URIs and the retry count of a run, from its events.

    `all_logs` is the instance's documented per-run event accessor (no public filter by run id exists
    on fetch_materializations)."""
    written: dict[str, int] = {}
    outputs: set[str] = set()
    inputs: set[str] = set()
    retries = int((tags or {}).get("dagster/retry_number", 0) or 0)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.is_step_up_for_retry:
            retries += 1
        elif event.is_step_materialization:
            mat = entry.asset_materialization
            count = mat.metadata.get("dagster/row_count")
            written[mat.asset_key.to_user_string()] = int(count.value) if count is not None else 0
            outputs.update(_uris(mat.metadata.get("dagster/uri")))
            inputs.update(_uris(mat.metadata.get("source_urls")))
        elif event.is_loaded_input:
            inputs.update(_input_uri(event.event_specific_data))
    return RunIO(written, _capped(outputs), _capped(inputs), retries)


def partition_of_run(tags: Mapping[str, str]) -> str | None:
    """The run's partition: its key, or `first...last` for a run over a range of partitions (a backfill's
    batch, `f1-assets season`/`history`)."""
    if tags.get("dagster/partition"):
        return tags["dagster/partition"]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def audit_row(run: RunRef | dg.DagsterRun, event_type: str, status: str, metadata: dict[str, Any],
              io: RunIO | None = None) -> dict[str, Any]:
    """One row. `metadata` holds, besides what the caller gives, the design's task execution detail: the
    worker's host and process, and for an end row the rows written, the input and output URIs and the
    retry count (the seed schema's `metadata` JSON: no column was added to the append-only table)."""
    written = io.written if io else {}
    detail: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if io is not None:
        detail.update(rows_written=written, outputs=io.outputs, inputs=io.inputs, retry_count=io.retries)
    return {
        "audit_id": str(uuid.uuid4()),
        "timestamp": dt.datetime.now(dt.UTC),
        "dag_id": run.job_name,
        "dag_run_id": run.run_id,
        "task_id": None,
        "partition_key": partition_of_run(run.tags),
        "event_type": event_type,
        "actor": settings.redact(actor_of(run)),
        "resource": ",".join(sorted(written)) or None,
        "action": "write" if written else "run",
        "status": status,
        "metadata": settings.redact(json.dumps({**detail, **metadata}, default=str)),
        "git_commit_sha": git_commit_sha(),
        "container_image_digest": settings.image_digest(),
    }


def write_audit_row(warehouse: WarehouseResource, row: dict[str, Any]) -> None:
    """Insert `row` unless its run already has a row of its event type."""
    try:
        warehouse.get().execute(_INSERT, [*(row[c] for c in COLUMNS), row["dag_run_id"], row["event_type"]])
    except Exception as exc:
        # a concurrent writer inserted the same row between our check and insert (the unique
        # constraint refused ours, in the words of PostgreSQL or DuckDB): its row stands
        if "unique" not in str(exc).lower():
            raise


def record_start(warehouse: WarehouseResource, run: RunRef | dg.DagsterRun) -> None:
    write_audit_row(warehouse, audit_row(run, RUN_START, STARTED, {"tags": dict(run.tags)}))


def record_end(warehouse: WarehouseResource, instance: dg.DagsterInstance, run: RunRef | dg.DagsterRun,
               status: str, metadata: dict[str, Any] | None = None) -> None:
    write_audit_row(warehouse, audit_row(run, RUN_END, status, metadata or {}, run_io(instance, run.run_id, run.tags)))


# ------------------------------------------------------------------------- inside the run

class AuditedExecutor(dg.Executor):
    """Runs the steps with the wrapped executor, writing the start row before and the end row after.

    The end status is the run's: failure when a step failed or the executor raised (a terminated
    run included), else success. An audit write that fails is logged as an error on the run and never
    fails the run itself (the run-status sensors are the second writer)."""

    def __init__(self, inner: dg.Executor):
        self.inner = inner

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        run, log, warehouse = plan_context.dagster_run, plan_context.log, WarehouseResource()
        _audit_safely(log, "start", lambda: record_start(warehouse, run))
        failed_steps: list[str] = []
        errors: list[str] = []
        try:
            for event in self.inner.execute(plan_context, execution_plan):
                if event.is_step_failure:
                    failed_steps.append(event.step_key)
                    errors.append(failure_message(event))
                yield event
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            status = FAILURE if failed_steps or errors else SUCCESS
            metadata = {"failed_steps": failed_steps, "error": errors[0]} if status == FAILURE else {}
            _audit_safely(log, "end", lambda: record_end(warehouse, plan_context.instance, run, status, metadata))


def failure_message(event: dg.DagsterEvent) -> str:
    """A step failure's own description (a dg.Failure's, a ConfigError's), else the error the step's code
    raised: Dagster wraps it ("Error occurred while executing op …"), so the wrapper's causes are followed
    to the first error that is not Dagster's own."""
    data = event.step_failure_data
    described = data.user_failure_data.description if data and data.user_failure_data else None
    if described or not (data and data.error):
        return described or event.message or ""
    error = data.error
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.message.strip()


def _audit_safely(log: dg.DagsterLogManager, which: str, write) -> None:
    try:
        write()
    except Exception as exc:
        log.error(settings.redact(f"pipeline_audit_log: the run's {which} row was not written: {exc}"))


def _audited(init_context: dg.InitExecutorContext) -> dg.Executor:
    return AuditedExecutor(dg.multi_or_in_process_executor.executor_creation_fn(init_context))


audited_executor = dg.ExecutorDefinition(
    name="audited_multi_or_in_process_executor",
    config_schema=dg.multi_or_in_process_executor.config_schema,
    requirements=dg.multi_or_in_process_executor.get_requirements,
    executor_creation_fn=_audited,
    description="Dagster's default executor (multiprocess, or in_process by config) that also writes the "
    "run's start and end rows to pipeline_audit_log.",
)


# ------------------------------------------------------------------------- daemon backstop

# every run of the instance: a run launched in process (`f1-assets`, `dagster asset materialize`) carries no
# code-location origin, and a sensor limited to its own code location would skip it
_SENSOR = dict(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=15,
               monitor_all_code_locations=True)


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.STARTED, name="audit_run_started", **_SENSOR,
                      description="Appends a pipeline_audit_log start row for a run that has none yet.")
def audit_run_started(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> None:
    record_start(warehouse, context.dagster_run)


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="audit_run_succeeded", **_SENSOR,
                      description="Appends a pipeline_audit_log end row (rows written per asset) for a run "
                      "that succeeded and has none yet.")
def audit_run_succeeded(context: dg.RunStatusSensorContext, warehouse: WarehouseResource) -> None:
    record_end(warehouse, context.instance, context.dagster_run, SUCCESS)


@dg.run_failure_sensor(name="audit_run_failed", **_SENSOR,
                       description="Appends a pipeline_audit_log end row with the error for a failed run that "
                       "has none yet.")
def audit_run_failed(context: dg.RunFailureSensorContext, warehouse: WarehouseResource) -> None:
    error = context.failure_event.message if context.failure_event else None
    steps = [e.step_key for e in context.get_step_failure_events()]
    record_end(warehouse, context.instance, context.dagster_run, FAILURE, {"error": error, "failed_steps": steps})


AUDIT_SENSORS = [audit_run_started, audit_run_succeeded, audit_run_failed]
