"""Freshness after each race: every race asset is expected within a bound of its race's end.

Bounds, counted from the race's end (start + 3 h: the sporting regulations cap a race at three hours
including suspensions; the start is `raw_races.race_date` + `race_time` in UTC, noon UTC when the
calendar has no time, as for old races):
- the raw Jolpica race tables and standings (`ingest_jolpica.RACE_ASSETS`, `STANDINGS_ASSETS`): 24 h —
  results are published within hours, and the sensors poll every 15 min; a table the race cannot have
  (sprint without a Sprint session, laps before 1996, …, `ingest_jolpica.upstream_has`) is not expected;
- the FastF1 assets (`fastf1_laps`, `raw_telemetry`; races from 2018): 6 h — live timing is complete
  within minutes of the flag;
- the features follow their inputs plus an hour: `lap_features` 25 h (it needs the Jolpica tables;
  FastF1 laps are optional for it), `telemetry_features` 7 h (2018+; it needs `raw_telemetry`). They are
  built by declarative automation minutes after an input lands; the extra hour means an input that lands
  just inside its own bound does not make the feature late too, so one late input raises one alert for
  the input, not a second one for the feature at the same moment.
A partition is fresh once it has a materialization newer than its race's end (a FastF1 materialization
that recorded `retryable: true` — the host was unreachable, nothing landed — does not count). Only races
that ended within the last `RECENT_DAYS` days and are registered `races` partitions count: the history
loaded without FastF1 (or before this rule existed) is not "stale" forever, and a stale partition drops
out of the check two weeks after its race.

How it is expressed in Dagster:
- `race_freshness_checks`: one `@dg.multi_asset_check` with a `fresh_after_race` check (WARN, not
  blocking) on each of those assets. A failing result lists the stale partitions and how late each is
  (`stale_partitions` metadata), a passing one the fresh count; the asset page shows it.
- `freshness_sensor` (RUNNING, every 10 min) computes the stale set (`assess`: a pure function of the
  calendar rows, the materialization times and `now`), requests a run of those checks (job
  `freshness_checks`) whenever the set changed, so the UI's check status follows, and routes each newly
  stale asset+partition once to `alerts.notify` (rule "freshness", warning; cursor-based).
Why not Dagster's ready-made freshness tools (1.13): `dg.FreshnessPolicy` (time_window/cron) and
`dg.build_last_update_freshness_checks` judge the *asset's* last update ("materialized within X of now /
of a cron tick"), whatever the partition; `dg.build_time_partition_freshness_checks` needs time-window
partitions. Our deadline is per dynamic `races` partition and moves with each race's calendar row: last
weekend's race with no raw_laps is stale even while other races materialize every hour. So the rule is
computed here; `dg.build_sensor_for_freshness_checks` (it re-runs checks whose `fresh_until` passed) and
`AutomationCondition.freshness_failed` (it reads FreshnessPolicy states) have nothing to act on. Checks
with a `partitions_def` (one status per race partition) are a preview API in 1.13; this check is not
partitioned and names the partitions in its metadata instead.
Loaded by `f1_assets.definitions` (`CHECKS`, `SENSORS`).
"""

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from f1_assets import alerts, settings
from f1_assets.assets.ingest_jolpica import RACE_ASSETS, RACE_TABLES, STANDINGS_ASSETS, STANDINGS_TABLES, upstream_has
from f1_assets.partitions import parse_race_key, race_key, races_partitions
from f1_assets.resources.fastf1 import FIRST_FASTF1_SEASON
from f1_assets.resources.storage import WarehouseResource
from f1_assets.sensors import load_cursor
from f1_assets.transforms.jolpica import race_started_at

