"""Feature-layer assets: `lap_features` and `telemetry_features`, one partition per race.

Each asset reads its inputs for one race (warehouse tables through the `warehouse` resource, the raw
telemetry Parquet through the `blob_store` resource), builds the frame with the pure transforms of
`f1_assets.transforms.features`, evaluates the quality rules of `f1_assets.checks.features` on it and
only then replaces the race's rows with `Warehouse.replace_partition`. The ERROR rules are blocking
checks: when one fails nothing is written, the stored rows stay, and the step fails naming the rule
and its failing keys (`f1_assets.assets.metadata.reject`), so nothing downstream builds on it.

- `lap_features` is built from the Jolpica tables whether or not FastF1 delivered: without FastF1
  laps its FastF1 columns are NULL and `has_fastf1` is false; it is rebuilt (eager automation) when
  `fastf1_laps` materializes later.
- `telemetry_features` waits for real telemetry: for a 2018+ race without a raw telemetry Parquet it
  does not materialize (an observation says why, the run goes on, downstream steps are skipped); a
  race before 2018, or one FastF1 has no session for, materializes empty with the reason.
`definitions.py` imports `ASSETS` and `CHECKS` from here.
"""

import io
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.metadata import (
    blocking_failures,
    check_result,
    check_specs,
    describe_failures,
    reject,
    table_schema,
)
from f1_assets.checks.features import (
    LAP_FEATURE_CHECK_NAMES,
    TELEMETRY_FEATURE_CHECK_NAMES,
    lap_feature_checks,
    telemetry_feature_checks,
)
from f1_assets.partitions import RaceKey, parse_race_key, races_partitions
from f1_assets.resources.fastf1 import FIRST_FASTF1_SEASON
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.transforms import plots
from f1_assets.transforms.features import build_lap_features, build_telemetry_features

TELEMETRY_KEY = "telemetry/season={season:04d}/round={round:02d}/telemetry.parquet"
LAP_CHECK_SPECS = check_specs("lap_features", LAP_FEATURE_CHECK_NAMES)
TELEMETRY_CHECK_SPECS = check_specs("telemetry_features", TELEMETRY_FEATURE_CHECK_NAMES)


def _read_optional(warehouse: Any, table: str, partition: dict[str, int]) -> pd.DataFrame | None:
    """A partition of a table that may not exist yet (e.g. fastf1_laps before FastF1 ingestion)."""
    if not warehouse.columns(table):
        return None
    frame = warehouse.read_partition(table, partition)
    return frame if len(frame) else None


def _refused(asset: str, key: RaceKey, blocked: list[dg.AssetCheckResult], stored: int) -> str:
    return (f"{asset} for race {key.key}: {describe_failures(blocked)}. Nothing was written; what is stored "
            f"({stored} rows) is kept.")


