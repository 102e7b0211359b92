"""Feature-layer assets: `lap_features` and `telemetry_features`, one partition per race.

Each asset reads its inputs for one race (warehouse tables through the `warehouse` resource, the raw
telemetry Parquet through the `blob_store` resource), builds the frame with the pure transforms of
`f1_assets.transforms.features`, replaces the race's rows with `Warehouse.replace_partition`, and
reports the quality rules of `f1_assets.checks.features` as asset checks in the same step.
`definitions.py` imports `ASSETS` and `CHECKS` from here.
"""

import io
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.metadata import check_result, table_schema
from f1_assets.checks.features import (
    LAP_FEATURE_CHECK_NAMES,
    TELEMETRY_FEATURE_CHECK_NAMES,
    lap_feature_checks,
    telemetry_feature_checks,
)
from f1_assets.partitions import parse_race_key, races_partitions
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.transforms import plots
from f1_assets.transforms.features import build_lap_features, build_telemetry_features

TELEMETRY_KEY = "telemetry/season={season:04d}/round={round:02d}/telemetry.parquet"

def _check_specs(asset: str, names: dict[str, tuple[str, str]]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=asset, description=f"{description} (severity {severity})")
        for name, (severity, description) in names.items()
    ]


def _read_optional(warehouse: Any, table: str, partition: dict[str, int]) -> pd.DataFrame | None:
    """A partition of a table that may not exist yet (e.g. fastf1_laps before FastF1 ingestion)."""
    if not warehouse.columns(table):
        return None
    frame = warehouse.read_partition(table, partition)
    return frame if len(frame) else None


@dg.asset(
    partitions_def=races_partitions,
    deps=[dg.AssetKey("raw_results"), dg.AssetKey("raw_laps"), dg.AssetKey("raw_pit_stops"),
          dg.AssetKey("fastf1_laps")],
    check_specs=_check_specs("lap_features", LAP_FEATURE_CHECK_NAMES),
    kinds={"pandas", "sql"},
    group_name="features",
    description="One row per driver-lap: tyre, stint, pit, fuel estimate, gaps, track status, outlier flags.",
)
def lap_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
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
    n = wh.replace_partition("lap_features", frame, part)
    outcomes = lap_feature_checks(frame, results, pit_stops, races, has_fastf1=fastf1 is not None)
    context.log.info(f"lap_features {key.key}: {n} rows, FastF1 {'yes' if fastf1 is not None else 'no'}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "dagster/column_schema": table_schema(frame),
            "has_fastf1": fastf1 is not None,
            "outlier_rows": int(frame["is_outlier"].sum()) if n else 0,
            **({"lap_time_distribution": dg.MetadataValue.md(plots.png_markdown(
                plots.lap_time_distribution_png(frame, title=f"{key.key} lap times"), f"{key.key} lap times"))}
               if n else {}),
        },
        check_results=[check_result(o) for o in outcomes],
    )


@dg.asset(
    partitions_def=races_partitions,
    deps=[dg.AssetKey("raw_telemetry")],
    check_specs=_check_specs("telemetry_features", TELEMETRY_FEATURE_CHECK_NAMES),
    kinds={"pandas", "parquet", "sql"},
    group_name="features",
    description="Per driver-lap telemetry aggregates: throttle, speed, brake events, DRS share, gap counts.",
)
def telemetry_features(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, blob_store: BlobStoreResource
) -> dg.MaterializeResult:
    key = parse_race_key(context.partition_key)
    part = {"season": key.season, "round": key.round}
    blob_key = TELEMETRY_KEY.format(season=key.season, round=key.round)
    data = blob_store.get().get(blob_key)
    reason = None
    if data is None:
        reason = f"no raw telemetry at {blob_key} (pre-2018 race or not ingested): materialized empty"
        telemetry = pd.DataFrame(columns=["DriverNumber", "Driver", "LapNumber", "SessionTime", "Brake", "DRS",
                                          "Throttle", "Speed"])
        samples = 0
    else:
        telemetry = pd.read_parquet(io.BytesIO(data))
        samples = len(telemetry)
    frame = build_telemetry_features(telemetry, season=key.season, rnd=key.round)
    n = warehouse.get().replace_partition("telemetry_features", frame, part)
    if reason:
        context.log.warning(reason)
    metadata: dict[str, Any] = {
        "dagster/row_count": n,
        "dagster/column_schema": table_schema(frame),
        "samples": samples,
        "samples_without_lap": int(telemetry["LapNumber"].isna().sum()) if samples else 0,
    }
    if reason:
        metadata["empty_reason"] = reason
    return dg.MaterializeResult(
        metadata=metadata, check_results=[check_result(o) for o in telemetry_feature_checks(frame)]
    )


ASSETS = [lap_features, telemetry_features]
# The feature checks are declared on the assets (`check_specs`) and evaluated in the same step on the
# frame just written, so there are no separate @asset_check definitions to register.
CHECKS: list[dg.AssetChecksDefinition] = []
