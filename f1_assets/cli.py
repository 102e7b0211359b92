"""`f1-assets`: materialize one race or a whole season from the command line, in this process.

Runs are recorded in the Dagster instance of DAGSTER_HOME (the same one `make dev` uses), so they
show in the UI; with the repository's `dagster.yaml` they print their JSON log lines on stdout, and
this command prints its own progress on stderr. A season first materializes its calendar
(`raw_races`), which registers the races that have run as `races` partitions, then its races' Jolpica
tables and lap_features in runs of many races (`race_tables` over a partition range: each asset one
step for all of them), then from 2018 each race's FastF1 assets. `f1-assets history [--dump …]` loads
all of history: Jolpica's CSV dump (the `jolpica_dump` asset), the calendars and race tables of every
race it covers, the API for the races after its data date, then lap_features. Only a calendar (or the
dump) registers races: a key that is not a race of the schedule is refused, never added. `f1-assets
migrate` brings the warehouse to the schema head (versioned migrations) and says what it did;
`migrate --print-sql` prints sql/schema.sql.

Exit codes: 0 every run succeeded; 1 a run failed, or the warehouse did not answer; 2 the request or
the configuration can never work (a malformed or unknown key, a setting such as F1_WAREHOUSE_URL):
one line on stderr, no run.

`execute_in_process` replaces a job's executor (the one that writes pipeline_audit_log rows), so this
command writes its runs' start and end rows itself. Its runs carry the tag `f1/cli_process`
(host:pid:process start); a run left STARTED by a process that is gone (kill -9) is reported failed,
with its audit end row, by the next `f1-assets` on the same host.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg

from f1_assets import audit, settings
from f1_assets.io_managers.warehouse import ALLOW_SHRINK_TAG
from f1_assets.migrations import MigrationError, drift
from f1_assets.partitions import (
    RACES_PER_RUN,
    parse_race_key,
    parse_season,
    race_key,
    races_partitions,
    seasons_partitions,
)
from f1_assets.resources.fastf1 import FIRST_FASTF1_SEASON
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.storage.warehouse import WarehouseError, schema_sql
from f1_assets.transforms import dump
from f1_assets.transforms.jolpica import races_with_partial_laps

RAW_RACES = dg.AssetKey("raw_races")
# a run over a range of partitions (Dagster's run tags for it; no public constant names them)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


class UsageError(ValueError):
    """A request that can never work: one line on stderr, exit 2."""


def _say(message: str) -> None:
    print(f"f1-assets: {settings.redact(message)}", file=sys.stderr, flush=True)


def _error(exc: Exception) -> None:
    print(f"f1-assets: error: {' '.join(settings.redact(exc).split())}", file=sys.stderr)


def _instance() -> dg.DagsterInstance:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise UsageError("set DAGSTER_HOME (e.g. export DAGSTER_HOME=$PWD, as `make dev` does)")
    if not os.path.isdir(home):
        raise UsageError(f"DAGSTER_HOME={home} is not a folder: create it (mkdir -p) and copy the repository's "
                         "dagster.yaml there, or export DAGSTER_HOME=$PWD")
    instance = dg.DagsterInstance.get()
    if not (instance.get_settings("python_logs") or {}).get("dagster_handler_config"):
        _say(f"{instance.root_directory}/dagster.yaml has no python_logs handler: runs print no JSON log lines "
             "(copy the repository's dagster.yaml there)")
    return instance


def check_settings() -> WarehouseResource:
    """Every setting a run reads, checked before any run starts (ConfigError names the variable);
    the warehouse the audit rows go to."""
    for read in (settings.jolpica_url, settings.jolpica_dump_url, settings.livetiming_url,
                 settings.fastf1_schedule_url, settings.jolpica_hourly_budget, settings.settle_days,
                 settings.alert_webhook_url, settings.dagster_ui_url):
        read()
    BlobStoreResource().get()
    warehouse = WarehouseResource()
    warehouse.get().ensure_schema()
    return warehouse


def migrate(print_sql: bool) -> None:
    """`f1-assets migrate`: bring the warehouse of F1_WAREHOUSE_URL to the schema head and say what was
    done; with --print-sql, print the SQL of an empty warehouse at head instead (sql/schema.sql)."""
    if print_sql:
        print(schema_sql(postgres=True), end="")
        return
    warehouse = WarehouseResource().get()
    _say(f"{warehouse.kind} warehouse: {warehouse.apply_schema()}")
    differences = drift(warehouse)
    if differences:  # at the right version, yet changed by hand: every later write to these tables would fail
        raise MigrationError(f"the {warehouse.kind} warehouse is at the head version but its tables differ from "
                             f"the declarations (f1_assets/tables): {' | '.join(differences)}")


# ------------------------------------------------------------------------- this process and others

def _start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc; "" where there is no /proc),
    or None when there is no such process. With the pid it names a process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _gone(tag: str) -> bool:
    host, _, rest = tag.partition(":")
    pid, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: nothing to tell from here
    now = _start_ticks(int(pid))
    return now is None or (bool(ticks) and bool(now) and now != ticks)


def fail_orphaned_runs(instance: dg.DagsterInstance, warehouse: WarehouseResource) -> list[str]:
    """Report as failed every f1-assets run of this host left unfinished by a process that is gone,
    free the pool slots it held, and write its audit end row. Returns the run ids."""
    orphans = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        tag = run.tags.get(audit.CLI_PROCESS_TAG)
        if not tag or not _gone(tag):
            continue
        message = f"the f1-assets process that ran it ({tag}) is gone (killed) before the run finished"
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        audit.record_end(warehouse, instance, run, audit.FAILURE, {"error": message})
        _say(f"run {run.run_id} ({run.job_name} {audit.partition_of_run(run.tags)}): marked failed, {message}")
        orphans.append(run.run_id)
    return orphans


# ------------------------------------------------------------------------- runs

def _failures(result: dg.ExecuteInProcessResult | None) -> list[tuple[str, str]]:
    """(step, message) of each failed step."""
    events = result.get_step_failure_events() if result is not None else []
    return [(event.step_key, audit.failure_message(event)) for event in events]


def _run(job_name: str, partition_key: str | None, instance: dg.DagsterInstance, warehouse: WarehouseResource,
         extra_tags: Mapping[str, str] | None = None, *, partition_range: tuple[str, str] | None = None,
         asset_selection: Sequence[dg.AssetKey] | None = None, run_config: Mapping[str, Any] | None = None) -> bool:
    """One run of `job_name` in this process: one partition, a range of partitions (one run, each asset
    one step for all of them), or none (an unpartitioned job)."""
    from f1_assets.definitions import defs

    run_id = str(uuid.uuid4())
    tags = {**(extra_tags or {}), audit.CLI_PROCESS_TAG: process_tag()}
    if partition_range is not None:
        tags |= {RANGE_START_TAG: partition_range[0], RANGE_END_TAG: partition_range[1]}
    shown = partition_key or audit.partition_of_run(tags)
    audit.record_start(warehouse, audit.RunRef(job_name, run_id, {**tags, **(
        {"dagster/partition": partition_key} if partition_key else {})}))
    result = None
    try:
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=partition_key, instance=instance, raise_on_error=False, run_id=run_id, tags=tags,
            asset_selection=list(asset_selection) if asset_selection else None,
            # every event is already a JSON line on stdout (dagster.yaml python_logs): the human-readable
            # console copy on stderr keeps warnings and errors only
            run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    finally:
        failures = _failures(result)
        ok = result is not None and result.success
        metadata = {} if ok else {"error": failures[0][1] if failures else "the run did not execute",
                                  "failed_steps": [step for step, _ in failures]}
        run = instance.get_run_by_id(run_id) or audit.RunRef(job_name, run_id, tags)
        audit.record_end(warehouse, instance, run, audit.SUCCESS if ok else audit.FAILURE, metadata)
    red = _failed_error_checks(result)
    outcome = "success" if ok else "FAILED"
    if ok and red:
        outcome += f", but {len(red)} ERROR check(s) failed: {', '.join(red)}"
    selected = f"[{','.join(a.path[-1] for a in asset_selection)}]" if asset_selection else ""
    _say(f"{job_name}{selected}{' ' + shown if shown else ''}: {outcome} (run {run_id})"
         + "".join(f"\n  {step}: {message}" for step, message in failures))
    return ok


def _failed_error_checks(result: dg.ExecuteInProcessResult | None) -> list[str]:
    """`asset.check` of each ERROR-severity check that failed in the run (a non-blocking one, e.g.
    `live_timing_available`, fails without failing the run: say so)."""
    if result is None:
        return []
    return sorted({f"{e.asset_key.to_user_string()}.{e.check_name}" for e in result.get_asset_check_evaluations()
                   if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR})


def _season_key(season: int) -> str:
    key = str(season)
    if key not in seasons_partitions.get_partition_keys():
        keys = seasons_partitions.get_partition_keys()
        raise UsageError(f"season {key} is not a `seasons` partition ({keys[0]}..{keys[-1]})")
    return key


def _scheduled(warehouse: WarehouseResource, season: int, rnd: int) -> bool:
    return warehouse.get().count("raw_races", {"season": season, "round": rnd}) > 0


def race(key: str, instance: dg.DagsterInstance, warehouse: WarehouseResource,
         extra_tags: Mapping[str, str] | None = None) -> bool:
    """One race; first its season's calendar when this instance has never materialized it or has not
    registered the race (the feature layer reads the race's circuit and date from raw_races)."""
    parsed = parse_race_key(key)
    season_key = _season_key(parsed.season)
    registered = key in instance.get_dynamic_partitions(races_partitions.name)
    has_calendar = season_key in instance.get_materialized_partitions(RAW_RACES)
    if not registered and has_calendar and not _scheduled(warehouse, parsed.season, parsed.round):
        rounds = warehouse.get().count("raw_races", {"season": parsed.season})
        raise UsageError(f"race {key} is not in the {season_key} schedule ({rounds} rounds): no `races` partition "
                         "registered")
    if not registered or not has_calendar:
        if not _run("season_calendar", season_key, instance, warehouse, extra_tags):
            return False
        if key not in instance.get_dynamic_partitions(races_partitions.name):
            scheduled = warehouse.get().count("raw_races", {"season": parsed.season, "round": parsed.round})
            rounds = warehouse.get().count("raw_races", {"season": parsed.season})
            why = "has not been run yet" if scheduled else f"is not in the {season_key} schedule ({rounds} rounds)"
            raise UsageError(f"race {key} {why}: no `races` partition registered")
    return _run("race_pipeline", key, instance, warehouse, extra_tags)


def season(year: str, instance: dg.DagsterInstance, warehouse: WarehouseResource,
           extra_tags: Mapping[str, str] | None = None) -> bool:
    """A season: its calendar (registers the races run so far), then its races' Jolpica tables in runs of
    a season's races (each asset one step for all of them, one transaction), then lap_features of the
    races with complete laps — in the same kind of run before 2018; from 2018, when FastF1 has
    sessions, with each race's FastF1 assets and telemetry_features, one run per race."""
    season_key = _season_key(parse_season(year))
    if not _run("season_calendar", season_key, instance, warehouse, extra_tags):
        return False
    order = instance.get_dynamic_partitions(races_partitions.name)
    keys = [k for k in order if parse_race_key(k).season == int(season_key)]
    _say(f"season {season_key}: {len(keys)} races to materialize")
    failed: list[str] = []
    for _, _, batch in contiguous(order, set(keys), RACES_PER_RUN):
        failed += _load("race_tables", batch, instance, warehouse, extra_tags, RACE_TABLE_ASSETS, fallback="singles")
    # lap_features of the races with complete laps (fastest-lap-only races have none); from 2018 with FastF1
    complete, partial = laps_by_coverage(warehouse, int(season_key))
    if partial:
        _say(f"season {season_key}: {len(partial)} races with partial laps (fastest laps only) have no lap_features")
    if int(season_key) >= FIRST_FASTF1_SEASON:
        per_race = [dg.AssetKey(a) for a in ("fastf1_laps", "raw_telemetry", "telemetry_features")]
        failed += [k for k in keys if k not in failed and not _run(
            "race_pipeline", k, instance, warehouse, extra_tags,
            asset_selection=per_race + ([LAP_FEATURES] if k in complete else []))]
    else:
        for _, _, batch in contiguous(order, {k for k in keys if k in complete and k not in failed}, RACES_PER_RUN):
            failed += _load("race_tables", batch, instance, warehouse, extra_tags, [LAP_FEATURES], fallback="singles")
    if failed:
        _say(f"season {season_key}: failed races: {', '.join(sorted(set(failed)))}")
    return not failed


# ------------------------------------------------------------------------- history

DUMP_BATCH = 400  # races per run when their rows come from the dump (no requests: memory and one transaction)
RACE_TABLE_ASSETS = [dg.AssetKey(a) for a in ("raw_results", "raw_qualifying", "raw_sprint_results", "raw_laps",
                                              "raw_pit_stops", "raw_driver_standings", "raw_constructor_standings")]
LAP_FEATURES = dg.AssetKey("lap_features")
FEATURE_INPUTS = ("raw_results", "raw_laps", "raw_pit_stops", "fastf1_laps")


class Latest(NamedTuple):
    storage_id: int
    data_version: str | None  # `dump:<sha256>` for rows from a dump


def latest_materializations(instance: dg.DagsterInstance, asset: str) -> dict[str, Latest]:
    """partition → its latest materialization (storage id, data version), in one pass over the asset's
    event records."""
    out: dict[str, Latest] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000, cursor=cursor, ascending=True)
        for record in page.records:
            m = record.asset_materialization
            if m is None or m.partition is None:
                continue
            out[m.partition] = Latest(record.storage_id, (m.tags or {}).get("dagster/data_version"))
        if not page.has_more:
            return out
        cursor = page.cursor