@dg.asset(
    partitions_def=races_partitions,
    deps=[dg.AssetKey("raw_results"), dg.AssetKey("raw_laps"), dg.AssetKey("raw_pit_stops"),
          dg.AssetKey("fastf1_laps")],
    check_specs=LAP_CHECK_SPECS,
    kinds={"pandas", "sql"},
    group_name="features",
    description="One row per driver-lap: tyre, stint, pit, fuel estimate, gaps, track status, outlier flags.",
)
def lap_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    key = parse_race_key(context.partition_key)
    part = {"season": key.season, "round": key.round}
    wh = warehouse.get()
    races = wh.read_partition("raw_races", part)
    if races.empty:
        raise dg.Failure(f"race {key.key}: no raw_races row; materialize the season's race calendar first")
    results = wh.read_partition("raw_results", part)
    laps = wh.read_partition("raw_laps", part)
    pit_stops = wh.read_partition("raw_pit_stops", part)
    fastf1 = _read_optional(wh, "fastf1_laps", part)
    frame = build_lap_features(races.iloc[0], results, laps, pit_stops, fastf1)
    checks = [check_result(o) for o in lap_feature_checks(frame, results, pit_stops, races,
                                                           has_fastf1=fastf1 is not None)]
    blocked = blocking_failures(checks, LAP_CHECK_SPECS)
    if blocked:
        yield from reject(checks, _refused("lap_features", key, blocked, wh.count("lap_features", part)))
    n = wh.replace_partition("lap_features", frame, part)
    context.log.info(f"lap_features {key.key}: {n} rows, FastF1 {'yes' if fastf1 is not None else 'no'}")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "dagster/column_schema": table_schema(frame),
            "has_fastf1": fastf1 is not None,
            "fastf1_rows": len(fastf1) if fastf1 is not None else 0,
            "outlier_rows": int(frame["is_outlier"].sum()) if n else 0,
            **({"lap_time_distribution": dg.MetadataValue.md(plots.png_markdown(
                plots.lap_time_distribution_png(frame, title=f"{key.key} lap times"), f"{key.key} lap times"))}
               if n else {}),
        },
        check_results=checks,
    )


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
        deps=[dg.AssetKey("raw_telemetry")],
        kinds={"pandas", "parquet", "sql"},
        group_name="features",
        description="Per driver-lap telemetry aggregates: throttle, speed, brake events, DRS share, gap counts. "
                    "Waits (does not materialize) while a 2018+ race has no raw telemetry.",
    )],
    partitions_def=races_partitions,
    check_specs=TELEMETRY_CHECK_SPECS,
    can_subset=True,  # its output is optional: no materialization while telemetry is missing
)
def telemetry_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, blob_store: BlobStoreResource
) -> Iterator[Any]:
    key = parse_race_key(context.partition_key)
    part = {"season": key.season, "round": key.round}
    asset = dg.AssetKey("telemetry_features")
    wh = warehouse.get()
    wanted = [c for c in TELEMETRY_CHECK_SPECS if c.key in context.selected_asset_check_keys]
    if asset not in context.selected_asset_keys:  # only the checks: evaluate them on the stored rows
        stored = wh.read_partition("telemetry_features", part)
        outcomes = {o.name: o for o in telemetry_feature_checks(stored)}
        yield from (check_result(outcomes[c.name]) for c in wanted)
        return

    blob_key = TELEMETRY_KEY.format(season=key.season, round=key.round)
    data = blob_store.get().get(blob_key)
    reason = None
    if data is None:
        no_session = _no_fastf1_session(context.instance, context.partition_key)
        if key.season >= FIRST_FASTF1_SEASON and no_session is None:
            waiting = (f"race {key.key}: no raw telemetry at {blob_key} yet (see raw_telemetry's "
                       "live_timing_available): telemetry_features waits and is not materialized")
            context.log.warning(waiting)
            yield dg.AssetObservation(asset_key=asset, partition=context.partition_key,
                                      metadata={"waiting_for": "raw_telemetry", "reason": waiting})
            return
        reason = (f"no raw telemetry: {no_session}" if no_session else
                  f"no FastF1 telemetry before {FIRST_FASTF1_SEASON}") + ": materialized empty"
        telemetry = pd.DataFrame(columns=["DriverNumber", "Driver", "LapNumber", "SessionTime", "Brake", "DRS",
                                          "Throttle", "Speed"])
        samples = 0
    else:
        telemetry = pd.read_parquet(io.BytesIO(data))
        samples = len(telemetry)
    frame = build_telemetry_features(telemetry, season=key.season, rnd=key.round)
    outcomes = {o.name: o for o in telemetry_feature_checks(frame)}
    checks = [check_result(outcomes[c.name]) for c in wanted]
    blocked = blocking_failures(checks, TELEMETRY_CHECK_SPECS)
    if blocked:
        yield from reject(checks, _refused("telemetry_features", key, blocked, wh.count("telemetry_features", part)))
    n = wh.replace_partition("telemetry_features", frame, part)
    if reason:
        context.log.info(reason)
    metadata: dict[str, Any] = {
        "dagster/row_count": n,
        "dagster/column_schema": table_schema(frame),
        "samples": samples,
        "samples_without_lap": int(telemetry["LapNumber"].isna().sum()) if samples else 0,
    }
    if reason:
        metadata["empty_reason"] = reason
    yield dg.MaterializeResult(asset_key=asset, metadata=metadata, check_results=checks)


ASSETS = [lap_features, telemetry_features]
# The feature checks are declared on the assets (`check_specs`) and evaluated in the same step on the
# frame about to be written, so there are no separate @asset_check definitions to register.
CHECKS: list[dg.AssetChecksDefinition] = []
