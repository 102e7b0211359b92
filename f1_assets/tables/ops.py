"""Operations tables: the Jolpica rate ledger and the pipeline audit log.

`pipeline_audit_log` is the seed's audit log: a run_start row and one run_end row (status success or
failure) for every run, written by `f1_assets.audit`. Portable differences from the seed: audit_id
is supplied by the writer (uuid4), metadata is JSON (DuckDB has no JSONB), plus partition_key. On
PostgreSQL it is append-only in the database itself (roles and triggers: `f1_assets/migrations`).
"""

from __future__ import annotations

from f1_assets.tables.contract import Column, Table

JOLPICA_REQUEST_LOG = Table(
    name="jolpica_request_log",
    description="Shared memory of the Jolpica rate limiter when the warehouse is PostgreSQL: one row per "
    "request sent, by every process of every run (the hourly budget holds across a whole backfill).",
    columns=(Column("requested_at", "float64", False, "When the request was reserved (unix time)", unit="s"),),
    primary_key=(),
    partition_by=(),
    indexes=(("requested_at",),),
)

PIPELINE_AUDIT_LOG = Table(
    name="pipeline_audit_log",
    description="A run_start and a run_end row for every run, however launched (append-only).",
    columns=(
        Column("audit_id", "uuid", False, "Row id (uuid4, supplied by the writer)"),
        Column("timestamp", "timestamptz", False, "When the row was written", default="CURRENT_TIMESTAMP"),
        Column("dag_id", "varchar(128)", False, "Dagster job name"),
        Column("dag_run_id", "varchar(256)", False, "Dagster run id"),
        Column("task_id", "varchar(128)", True, "Step, when a row is about one step"),
        Column("partition_key", "varchar(64)", True, "The run's partition: a race 'YYYY-RR' or a season"),
        Column("event_type", "varchar(64)", False, "run_start or run_end"),
        Column("actor", "varchar(256)", True, "Who launched the run: sensor:<name>, schedule:<name>, "
               "backfill:<id>, user:<name>, cli:<host>, manual"),
        Column("resource", "varchar(512)", True, "Assets written, comma-joined"),
        Column("action", "varchar(32)", True, "run or write"),
        Column("status", "varchar(32)", True, "started, success or failure"),
        Column("metadata", "json", True, '{"rows_written": {asset: rows}, ...} and the error of a failed run'),
        Column("git_commit_sha", "varchar(64)", True, "Git commit of the running code"),
        Column("container_image_digest", "varchar(128)", True, "Container image of the run (DAGSTER_CURRENT_IMAGE)"),
    ),
    primary_key=("audit_id",),
    partition_by=(),
    # one row per run and event type, under concurrent writers
    unique=(("dag_run_id", "event_type"),),
)

TABLES = (JOLPICA_REQUEST_LOG, PIPELINE_AUDIT_LOG)