def contiguous(order: Sequence[str], wanted: set[str], size: int) -> list[tuple[str, str, list[str]]]:
    """The wanted keys as runs of consecutive keys in the partitions' order, at most `size` each:
    (first, last, keys) — what one run over a partition range covers."""
    runs: list[list[str]] = []
    previous = False
    for key in order:
        if key in wanted:
            if not previous or len(runs[-1]) >= size:
                runs.append([])
            runs[-1].append(key)
        previous = key in wanted
    return [(r[0], r[-1], r) for r in runs]


def _load(job: str, batch: list[str], instance: dg.DagsterInstance, warehouse: WarehouseResource,
          extra_tags: Mapping[str, str] | None, asset_selection: Sequence[dg.AssetKey] | None,
          fallback: str | None) -> list[str]:
    """Run `job` over the batch (consecutive keys of the `races` order). When it fails, `fallback` says how
    the races that are right still land: `bisect` halves the batch until the races at fault stand alone
    (rows from the dump: no requests), `singles` runs each race on its own (from the API: a race's
    requests are made again once at most). Returns the keys that failed."""
    ok = _run(job, None, instance, warehouse, extra_tags, partition_range=(batch[0], batch[-1]),
              asset_selection=asset_selection)
    if ok:
        return []
    if fallback is None or len(batch) == 1:
        return batch
    if fallback == "singles":
        return [k for k in batch if not _run(job, None, instance, warehouse, extra_tags, partition_range=(k, k),
                                              asset_selection=asset_selection)]
    half = len(batch) // 2
    return [*_load(job, batch[:half], instance, warehouse, extra_tags, asset_selection, fallback),
            *_load(job, batch[half:], instance, warehouse, extra_tags, asset_selection, fallback)]