RACE_DURATION = dt.timedelta(hours=3)  # the regulations' cap, suspensions included
RECENT_DAYS = 14
JOLPICA_BOUND = dt.timedelta(hours=24)
FASTF1_BOUND = dt.timedelta(hours=6)
FEATURE_GRACE = dt.timedelta(hours=1)  # automation tick + the feature's run after its input landed
BOUNDS: dict[str, dt.timedelta] = {
    **{asset.key.to_user_string(): JOLPICA_BOUND for asset in [*RACE_ASSETS, *STANDINGS_ASSETS]},
    "fastf1_laps": FASTF1_BOUND,
    "raw_telemetry": FASTF1_BOUND,
    "lap_features": JOLPICA_BOUND + FEATURE_GRACE,
    "telemetry_features": FASTF1_BOUND + FEATURE_GRACE,
}
FASTF1_ERA_ASSETS = ("fastf1_laps", "raw_telemetry", "telemetry_features")
CHECK_NAME = "fresh_after_race"
JOB_NAME = "freshness_checks"
FRESHNESS_INTERVAL_SECONDS = 10 * 60
# alerts sent per tick stop after this long (each waits up to two webhook deadlines): the tick, the cursor and the
# check run must finish inside the daemon's 60 s; unsent alerts go out at the next tick
ALERT_BUDGET_SECONDS = 25
MAX_LISTED = 50  # stale partitions named in a check's metadata (the count is always complete)


@dataclass(frozen=True)
class Race:
    """A race from the calendar: its partition key, start (UTC) and whether it has a sprint."""

    key: str
    start: dt.datetime
    has_sprint: bool = False

    @property
    def end(self) -> dt.datetime:
        return self.start + RACE_DURATION


@dataclass(frozen=True)
class Verdict:
    """One asset of one race: fresh, stale (past `due` with no materialization since the race's end)
    or pending (the race ended, its bound has not passed yet)."""

    asset: str
    partition: str
    state: str  # fresh | stale | pending
    due: dt.datetime
    late_by: dt.timedelta = dt.timedelta(0)

    @property
    def ident(self) -> str:
        return f"{self.asset}|{self.partition}"


def race_start(race_date: object, race_time: object) -> dt.datetime:
    """The race's start in UTC from its calendar row: the calendar's own rule (noon UTC without a time, or with
    one that cannot be read: one odd row must not stop freshness for every race)."""
    clock = race_time.strip() if isinstance(race_time, str) and race_time.strip() else None
    try:
        return race_started_at({"race_date": race_date, "race_time": clock})
    except ValueError:
        return race_started_at({"race_date": race_date, "race_time": None})


def expected_assets(race: Race) -> list[str]:
    """The assets a race should have: its era's and schedule's raw tables, FastF1 from 2018, features."""
    key = parse_race_key(race.key)
    out = []
    for asset in BOUNDS:
        if (asset in RACE_TABLES or asset in STANDINGS_TABLES) and not upstream_has(asset, key, race.has_sprint):
            continue
        if asset in FASTF1_ERA_ASSETS and key.season < FIRST_FASTF1_SEASON:
            continue
        out.append(asset)
    return out


def assess(races: Iterable[Race], updates: Mapping[tuple[str, str], float], now: dt.datetime,
           recent_days: int = RECENT_DAYS) -> list[Verdict]:
    """The freshness of every expected asset of the races that ended within `recent_days` before `now`.

    `updates[(asset, key)]` is the time (epoch seconds) of that partition's latest materialization that
    counts (none: never). Pure: no instance, no warehouse, no clock."""
    since = now - dt.timedelta(days=recent_days)
    verdicts = []
    for race in races:
        if not since <= race.end <= now:
            continue
        for asset in expected_assets(race):
            due = race.end + BOUNDS[asset]
            updated = updates.get((asset, race.key))
            if updated is not None and updated >= race.end.timestamp():
                verdicts.append(Verdict(asset, race.key, "fresh", due))
            elif now <= due:
                verdicts.append(Verdict(asset, race.key, "pending", due))
            else:
                verdicts.append(Verdict(asset, race.key, "stale", due, now - due))
    return verdicts


