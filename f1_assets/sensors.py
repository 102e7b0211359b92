"""Sensors and the automation policy: new races, upstream corrections, the calendar they rely on,
declarative automation of the feature layer, and (from `audit.py`) the audit-log run-status sensors.

- `new_race_sensor` polls Jolpica's cheapest signal, `current/last/results` (one request a tick). A
  race with results that was never requested adds its `races` partition and requests a
  `race_pipeline` run (run_key `new-race:<key>`: Dagster never launches the same run twice).
- `season_calendar_sensor` requests the `season_calendar` run of a season whose `races` partitions
  lack a `raw_races` row (lap_features needs it). Zero upstream requests of its own. The new-race
  sensor waits for that row before requesting the race run, so a race's run never fails on it.
- `race_corrections_sensor` re-polls races inside the settle period (F1_SETTLE_DAYS) and requests a
  run of exactly the raw assets whose upstream payload hash differs from the hash their last
  materialization recorded. Features follow by declarative automation (`automation_policy`, applied
  in `definitions.py`, evaluated by `feature_automation_sensor`).

- `fastf1_retry_sensor` re-requests `fastf1_laps`/`raw_telemetry` of races inside the settle period
  whose latest materialization says FastF1's host was unreachable (`retryable`), with a doubling
  backoff and a bounded number of attempts (then the weekly refresh takes over); run_key = the
  materialization it retries, so never twice. Zero upstream requests of its own. `lap_features`
  follows by automation when `fastf1_laps` materializes again.

Upstream trouble never crashes the daemon: every sensor turns it into a SkipReason naming the cause.
Tick intervals are constants (below): they are needed when the code location loads, not per run.
Loaded by `f1_assets.definitions` (`SENSORS`, `automation_policy`).
"""

import datetime as dt
import hashlib
import json
import time

import dagster as dg

from f1_assets.assets.ingest_jolpica import RACE_TABLES, STANDINGS_TABLES, upstream_has
from f1_assets.audit import AUDIT_SENSORS
from f1_assets.partitions import parse_race_key, race_key, races_partitions
from f1_assets.resources.jolpica import (
    JolpicaClient,
    JolpicaResource,
    JolpicaResponseError,
    JolpicaTransientError,
)
from f1_assets.resources.rate_budget import RateBudgetExhausted
from f1_assets.resources.storage import WarehouseResource

LAST_RESULTS_PATH = "current/last/results"
# One request per tick; 15 min is ~96 requests/day of the 200/hour budget, and a new race's results
# are published hours after the flag, so nothing is gained by polling faster.
NEW_RACE_INTERVAL_SECONDS = 15 * 60
# A correction poll costs every page of every raw endpoint of every race inside the settle period
# (~15 requests a race, ~11 of them laps): every 6 hours keeps that under 2 % of the hourly budget.
CORRECTIONS_INTERVAL_SECONDS = 6 * 60 * 60
CALENDAR_INTERVAL_SECONDS = 5 * 60
AUTOMATION_INTERVAL_SECONDS = 60
# A sensor tick must finish well inside the daemon's 60 s sensor timeout: one quick retry, not five.
SENSOR_MAX_RETRIES = 1
SENSOR_BACKOFF_SECONDS = 2.0
MAX_CORRECTION_RACES = 4  # per tick; the settle period holds ~2 races, a backlog drains over ticks
CURSOR_KEYS_KEPT = 50
# FastF1 outages: the step already retried for seconds; then 20 min, 40 min, … capped at 6 h, 6 times
# (about 14 h in all), after which the weekly refresh of unsettled races tries again
FASTF1_RETRY_INTERVAL_SECONDS = 10 * 60
FASTF1_RETRY_FIRST_WAIT_SECONDS = 20 * 60
FASTF1_RETRY_MAX_WAIT_SECONDS = 6 * 60 * 60
FASTF1_RETRY_MAX_ATTEMPTS = 6
FASTF1_ASSETS = ("fastf1_laps", "raw_telemetry")

UPSTREAM_ERRORS = (JolpicaTransientError, JolpicaResponseError, RateBudgetExhausted)
FEATURE_ASSETS = ("lap_features", "telemetry_features")
# Inputs a feature asset reads when present and does without otherwise (lap_features without FastF1
# laps: compound UNKNOWN, stint from the pit-stop log). Their absence must not block automation.
OPTIONAL_INPUTS = ("fastf1_laps",)
# The ML layer retrains every Monday 06:00 UTC: four hours after the weekly refresh of unsettled races
# (schedules.WEEKLY_CRON, 02:00) has started, so the week's corrections are in (the seed: "weekly retraining").
RETRAIN_CRON = "0 6 * * 1"