def laps_by_coverage(warehouse: WarehouseResource, season: int | None = None) -> tuple[set[str], set[str]]:
    """Race keys whose stored laps are complete, and those whose laps are partial (fastest laps only: no
    lap_features), from raw_laps and raw_results (of one season, or all)."""
    wh = warehouse.get()
    where, params = ("WHERE season = %s", [season]) if season is not None else ("", [])
    laps = wh.query(f"SELECT season, round, driver_id FROM raw_laps {where}", params)
    races = laps[["season", "round"]].drop_duplicates()
    with_laps = {race_key(int(s), int(r)) for s, r in races.itertuples(index=False)}
    partial = {race_key(int(s), int(r)) for s, r in races_with_partial_laps(
        laps, wh.query(f"SELECT season, round, driver_id, laps FROM raw_results {where}", params))} & with_laps
    return with_laps - partial, partial


def history(source: str | None, instance: dg.DagsterInstance, warehouse: WarehouseResource,
            extra_tags: Mapping[str, str] | None = None, api: bool = True) -> bool:
    """`f1-assets history`: Jolpica's dump (the `jolpica_dump` asset), then the calendars and race tables of
    every race it covers from it (runs of many races), then — with `api` — the calendars and races after
    its data date from the API, then lap_features of every race with laps. What is already loaded from
    this dump (or from the API) is not loaded again: a second run after nothing changed makes no request
    and writes nothing but the dump's own materialization."""
    from f1_assets.assets.ingest_dump import latest_snapshot, parsed

    if source and source.startswith("file://"):
        source = source.removeprefix("file://")
    if source and "://" in source and not source.startswith(("http://", "https://")):
        raise UsageError(f"--dump {settings.redact(source)!r}: expected a local path or an http(s) URL")
    config = {"ops": {"jolpica_dump": {"config": {"source": source}}}} if source else None
    if not _run("load_jolpica_dump", None, instance, warehouse, extra_tags, run_config=config):
        return False
    snapshot = latest_snapshot(instance, BlobStoreResource())
    if snapshot is None:
        raise WarehouseError("jolpica_dump materialized but its materialization is not in the instance")
    tables = parsed(snapshot.sha256, blob_store=BlobStoreResource())["tables"]
    this_dump = f"dump:{snapshot.sha256}"

    def stale(latest: Latest | None) -> bool:
        """To load from this dump: never loaded, or loaded from another dump, or by a run that mixed dump and
        API races (`batch:`: which one it was is not known); rows a run took from the API alone are kept."""
        version = (latest.data_version or "") if latest is not None else None
        return version is None or version.startswith(("dump:", "batch:")) and version != this_dump

    ok = True
    # calendars: the dump's seasons it covers, then (API) the seasons after its data date never loaded
    season_order = list(seasons_partitions.get_partition_keys())
    calendars = latest_materializations(instance, "raw_races")
    dump_seasons = {str(s) for s in sorted(set(tables["raw_races"]["season"].astype(int)))
                    if snapshot.covers_season(int(s)) and stale(calendars.get(str(s)))}
    for first, last, _ in contiguous(season_order, dump_seasons, 100):
        ok &= _run("season_calendar", None, instance, warehouse, extra_tags, partition_range=(first, last))
    if not api:  # offline: the schedule the dump holds for every other season (as it was when dumped)
        partly = {str(s) for s in sorted(set(tables["raw_races"]["season"].astype(int)))
                  if not snapshot.covers_season(int(s)) and stale(calendars.get(str(s)))}
        dump_calendar = {"ops": {"raw_races": {"config": {"calendar_source": "dump"}}}}
        for first, last, _ in contiguous(season_order, partly, 100):
            ok &= _run("season_calendar", None, instance, warehouse, extra_tags, partition_range=(first, last),
                       run_config=dump_calendar)
    api_ok = api
    if api and snapshot.data_date is not None:
        for season in season_order:
            # the seasons the dump does not cover: after its data date, or missing from it
            if snapshot.covers_season(int(season)) or season in calendars:
                continue
            if not _run("season_calendar", season, instance, warehouse, extra_tags):
                _say(f"history: the API top-up stopped at season {season}'s calendar (see the error above; "
                     f"{settings.JOLPICA_URL} names the API); what the dump holds is loaded")
                api_ok = ok = False
                break

    # race tables: from the dump in runs of many races; then the races after its data date from the API
    order = instance.get_dynamic_partitions(races_partitions.name)
    loaded = {a.path[-1]: latest_materializations(instance, a.path[-1]) for a in RACE_TABLE_ASSETS}
    covered = {k for k in order if snapshot.covers(*parse_race_key(k))}
    # per race, the tables to load from the dump: a table whose rows a run took from the API stays (e.g. a
    # race loaded by race_pipeline before a new table, the standings, existed: only the new table loads)
    wanted = {k: tuple(a for a in RACE_TABLE_ASSETS if stale(loaded[a.path[-1]].get(k))) for k in covered}
    from_dump = {k for k, assets in wanted.items() if assets}
    _say(f"history: {snapshot.label}: {len(covered)} races covered, {len(from_dump)} to load from it")
    failed = []
    for assets in sorted({a for a in wanted.values() if a}, key=lambda a: (-len(a), [x.path[-1] for x in a])):
        group = {k for k in from_dump if wanted[k] == assets}
        for _, _, batch in contiguous(order, group, DUMP_BATCH):
            failed += _load("race_tables", batch, instance, warehouse, extra_tags, list(assets), "bisect")
    from_api = {k for k in order if k not in covered and any(k not in loaded[a] for a in loaded)}
    if api_ok and from_api:
        _say(f"history: {len(from_api)} races after the dump's data date to load from the API")
        for _, _, batch in contiguous(order, from_api, RACES_PER_RUN):
            lost = _load("race_tables", batch, instance, warehouse, extra_tags, RACE_TABLE_ASSETS, "singles")
            failed += lost
            if len(lost) == len(batch):  # not one race of a season: the API is not there (or refuses)
                _say(f"history: the API top-up stopped at races {batch[0]}..{batch[-1]} (see the errors above)")
                break
    elif from_api:
        why = "--no-api" if not api else "the API top-up stopped"
        _say(f"history: {len(from_api)} races after the dump's data date not loaded ({why})")

    # lap_features for every race with complete laps and a calendar row whose inputs are newer than it
    wh = warehouse.get()
    complete, partial = laps_by_coverage(warehouse)
    in_calendar = {race_key(int(r["season"]), int(r["round"])) for _, r in
                   wh.query("SELECT season, round FROM raw_races").iterrows()}
    inputs = {a: latest_materializations(instance, a) for a in FEATURE_INPUTS}
    features = latest_materializations(instance, "lap_features")
    newest_input = {k: max((inputs[a][k].storage_id for a in inputs if k in inputs[a]), default=0) for k in complete}
    stale_features = {k for k in complete if k in in_calendar and k not in failed and (
        k not in features or newest_input[k] > features[k].storage_id)}
    no_calendar = sorted(complete - in_calendar)
    _say(f"history: lap_features to build for {len(stale_features)} races (of {len(complete)} with complete laps; "
         f"{len(partial)} with partial laps, e.g. fastest laps only, have none"
         + (f"; {len(no_calendar)} lack their season's calendar, which the API gives: {no_calendar[0]}…"
            if no_calendar else "") + ")")
    for _, _, batch in contiguous(order, stale_features, DUMP_BATCH):
        failed += _load("race_tables", batch, instance, warehouse, extra_tags, [LAP_FEATURES], "bisect")
    if failed:
        _say(f"history: {len(set(failed))} races failed: {', '.join(sorted(set(failed))[:20])}"
             + (" …" if len(set(failed)) > 20 else ""))
    return ok and not failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="f1-assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shrink_help = (f"let an upstream version with fewer rows replace the stored one (run tag {ALLOW_SHRINK_TAG}=true; "
                   "recorded in metadata and the audit log)")
    parser.add_argument("--allow-shrink", action="store_true", help=shrink_help)
    options = argparse.ArgumentParser(add_help=False)  # the same flag after the command, too
    options.add_argument("--allow-shrink", action="store_true", default=argparse.SUPPRESS, help=shrink_help)
    race_parser = sub.add_parser("race", parents=[options], help="materialize one race, e.g. 2023-01")
    race_parser.add_argument("key")
    season_parser = sub.add_parser("season", parents=[options],
                                   help="materialize a season's calendar and every race run so far")
    season_parser.add_argument("year")
    migrate_parser = sub.add_parser("migrate", help="bring the warehouse (F1_WAREHOUSE_URL) to the schema head: "
                                    "create it, or apply the pending versioned migrations")
    migrate_parser.add_argument("--print-sql", action="store_true",
                                help="print the SQL of an empty warehouse at head (PostgreSQL; sql/schema.sql), "
                                "touch nothing")
    history_parser = sub.add_parser(
        "history", parents=[options],
        help="all of history: Jolpica's CSV dump (F1_JOLPICA_DUMP_URL, or --dump), then the API for the races "
        "after its data date, then lap_features for every race with laps; a re-run loads only what changed")
    history_parser.add_argument("--dump", help="URL or local path of a Jolpica CSV dump (jolpica-f1-csv.zip)")
    history_parser.add_argument("--no-api", action="store_true",
                                help="load only what the dump holds (no request to the API: offline)")
    coverage_parser = sub.add_parser("dump-coverage", help="print what a Jolpica CSV dump holds per season (races; "
                                     "races with complete+partial rows per raw table); reads the file, writes nothing")
    coverage_parser.add_argument("dump", help="path of a Jolpica CSV dump (jolpica-f1-csv.zip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra_tags = {ALLOW_SHRINK_TAG: "true"} if args.allow_shrink else {}
    # the instance's yaml-defined JSON log handler is a beta feature: one warning per run otherwise
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    try:
        if args.command == "migrate":
            migrate(args.print_sql)
            return 0
        if args.command == "dump-coverage":
            text = dump.coverage_by_season(dump.coverage(dump.raw_tables(dump.read_dump(args.dump)))).to_string(
                index=False)
            try:
                print(text, flush=True)
            except BrokenPipeError:  # `| head`: the reader has what it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 0
        instance = _instance()
        warehouse = check_settings()
        fail_orphaned_runs(instance, warehouse)
        if args.command == "history":
            ok = history(args.dump, instance, warehouse, extra_tags, api=not args.no_api)
        elif args.command == "race":
            ok = race(args.key, instance, warehouse, extra_tags)
        else:
            ok = season(args.year, instance, warehouse, extra_tags)
    except ValueError as exc:  # UsageError, settings.ConfigError, an invalid key
        _error(exc)
        return 2
    except (WarehouseError, MigrationError) as exc:  # no answer (it may come back), or a schema it cannot upgrade
        _error(exc)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