def stale(verdicts: Iterable[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.state == "stale"]


def duration(delta: dt.timedelta) -> str:
    """'1 d 2 h 5 min' (minutes rounded down)."""
    minutes = int(delta.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    return " ".join([*parts, f"{minutes} min"])


# ------------------------------------------------------------------------- instance and warehouse


def recent_races(warehouse: WarehouseResource, registered: Iterable[str], now: dt.datetime,
                 recent_days: int = RECENT_DAYS) -> list[Race]:
    """The calendar rows of registered `races` partitions whose race date is near the window (`assess`
    applies the exact window on the race's end)."""
    since = (now - dt.timedelta(days=recent_days + 1)).date()
    rows = warehouse.get().query(
        "SELECT season, round, race_date, race_time, has_sprint FROM raw_races "
        "WHERE race_date >= %s AND race_date <= %s ORDER BY race_date, round",
        [since, now.date() + dt.timedelta(days=1)],
    )
    keys = set(registered)
    races = []
    for row in rows.itertuples():
        key = race_key(int(row.season), int(row.round))
        if key in keys:
            races.append(Race(key, race_start(row.race_date, row.race_time), bool(row.has_sprint)))
    return races


def _counts(materialization: dg.AssetMaterialization) -> bool:
    """A materialization that delivered: not a FastF1 load whose host was unreachable (`retryable`)."""
    value = materialization.metadata.get("retryable")
    return not (value is not None and value.value)


def last_updates(instance: dg.DagsterInstance, races: Iterable[Race]) -> dict[tuple[str, str], float]:
    """{(asset, race key): time of the partition's latest materialization} for the races' expected assets."""
    out = {}
    for race in races:
        for asset in expected_assets(race):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[race.key]), limit=1
            ).records
            if records and records[0].asset_materialization is not None and _counts(records[0].asset_materialization):
                out[(asset, race.key)] = records[0].timestamp
    return out


def evaluate(instance: dg.DagsterInstance, warehouse: WarehouseResource, now: dt.datetime) -> list[Verdict]:
    """`assess` on the calendar in the warehouse and the materializations recorded in the instance."""
    races = recent_races(warehouse, instance.get_dynamic_partitions(races_partitions.name), now)
    return assess(races, last_updates(instance, races), now)


# ------------------------------------------------------------------------- the check