def eager_with_optional_inputs(optional: tuple[str, ...] = OPTIONAL_INPUTS) -> dg.AutomationCondition:
    """`AutomationCondition.eager()`, except that a never-materialized optional input does not block it.

    Only eager's `any_deps_missing` part ignores the optional inputs: their updates still trigger the
    asset (`any_deps_updated`) and their runs in progress still hold it (`any_deps_in_progress`).
    """
    deps_missing = dg.AutomationCondition.any_deps_missing()
    return (
        dg.AutomationCondition.eager()
        .replace(deps_missing, deps_missing.ignore(dg.AssetSelection.assets(*optional)))
        .with_label("eager (optional inputs may be missing)")
    )


def retraining() -> dg.AutomationCondition:
    """The ML layer's cadence: weekly (RETRAIN_CRON, after the Monday refresh of unsettled races) and
    whenever an input is updated (a new race's lap_features), never while an input is being written, and
    only on inputs whose blocking checks passed.

    Unlike `eager()` it does not wait for missing input partitions: an unpartitioned ML asset reads every
    `lap_features` partition, and a real history always has races without laps (before 1996), so "all
    partitions present" never comes. An input whose latest blocking check failed holds the ML layer until
    the input is mended (Dagster's `all_deps_blocking_checks_passed`: a failed blocking check leaves that
    partition's previous rows in place, and the ML layer is not rebuilt over a failure).
    """
    weekly = dg.AutomationCondition.cron_tick_passed(RETRAIN_CRON, "UTC").with_label(f"weekly ({RETRAIN_CRON} UTC)")
    updated = dg.AutomationCondition.any_deps_updated().with_label("an input was updated")
    return (
        (weekly | updated).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("retraining: weekly or on new inputs, never over a failed blocking check")


def automation_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Feature assets re-materialize eagerly when their raw inputs change; the ML assets retrain weekly and
    on new inputs (`retraining`).

    Applied to every spec by `dg.map_asset_specs` in definitions.py; raw assets keep no condition
    (they cost upstream requests: the sensors and the schedule request them).
    """
    if spec.group_name == "ml":
        return spec.replace_attributes(automation_condition=retraining())
    if spec.key.to_user_string() in FEATURE_ASSETS:
        return spec.replace_attributes(automation_condition=eager_with_optional_inputs())
    return spec


def _sensor_client(jolpica: JolpicaResource) -> JolpicaClient:
    client = jolpica.client()
    client.max_retries = min(client.max_retries, SENSOR_MAX_RETRIES)
    client.backoff_seconds = min(client.backoff_seconds, SENSOR_BACKOFF_SECONDS)
    return client


def load_cursor(cursor: str | None) -> dict:
    """A sensor's JSON cursor as a dict; missing or unreadable = {} (the sensor starts afresh)."""
    try:
        value = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _has_calendar_row(warehouse: WarehouseResource, key: str) -> bool:
    race = parse_race_key(key)
    return warehouse.get().count("raw_races", {"season": race.season, "round": race.round}) > 0


def _last_materialization(instance: dg.DagsterInstance, asset: str, key: str) -> dg.AssetMaterialization | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def last_race_with_results(client: JolpicaClient) -> tuple[str, str] | None:
    """(race key, payload hash) of the latest race that has results upstream; None before the first."""
    fetched = client.fetch(LAST_RESULTS_PATH, settled=False)
    races = fetched.pages[0][1]["MRData"]["RaceTable"].get("Races") or []
    if not races or not races[0].get("Results"):
        return None
    return race_key(int(races[0]["season"]), int(races[0]["round"])), fetched.payload_hash


@dg.sensor(
    job_name="race_pipeline",
    minimum_interval_seconds=NEW_RACE_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls Jolpica current/last/results (1 request); adds a new race's partition and requests "
    "its race_pipeline run once.",
)
def new_race_sensor(
    context: dg.SensorEvaluationContext, jolpica: JolpicaResource, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    cursor = load_cursor(context.cursor)
    requested: list[str] = list(cursor.get("requested", []))
    client = _sensor_client(jolpica)
    try:
        last = last_race_with_results(client)
    except UPSTREAM_ERRORS as exc:
        return dg.SkipReason(f"upstream unavailable, will poll again: {exc}")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return dg.SkipReason(f"unexpected {LAST_RESULTS_PATH} payload ({type(exc).__name__}: {exc})")
    finally:
        client.close()
    if last is None:
        return dg.SkipReason(f"{LAST_RESULTS_PATH} has no results yet")
    key, payload_hash = last
    if key in requested:
        return dg.SkipReason(f"{key}: already requested")

    new_cursor = {"last_seen": key, "last_hash": payload_hash, "requested": requested}
    is_partition = context.instance.has_dynamic_partition(races_partitions.name, key)
    add = [] if is_partition else [races_partitions.build_add_request([key])]
    if is_partition and _last_materialization(context.instance, "raw_results", key) is not None:
        # materialized by a backfill or the calendar path already: remember it, request nothing
        new_cursor["requested"] = (requested + [key])[-CURSOR_KEYS_KEPT:]
        return dg.SensorResult(skip_reason=f"{key}: already materialized", cursor=json.dumps(new_cursor))
    if not _has_calendar_row(warehouse, key):
        return dg.SensorResult(
            dynamic_partitions_requests=add,
            skip_reason=f"{key}: waiting for raw_races (season_calendar_sensor requests the calendar)",
            cursor=json.dumps(new_cursor),
        )
    new_cursor["requested"] = (requested + [key])[-CURSOR_KEYS_KEPT:]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"new-race:{key}", partition_key=key,
                                    tags={"f1/trigger": "new_race"})],
        dynamic_partitions_requests=add,
        cursor=json.dumps(new_cursor),
    )


