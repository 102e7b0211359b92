"""Feature-layer assets: `lap_features` and `telemetry_features`, one partition per race.

Each asset is a function of its input frames, loaded for the same race by the IO managers that wrote
them (warehouse tables; the raw telemetry Parquet): it builds the frame with the pure transforms of
`f1_assets.transforms.features`, evaluates the rules of `f1_assets.checks.features` on it and only
then returns it to the warehouse IO manager, which replaces the race's rows. The ERROR rules are
blocking checks: when one fails nothing is written, the stored rows stay, and the step fails naming
the rule and its failing keys (`f1_assets.checks.rules.gate`), so nothing downstream builds on it.

- `lap_features(raw_results, raw_laps, raw_pit_stops, fastf1_laps)` is built from the Jolpica tables
  whether or not FastF1 delivered: without FastF1 laps its FastF1 columns are NULL; it is rebuilt
  (eager automation) when `fastf1_laps` materializes later. Its race row comes from `raw_races`
  (season-partitioned, no graph edge: see `assets/ingest_jolpica.py`). Its metadata has the race's
  weather bin `race_weather` and, when the race has no weather, `weather_reason` (before 2018, no FastF1
  laps, or the reason fastf1_laps recorded, e.g. "no weather stream recorded"); missing weather never fails it.
- `telemetry_features(raw_telemetry)` waits for real telemetry: for a 2018+ race without a raw
  telemetry Parquet it does not materialize (an observation says why, the run goes on, downstream
  steps are skipped); a race before 2018, or one FastF1 has no session for, materializes empty with
  the reason.
Both also evaluate their quality score (`rules.quality_check`, WARN, never blocking) on the frame they
write and record it in the materialization metadata (`quality_score`, null counts per field).
`definitions.py` imports `ASSETS` and `CHECKS` from here.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.checks import rules
from f1_assets.checks.features import lap_feature_checks, telemetry_feature_checks
from f1_assets.checks.rules import LAP_FEATURES, TELEMETRY_FEATURES, gate
from f1_assets.io_managers import read_table, stored_rows
from f1_assets.io_managers.warehouse import DERIVED_METADATA
from f1_assets.partitions import RACES_PER_RUN, batched_asset, parse_race_key, races_partitions
from f1_assets.resources.fastf1 import FIRST_FASTF1_SEASON
from f1_assets.resources.storage import WarehouseResource
from f1_assets.tables import table
from f1_assets.transforms import plots
from f1_assets.transforms.features import build_lap_features, build_telemetry_features
from f1_assets.transforms.jolpica import by_race
from f1_assets.transforms.quality import quality_report
from f1_assets.transforms.telemetry import empty_telemetry

LAP_CHECK_SPECS = [*rules.specs("lap_features", LAP_FEATURES.values()), rules.quality_spec("lap_features")]
TELEMETRY_CHECK_SPECS = [*rules.specs("telemetry_features", TELEMETRY_FEATURES.values()),
                         rules.quality_spec("telemetry_features")]


@batched_asset(
    RACES_PER_RUN,
    partitions_def=races_partitions,
    check_specs=LAP_CHECK_SPECS,
    kinds={"pandas", "sql"},
    group_name="features",
    io_manager_key="warehouse_io_manager",
    metadata={"dagster/column_schema": table("lap_features").table_schema(), DERIVED_METADATA: True},
    description="One row per driver-lap: tyre, stint, pit, fuel estimate, gaps, track status, outlier flags.",
)
def lap_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_results: pd.DataFrame,
    raw_laps: pd.DataFrame, raw_pit_stops: pd.DataFrame, fastf1_laps: pd.DataFrame,
) -> Iterator[Any]:
    """One race, or a batch of races (a backfill of many partitions in one run: the inputs hold every
    race of it, split here per race; one check result per rule, naming the failing races)."""
    keys = [parse_race_key(k) for k in context.partition_keys]
    calendar = read_table(warehouse, "raw_races", sorted({str(k.season) for k in keys}))
    inputs = {name: by_race(frame) for name, frame in
              (("results", raw_results), ("laps", raw_laps), ("pit_stops", raw_pit_stops), ("fastf1", fastf1_laps))}
    empty = {"results": raw_results.iloc[0:0], "laps": raw_laps.iloc[0:0], "pit_stops": raw_pit_stops.iloc[0:0]}
    frames, outcomes, reports, with_fastf1 = [], {}, [], 0
    weather: dict[str, tuple[str, str | None]] = {}  # race key → (race_weather, why it has no weather)
    for key in keys:
        races = calendar[(calendar["season"] == key.season) & (calendar["round"] == key.round)].reset_index(drop=True)
        if races.empty:
            raise dg.Failure(f"race {key.key}: no raw_races row; materialize the season's race calendar first",
                             allow_retries=False)
        part = {name: inputs[name].get((key.season, key.round), empty.get(name)) for name in empty}
        fastf1 = inputs["fastf1"].get((key.season, key.round))
        frame = build_lap_features(races.iloc[0], part["results"], part["laps"], part["pit_stops"], fastf1)
        outcomes[key.key] = lap_feature_checks(frame, part["results"], part["pit_stops"], races,
                                               has_fastf1=fastf1 is not None)
        reports.append(quality_report(frame, table("lap_features"), key.season, key.key))
        frames.append(frame)
        with_fastf1 += fastf1 is not None
        weather[key.key] = _race_weather(context.instance, key, fastf1, frame)
    what = keys[0].key if len(keys) == 1 else f"{keys[0].key}…{keys[-1].key} ({len(keys)} races)"
    checks = [*rules.results("lap_features", rules.merge(outcomes)), rules.quality_check("lap_features", reports)]
    yield from gate(checks, LAP_CHECK_SPECS, f"lap_features for race {what}",
                    (lambda: stored_rows(warehouse, "lap_features", context.partition_key)) if len(keys) == 1
                    else f"the rows of all {len(keys)} races")
    frames = [f for f in frames if len(f)] or frames[:1]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    context.log.info(f"lap_features {what}: {len(frame)} rows, FastF1 for {with_fastf1} of {len(keys)} races")
    yield from checks
    metadata: dict[str, Any] = {
        "has_fastf1": with_fastf1 == len(keys) if len(keys) == 1 else with_fastf1,
        "fastf1_rows": len(fastf1_laps),
        "outlier_rows": int(frame["is_outlier"].sum()) if len(frame) else 0,
        **rules.quality_metadata(reports),
    }
    if len(keys) == 1:
        metadata["race_weather"], reason = weather[keys[0].key]
        if reason:
            metadata["weather_reason"] = reason
    else:
        metadata["race_weather"] = dg.MetadataValue.json({k: w for k, (w, _) in weather.items()})
        metadata["weather_reasons"] = dg.MetadataValue.json({k: r for k, (_, r) in weather.items() if r})
    if len(keys) == 1 and len(frame):
        metadata["lap_time_distribution"] = dg.MetadataValue.md(plots.png_markdown(
            plots.lap_time_distribution_png(frame, title=f"{what} lap times"), f"{what} lap times"))
    if len(keys) > 1:
        metadata["races_in_run"] = len(keys)
        metadata["races_with_fastf1"] = with_fastf1
    yield dg.Output(frame, metadata=metadata)


def _race_weather(instance: dg.DagsterInstance, key: Any, fastf1: pd.DataFrame | None,
                  frame: pd.DataFrame) -> tuple[str, str | None]:
    """The race's weather bin and, when no lap has weather, why (fastf1_laps' own reason when it gave one)."""
    bin_ = str(frame["race_weather"].iloc[0]) if len(frame) else "UNKNOWN"
    if len(frame) and frame["rainfall"].notna().any():
        return bin_, None
    if key.season < FIRST_FASTF1_SEASON:
        return bin_, f"no FastF1 weather before {FIRST_FASTF1_SEASON}"
    if fastf1 is None or fastf1.empty:
        return bin_, "no FastF1 laps for this race"
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("fastf1_laps"), asset_partitions=[key.key]), limit=1
    ).records
    reason = records[0].asset_materialization.metadata.get("weather_reason") if records else None
    return bin_, str(reason.value) if reason is not None else "no weather samples in fastf1_laps"


def _no_fastf1_session(instance: dg.DagsterInstance, partition_key: str) -> str | None:
    """The reason raw_telemetry's latest materialization gave for having no FastF1 session, if it did."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_telemetry"), asset_partitions=[partition_key]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata if records else {}
    state, reason = metadata.get("live_timing"), metadata.get("live_timing_reason")
    if state is not None and state.value == "not_applicable":
        return str(reason.value) if reason is not None else "FastF1 has no session for this race"
    return None