def _spec(asset: str) -> dg.AssetCheckSpec:
    hours = int(BOUNDS[asset].total_seconds() // 3600)
    return dg.AssetCheckSpec(
        CHECK_NAME, asset=asset, blocking=False,
        description=f"Every race that ended in the last {RECENT_DAYS} days has this asset within {hours} h of "
                    "the race's end (start + 3 h) (severity WARN)",
        metadata={"severity": "WARN", "blocking": False, "bound_hours": hours},
    )


def check_result(asset: str, verdicts: Sequence[Verdict], now: dt.datetime) -> dg.AssetCheckResult:
    """The `fresh_after_race` result of one asset: fails (WARN) listing its stale partitions."""
    mine = [v for v in verdicts if v.asset == asset]
    late = sorted((v for v in mine if v.state == "stale"), key=lambda v: v.late_by, reverse=True)
    fresh = sum(v.state == "fresh" for v in mine)
    pending = sum(v.state == "pending" for v in mine)
    hours = int(BOUNDS[asset].total_seconds() // 3600)
    metadata = {
        "stale_count": len(late), "fresh_count": fresh, "pending_count": pending, "bound_hours": hours,
        "window_days": RECENT_DAYS, "evaluated_at": dg.MetadataValue.timestamp(now),
        "stale_partitions": dg.MetadataValue.json({
            v.partition: f"{duration(v.late_by)} late (due {v.due:%Y-%m-%d %H:%M} UTC)" for v in late[:MAX_LISTED]}),
    }
    if late:
        description = (f"{len(late)} race partition(s) not materialized within {hours} h of the race's end: "
                       + ", ".join(f"{v.partition} ({duration(v.late_by)} late)" for v in late[:5])
                       + (" …" if len(late) > 5 else ""))
    else:
        description = (f"{fresh} race partition(s) of the last {RECENT_DAYS} days fresh"
                       + (f", {pending} not due yet" if pending else ""))
    return dg.AssetCheckResult(asset_key=asset, check_name=CHECK_NAME, passed=not late,
                               severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata)


@dg.multi_asset_check(
    name="race_freshness_checks",
    specs=[_spec(asset) for asset in BOUNDS],
    can_subset=True,
    description="Freshness after each race: each race asset within its bound of the race's end "
                "(Jolpica tables 24 h, FastF1 6 h, features their inputs' + 1 h); see f1_assets/freshness.py.",
)
def race_freshness_checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    now = dt.datetime.now(dt.UTC)
    verdicts = evaluate(context.instance, warehouse, now)
    for check_key in context.selected_asset_check_keys:
        yield check_result(check_key.asset_key.to_user_string(), verdicts, now)


freshness_checks_job = dg.define_asset_job(
    JOB_NAME, selection=dg.AssetSelection.checks(race_freshness_checks),
    description="Evaluates the fresh_after_race checks (requested by freshness_sensor when the stale set changes).",
)


# ------------------------------------------------------------------------- the sensor


def alert_for(verdict: Verdict) -> alerts.Alert:
    hours = int(BOUNDS[verdict.asset].total_seconds() // 3600)
    return alerts.Alert(
        rule="freshness", severity="warning",
        title=f"{verdict.asset} {verdict.partition} is stale: {duration(verdict.late_by)} past its {hours} h bound",
        summary=(f"No materialization of {verdict.asset} for race {verdict.partition} since the race ended; it was "
                 f"due by {verdict.due:%Y-%m-%d %H:%M} UTC ({hours} h after the end). Look for a failed or "
                 f"waiting race_pipeline run of {verdict.partition}, or materialize it."),
        job="race_pipeline", partition=verdict.partition, asset=verdict.asset,
    )


def _digest(idents: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(idents)).encode()).hexdigest()[:16]


def freshness_tick(instance: dg.DagsterInstance, warehouse: WarehouseResource, cursor: str | None,
                   now: dt.datetime, log: logging.Logger | None = None) -> dg.SensorResult | dg.SkipReason:
    """One tick: the stale set now; a check run when it differs from the cursor's; one alert per newly
    stale asset+partition. A warehouse that cannot be read is a SkipReason (the next tick tries again)."""
    try:
        verdicts = evaluate(instance, warehouse, now)
    except Exception as exc:  # noqa: BLE001 — any warehouse/driver/config error: skip this tick, never crash
        return dg.SkipReason(settings.redact(f"freshness not evaluated (warehouse unavailable): "
                                             f"{type(exc).__name__}: {exc}"))
    late = stale(verdicts)
    idents = sorted(v.ident for v in late)
    state = load_cursor(cursor)
    alerted = set(state.get("alerted", [])) & set(idents)  # kept while stale: the cursor stays small
    # log only (no webhook) counts as done; a webhook that refused is tried again at the next tick
    log_only = not os.environ.get(settings.ALERT_WEBHOOK_URL, "").strip()
    started = time.monotonic()
    for verdict in late:
        if verdict.ident in alerted:
            continue
        if time.monotonic() - started > ALERT_BUDGET_SECONDS:  # a slow webhook: the rest at the next tick
            break
        if alerts.notify(alert_for(verdict), log=log) or log_only:
            alerted.add(verdict.ident)
    digest = _digest(idents)
    changes = int(state.get("changes", 0))
    changed = state.get("digest") != digest  # the first tick counts as a change: the UI gets a status
    if changed:
        changes += 1
    new_cursor = json.dumps({"digest": digest, "changes": changes, "stale": idents,
                             "alerted": sorted(alerted)})
    summary = (f"{len(late)} stale of {len(verdicts)} expected race asset partition(s) "
               f"(races ended in the last {RECENT_DAYS} days)")
    if not changed:
        return dg.SensorResult(skip_reason=f"{summary}; unchanged since the last check run", cursor=new_cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"freshness:{changes}:{digest}",
                                    tags={"f1/trigger": "freshness", "f1/stale_count": str(len(late))})],
        cursor=new_cursor,
    )


@dg.sensor(
    job=freshness_checks_job,
    minimum_interval_seconds=FRESHNESS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Computes which recent race partitions are past their freshness bound; runs the fresh_after_race "
                "checks when that set changes and alerts (rule freshness) once per newly stale asset+partition.",
)
def freshness_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    return freshness_tick(context.instance, warehouse, context.cursor, dt.datetime.now(dt.UTC), log=context.log)


CHECKS = [race_freshness_checks]
SENSORS = [freshness_sensor]