@dg.sensor(
    job_name="season_calendar",
    minimum_interval_seconds=CALENDAR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests the season_calendar run of a season whose race partitions have no raw_races row.",
)
def season_calendar_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    keys = context.instance.get_dynamic_partitions(races_partitions.name)
    missing = [k for k in keys if not _has_calendar_row(warehouse, k)]
    if not missing:
        return dg.SkipReason(f"all {len(keys)} race partitions have their raw_races row")
    seasons = sorted({parse_race_key(k).season for k in missing})
    return [
        dg.RunRequest(
            run_key=f"calendar:{season}:" + ",".join(k for k in missing if parse_race_key(k).season == season),
            partition_key=str(season),
            tags={"f1/trigger": "calendar_missing_race"},
        )
        for season in seasons
    ]


def _recorded_hashes(instance: dg.DagsterInstance, warehouse: WarehouseResource, key: str) -> dict[str, str]:
    """{raw asset: payload hash its latest materialization of `key` recorded}; "" for a raw table the
    race should have upstream but that has no materialization (an empty answer was refused by its
    `has_rows` check): it is re-polled until the upstream has rows."""
    out, never = {}, []
    for asset in RACE_TABLES:
        last = _last_materialization(instance, asset, key)
        value = last.metadata.get("payload_hash") if last else None
        if value is not None:
            out[asset] = str(value.value)
        elif last is None:
            never.append(asset)
    if out and never:
        race = parse_race_key(key)
        rows = warehouse.get().read_partition("raw_races", {"season": race.season, "round": race.round})
        has_sprint = bool(rows["has_sprint"].iloc[0]) if len(rows) else False
        out |= {asset: "" for asset in never if upstream_has(asset, race, has_sprint)}
    return out


def races_in_settle_period(warehouse: WarehouseResource, instance: dg.DagsterInstance, settle_days: int,
                           today: dt.date | None = None) -> list[str]:
    """Race partitions whose race date is within the last `settle_days` days, oldest first."""
    since = (today or dt.date.today()) - dt.timedelta(days=settle_days)
    rows = warehouse.get().query(
        "SELECT season, round FROM raw_races WHERE race_date >= %s ORDER BY race_date", [since]
    )
    keys = [race_key(int(r.season), int(r.round)) for r in rows.itertuples()]
    partitions = set(instance.get_dynamic_partitions(races_partitions.name))
    return [k for k in keys if k in partitions]