@dg.multi_asset(
    name="telemetry_features",
    specs=[dg.AssetSpec(
        "telemetry_features",
        deps=["raw_telemetry"],
        skippable=True,  # no materialization while a 2018+ race has no raw telemetry
        kinds={"pandas", "parquet", "sql"},
        group_name="features",
        metadata={"dagster/column_schema": table("telemetry_features").table_schema(), DERIVED_METADATA: True},
        description="Per driver-lap telemetry aggregates: throttle, speed, brake events, DRS share, gap counts. "
                    "Waits (does not materialize) while a 2018+ race has no raw telemetry.",
    ).with_io_manager_key("warehouse_io_manager")],
    ins={"raw_telemetry": dg.AssetIn("raw_telemetry")},
    partitions_def=races_partitions,
    check_specs=TELEMETRY_CHECK_SPECS,
    can_subset=True,  # its output and its checks are optional: nothing while telemetry is missing
)
def telemetry_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, raw_telemetry: pd.DataFrame | None,
) -> Iterator[Any]:
    key = parse_race_key(context.partition_key)
    if dg.AssetKey("telemetry_features") not in context.selected_asset_keys:  # only checks: on the stored rows
        stored = read_table(warehouse, "telemetry_features", context.partition_key)
        outcomes = {o.name: o.result("telemetry_features") for o in telemetry_feature_checks(stored)}
        outcomes[rules.QUALITY.name] = rules.quality_check("telemetry_features", [quality_report(
            stored, table("telemetry_features"), key.season, context.partition_key)])
        yield from (outcomes[c.name] for c in TELEMETRY_CHECK_SPECS if c.key in context.selected_asset_check_keys)
        return
    reason = None
    if raw_telemetry is None:
        no_session = _no_fastf1_session(context.instance, context.partition_key)
        if key.season >= FIRST_FASTF1_SEASON and no_session is None:
            waiting = (f"race {key.key}: no raw telemetry yet (see raw_telemetry's live_timing_available): "
                       "telemetry_features waits and is not materialized")
            context.log.warning(waiting)
            yield dg.AssetObservation(asset_key="telemetry_features", partition=context.partition_key,
                                      metadata={"waiting_for": "raw_telemetry", "reason": waiting})
            return
        reason = (f"no raw telemetry: {no_session}" if no_session else
                  f"no FastF1 telemetry before {FIRST_FASTF1_SEASON}") + ": materialized empty"
    telemetry = empty_telemetry() if raw_telemetry is None else raw_telemetry
    frame = build_telemetry_features(telemetry, season=key.season, rnd=key.round)
    quality = [quality_report(frame, table("telemetry_features"), key.season, context.partition_key)]
    checks = [*rules.results("telemetry_features", telemetry_feature_checks(frame)),
              rules.quality_check("telemetry_features", quality)]
    yield from gate(checks, TELEMETRY_CHECK_SPECS, f"telemetry_features for race {key.key}",
                    lambda: stored_rows(warehouse, "telemetry_features", context.partition_key))
    if reason:
        context.log.info(reason)
    metadata: dict[str, Any] = {
        "samples": len(telemetry),
        "samples_without_lap": int(telemetry["LapNumber"].isna().sum()) if len(telemetry) else 0,
    }
    if reason:
        metadata["empty_reason"] = reason
    metadata.update(rules.quality_metadata(quality))
    yield from checks
    yield dg.Output(frame, output_name="telemetry_features", metadata=metadata)


ASSETS = [lap_features, telemetry_features]
# The feature rules are declared on the assets (`check_specs`) and evaluated in the same step on the
# frame about to be written, so there are no separate @asset_check definitions to register.
CHECKS: list[dg.AssetChecksDefinition] = []
