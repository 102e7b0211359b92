"""The two ML assets: `split_views` (train/validation/test views) and `driver_profiles` (a table
written whole by the warehouse IO manager, with its quality score: `rules.quality_check`, WARN). The
views have no quality score of their own: they are lap_features' rows, scored per race there."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.ml.config import ProfileConfig, SplitBounds, SplitConfig
from f1_assets.assets.ml.sql import SOURCE_TABLE, SPLITS, create_split_views, read_train, split_summary, view_exists
from f1_assets.checks import rules
from f1_assets.io_managers.warehouse import DERIVED_METADATA
from f1_assets.resources.storage import WarehouseResource
from f1_assets.tables import table
from f1_assets.transforms import plots
from f1_assets.transforms import profiles as prof
from f1_assets.transforms.quality import quality_report

PROFILES_TABLE = "driver_profiles"


@dg.multi_asset(
    name="split_views",
    specs=[
        dg.AssetSpec(s, deps=[dg.AssetKey(SOURCE_TABLE)], group_name="ml", kinds={"sql"},
                     metadata={"dagster/column_schema": table(SOURCE_TABLE).table_schema()},  # the views' columns
                     description=f"View over lap_features: the {s} split by race_date (boundaries: SplitConfig).")
        for s in SPLITS
    ],
)
def split_views(context: dg.AssetExecutionContext, config: SplitConfig,
                warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    try:
        bounds = SplitBounds.from_config(config)
    except ValueError as exc:
        raise dg.Failure(f"invalid split boundaries: {exc}") from exc
    wh = warehouse.get()
    texts = create_split_views(wh, bounds)
    summary = split_summary(wh)
    context.log.info(f"split views on {wh.kind}: {bounds.as_dict()}")
    for split, (lo, hi) in bounds.ranges().items():
        s = summary[summary["split"] == split]
        first = min(s["first_date"]) if len(s) else None
        last = max(s["last_date"]) if len(s) else None
        yield dg.MaterializeResult(
            asset_key=split,
            metadata={
                "dagster/row_count": int(s["n_rows"].sum()),
                "dagster/column_schema": table(SOURCE_TABLE).table_schema(),
                "races": len(s),
                "race_ids": dg.MetadataValue.json(sorted(s["race_id"].astype(str))[:200]),
                "first_race_date": first.isoformat() if first else None,
                "last_race_date": last.isoformat() if last else None,
                "lower_bound": lo.isoformat() if lo else "open",
                "upper_bound": hi.isoformat() if hi else "open",
                "split_bounds": dg.MetadataValue.json(bounds.as_dict()),
                "view_sql": dg.MetadataValue.md(f"```sql\n{texts[split]}\n```"),
                "warehouse": wh.kind,
            },
        )


@dg.asset(
    deps=[dg.AssetKey("train"), dg.AssetKey("raw_results")],
    group_name="ml",
    kinds={"pandas", "sql", "matplotlib"},
    io_manager_key="warehouse_io_manager",  # the whole table, replaced in one transaction
    metadata={"dagster/column_schema": table(PROFILES_TABLE).table_schema(), DERIVED_METADATA: True},
    check_specs=[rules.quality_spec(PROFILES_TABLE)],
    description="One row per train-split driver: aggression, consistency, pressure response, tyre management, "
                "career races, data quality (formulas: f1_assets/transforms/profiles.py). Reads the train view only.",
)
def driver_profiles(context: dg.AssetExecutionContext, config: ProfileConfig,
                    warehouse: WarehouseResource) -> Iterator[dg.Output | dg.AssetCheckResult]:
    wh = warehouse.get()
    if not view_exists(wh, "train"):
        raise dg.Failure("the `train` view does not exist: materialize train/validation/test first")
    laps, results = read_train(wh)
    params = prof.ProfileParams(**config.model_dump())
    frame = prof.driver_profiles(laps, results, params)
    frame = frame.assign(updated_at=pd.Timestamp.now(tz="UTC"))
    n = len(frame)
    dates = pd.to_datetime(laps["race_date"]) if len(laps) else pd.Series(dtype="datetime64[ns]")
    png = plots.profile_scatter_png(frame)
    if n == 0:
        context.log.warning("the train split has no rows: driver_profiles is empty")
    metadata: dict[str, Any] = {
        "train_rows": len(laps),
        "train_races": int(laps["race_id"].nunique()) if len(laps) else 0,
        "train_first_race_date": dates.min().date().isoformat() if len(laps) else None,
        "train_last_race_date": dates.max().date().isoformat() if len(laps) else None,
        **{f"drivers_with_{s}": int(frame[s].notna().sum()) for s in prof.SCORES},
        "drivers_with_null_reason": int(frame["null_reason"].notna().sum()),
        "params": dg.MetadataValue.json(config.model_dump()),
        "plot_png_bytes": len(png),
        "consistency_vs_aggression": dg.MetadataValue.md(plots.png_markdown(png, "consistency vs aggression")),
    }
    quality = [quality_report(frame, table(PROFILES_TABLE))]
    yield rules.quality_check(PROFILES_TABLE, quality)
    yield dg.Output(frame, metadata={**metadata, **rules.quality_metadata(quality)})