def _race_pipeline_sensor(interval_seconds: int, description: str):
    """A sensor that requests `race_pipeline` runs, running by default."""
    return dg.sensor(job_name="race_pipeline", minimum_interval_seconds=interval_seconds,
                     default_status=dg.DefaultSensorStatus.RUNNING, description=description)


@_race_pipeline_sensor(CORRECTIONS_INTERVAL_SECONDS, "Re-polls races inside the settle period; re-materializes "
                       "only raw assets whose upstream payload hash changed (features follow by automation).")
def race_corrections_sensor(
    context: dg.SensorEvaluationContext, jolpica: JolpicaResource, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    recent = races_in_settle_period(warehouse, context.instance, jolpica.effective_settle_days())
    # what each race's raw assets last recorded; never-materialized or not-upstream assets (no sprint,
    # pre-era) have no payload hash and nothing to compare
    recorded = {key: _recorded_hashes(context.instance, warehouse, key) for key in recent}
    keys = [key for key in recent if recorded[key]]
    if not keys:
        return dg.SkipReason(f"no materialized race inside the {jolpica.effective_settle_days()}-day settle period")
    cursor = load_cursor(context.cursor)
    start = int(cursor.get("next", 0)) % len(keys)
    batch = (keys[start:] + keys[:start])[:MAX_CORRECTION_RACES]
    client = _sensor_client(jolpica)
    run_requests, problems, upstream = [], [], {}
    try:
        for key in batch:
            race = parse_race_key(key)
            changed, hashes = [], {}
            for asset, recorded_hash in recorded[key].items():
                try:
                    fetched = client.fetch(f"{race.season}/{race.round}/{RACE_TABLES[asset].endpoint}", settled=False)
                except UPSTREAM_ERRORS as exc:
                    problems.append(f"{key} {asset}: {exc}")
                    break
                hashes[asset] = fetched.payload_hash
                # a never-materialized table ("" recorded) counts as changed once the upstream has rows
                if fetched.payload_hash != recorded_hash and (recorded_hash or fetched.total > 0):
                    changed.append(asset)
            upstream[key] = hashes
            if changed:
                digest = hashlib.sha256(",".join(hashes[a] for a in changed).encode()).hexdigest()[:16]
                context.log.info(f"{key}: upstream changed for {', '.join(changed)}")
                # the standings are the results' sum upstream: reloaded with them, never polled themselves
                follow = list(STANDINGS_TABLES) if {"raw_results", "raw_sprint_results"} & set(changed) else []
                run_requests.append(dg.RunRequest(
                    run_key=f"correction:{key}:{digest}", partition_key=key,
                    asset_selection=[dg.AssetKey(a) for a in [*changed, *follow]],
                    tags={"f1/trigger": "correction", "f1/changed_assets": ",".join(changed)},
                ))
    finally:
        client.close()
    new_cursor = json.dumps({"next": start + len(batch), "checked": upstream, "problems": problems[-5:]})
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=new_cursor)
    reason = f"{len(batch)} race(s) checked, upstream unchanged"
    if problems:
        reason = f"{reason} where reachable; upstream unavailable: " + "; ".join(problems)
    return dg.SensorResult(skip_reason=reason, cursor=new_cursor)


def _retryable(materialization: dg.AssetMaterialization) -> bool:
    value = materialization.metadata.get("retryable")
    return bool(value is not None and value.value)


def fastf1_retry_wait(failures: int) -> float:
    """Seconds to wait after the `failures`-th retryable FastF1 failure in a row before trying again."""
    return min(FASTF1_RETRY_FIRST_WAIT_SECONDS * 2 ** (failures - 1), FASTF1_RETRY_MAX_WAIT_SECONDS)


def fastf1_retries(instance: dg.DagsterInstance, keys: list[str], now: float) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests for the races among `keys` whose FastF1 assets last failed as retryable and are
    due (backoff), and a note for each race that waits or was given up."""
    requests, notes = [], []
    for key in keys:
        due_assets, run_key_parts, attempts = [], [], 0
        for asset in FASTF1_ASSETS:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]),
                limit=FASTF1_RETRY_MAX_ATTEMPTS + 1,
            ).records
            failures = 0
            for record in records:  # newest first: the retryable failures in a row
                if not _retryable(record.asset_materialization):
                    break
                failures += 1
            if not failures:
                continue
            if failures > FASTF1_RETRY_MAX_ATTEMPTS:
                notes.append(f"{key} {asset}: FastF1 unreachable {failures} times in a row; left to the weekly refresh")
                continue
            due = records[0].timestamp + fastf1_retry_wait(failures)
            if now < due:
                notes.append(f"{key} {asset}: FastF1 unreachable, next try in {int(due - now) // 60} min")
                continue
            due_assets.append(asset)
            run_key_parts.append(str(records[0].storage_id))
            attempts = max(attempts, failures)
        if due_assets:
            requests.append(dg.RunRequest(
                run_key=f"fastf1-retry:{key}:{'-'.join(run_key_parts)}", partition_key=key,
                asset_selection=[dg.AssetKey(a) for a in due_assets],
                tags={"f1/trigger": "fastf1_retry", "f1/retry_attempt": str(attempts)},
            ))
    return requests, notes


@_race_pipeline_sensor(FASTF1_RETRY_INTERVAL_SECONDS, "Re-requests fastf1_laps/raw_telemetry of recent races "
                       "whose FastF1 host was unreachable (retryable), with a doubling backoff; lap_features "
                       "follows by automation.")
def fastf1_retry_sensor(
    context: dg.SensorEvaluationContext, jolpica: JolpicaResource, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    recent = races_in_settle_period(warehouse, context.instance, jolpica.effective_settle_days())
    requests, notes = fastf1_retries(context.instance, recent, time.time())
    if requests:
        for note in notes:
            context.log.info(note)
        return dg.SensorResult(run_requests=requests)
    return dg.SkipReason("; ".join(notes) or f"no FastF1 failure to retry among {len(recent)} recent race(s)")


def calendar_changes(current: dict[str, str], previous: dict[str, str] | None) -> list[str]:
    """Race keys whose calendar row (date, time, sprint, circuit…) differs from the previous version of
    the season; none when there was no previous version (the first calendar changes no stored race)."""
    if previous is None:
        return []
    return sorted(k for k, digest in current.items() if k in previous and previous[k] != digest)


# read the race's calendar row (the standings' check: which rounds had a sprint)
CALENDAR_DEPENDENT_ASSETS = ("raw_sprint_results", "raw_driver_standings", "raw_constructor_standings", "lap_features")


@dg.asset_sensor(
    asset_key=dg.AssetKey("raw_races"),
    job_name="race_pipeline",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A calendar correction (a race's date, time, circuit or sprint changed in raw_races) requests "
    "raw_sprint_results, the standings and lap_features of exactly the races it changed: the honest stand-in for the "
    "season → race partition edge Dagster cannot express.",
)
def calendar_corrections_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    requests = calendar_run_requests(context.instance, asset_event)
    return requests or dg.SkipReason("raw_races: no stored race's calendar row changed")


def calendar_run_requests(instance: dg.DagsterInstance, asset_event: dg.EventLogEntry) -> list[dg.RunRequest]:
    """Run requests for the races whose calendar row changed in this raw_races materialization."""
    materialization = asset_event.asset_materialization
    season = materialization.partition if materialization else None
    current = _race_rows(materialization)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_races"), asset_partitions=[season] if season else None,
                              before_timestamp=asset_event.timestamp), limit=5).records
    previous = next((_race_rows(r.asset_materialization) for r in records if r.asset_materialization is not None
                     and r.asset_materialization.metadata.get("race_rows") is not None), None)
    known = set(instance.get_dynamic_partitions(races_partitions.name))
    return [dg.RunRequest(run_key=f"calendar:{k}:{current[k]}", partition_key=k,
                          asset_selection=[dg.AssetKey(a) for a in CALENDAR_DEPENDENT_ASSETS],
                          tags={"f1/reason": "calendar correction"})
            for k in calendar_changes(current, previous) if k in known]


def _race_rows(materialization: dg.AssetMaterialization | None) -> dict[str, str]:
    value = materialization.metadata.get("race_rows") if materialization is not None else None
    return dict(value.value) if value is not None else {}


feature_automation_sensor = dg.AutomationConditionSensorDefinition(
    "feature_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
    description="Evaluates the assets' automation conditions (features: eager on their raw inputs; ML: weekly and "
    "on new inputs).",
)

SENSORS: list = [new_race_sensor, season_calendar_sensor, race_corrections_sensor, fastf1_retry_sensor,
                 calendar_corrections_sensor, feature_automation_sensor, *AUDIT_SENSORS]
