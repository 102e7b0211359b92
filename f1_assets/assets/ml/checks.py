"""The split rules (`f1_assets.checks.rules.SPLITS`), evaluated on the views as they are now."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.ml.config import SPLITS, SplitBounds, SplitConfig
from f1_assets.assets.ml.sql import split_coverage, split_summary, view_exists
from f1_assets.checks.rules import SPLITS as SPLIT_RULES
from f1_assets.checks.rules import CheckOutcome
from f1_assets.resources.storage import WarehouseResource

MAX_KEYS = 50  # failing keys listed in check metadata


@dataclass(frozen=True)
class SplitCheckOutcome:
    """A split rule's outcome for one of the three split assets."""

    asset: str
    outcome: CheckOutcome


def _keys(values: Any) -> list[str]:
    return sorted({str(v) for v in values})[:MAX_KEYS]


def evaluate_split_checks(summary: pd.DataFrame, coverage: pd.DataFrame,
                          bounds: SplitBounds) -> list[SplitCheckOutcome]:
    """Pure evaluation of the split rules on `split_summary` / `split_coverage` frames."""
    out: list[SplitCheckOutcome] = []
    b = bounds.as_dict()
    by_split = {s: summary[summary["split"] == s] for s in SPLITS}

    def bad_dates(split: str) -> pd.DataFrame:
        lo, hi = bounds.ranges()[split]
        s = by_split[split]
        bad = s["first_date"].isna() | s["last_date"].isna()
        if lo is not None:
            bad |= s["first_date"].map(lambda d: d is not None and not pd.isna(d) and d < lo)
        if hi is not None:
            bad |= s["last_date"].map(lambda d: d is not None and not pd.isna(d) and d > hi)
        return s[bad]

    for split, name, rule in (
        ("train", "train_ends_by_boundary", f"race_date <= {b['train_end']}"),
        ("validation", "validation_within_boundaries",
         f"{b['validation_start']} <= race_date <= {b['validation_end']}"),
        ("test", "test_starts_at_boundary", f"race_date >= {b['test_start']}"),
    ):
        bad = bad_dates(split)
        out.append(SplitCheckOutcome(split, SPLIT_RULES[name].outcome(
            bad.empty, description=f"every race in `{split}` has {rule}"
            + ("" if bad.empty else f": {len(bad)} race(s) do not"), metadata=
            {"failing_races": len(bad), "failing_rows": int(bad["n_rows"].sum()), "failing_keys": _keys(bad["race_id"]),
             "rule": rule, **{f"bound_{k}": v for k, v in b.items()}},
        )))

    splits_of = summary.groupby("race_id")["split"].agg(lambda s: sorted(set(s)))
    shared = splits_of[splits_of.map(len) > 1]
    for split in SPLITS:
        mine = shared[shared.map(lambda s, sp=split: sp in s)]
        out.append(SplitCheckOutcome(split, SPLIT_RULES["no_race_in_another_split"].outcome(
            mine.empty, description=f"no race of `{split}` is in another split"
            + ("" if mine.empty else f": {len(mine)} race(s) are"),
            metadata={"failing_races": len(mine), "failing_keys": _keys(mine.index),
                      "splits_of_failing": {k: v for k, v in list(mine.items())[:MAX_KEYS]}})))

    multi = coverage[coverage["n_splits"] > 1]
    outside = coverage[coverage["n_splits"] == 0]
    total = int(coverage["n_rows"].sum())
    passed = multi.empty and outside.empty
    severity = "ERROR" if not multi.empty else "WARN"
    desc = (f"{total} lap_features rows: {int(multi['n_rows'].sum())} in more than one split, "
            f"{int(outside['n_rows'].sum())} outside all splits")
    out.append(SplitCheckOutcome("train", SPLIT_RULES["every_row_in_one_split"].outcome(
        passed, severity=severity, description=desc, metadata=
        {"lap_features_rows": total, "rows_in_several_splits": int(multi["n_rows"].sum()),
         "rows_outside_splits": int(outside["n_rows"].sum()),
         "races_in_several_splits": _keys(multi["race_id"]),
         "races_outside_splits": _keys(outside["race_id"].fillna("NULL")),
         "outside_rows_without_race_date": int(outside.loc[outside["race_date"].isna(), "n_rows"].sum())},
    )))
    return out


# Every split rule is about the views' own rows: blocking, so a run that also materializes
# driver_profiles does not build them on a leaking split (the WARN outcome of every_row_in_one_split,
# rows outside all splits, does not block).
SPLIT_CHECK_SPECS = [
    *(SPLIT_RULES[n].spec(s) for s, n in (("train", "train_ends_by_boundary"),
                                           ("validation", "validation_within_boundaries"),
                                           ("test", "test_starts_at_boundary"))),
    *(SPLIT_RULES["no_race_in_another_split"].spec(s) for s in SPLITS),
    SPLIT_RULES["every_row_in_one_split"].spec("train"),
]


def _latest_bounds(instance: dg.DagsterInstance) -> tuple[SplitBounds, str]:
    event = instance.get_latest_materialization_event(dg.AssetKey("train"))
    if event is not None and event.asset_materialization is not None:
        value = event.asset_materialization.metadata.get("split_bounds")
        if value is not None:
            data = value.value if not isinstance(value.value, str) else json.loads(value.value)
            return SplitBounds.from_values(data), "latest materialization of train"
    return SplitBounds.from_config(SplitConfig()), "defaults (train never materialized in this instance)"


@dg.multi_asset_check(specs=SPLIT_CHECK_SPECS, name="split_checks",
                      description="The split rules, evaluated on the views as they are in the warehouse now.")
def split_checks(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult]:
    bounds, source = _latest_bounds(context.instance)
    wh = warehouse.get()
    missing = [s for s in SPLITS if not view_exists(wh, s)]
    if missing:
        for spec in SPLIT_CHECK_SPECS:
            yield dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=False,
                                      severity=dg.AssetCheckSeverity.ERROR,
                                      description=f"split view(s) {missing} do not exist; materialize the splits",
                                      metadata={"missing_views": dg.MetadataValue.json(missing)})
        return
    for o in evaluate_split_checks(split_summary(wh), split_coverage(wh), bounds):
        yield o.outcome.result(o.asset, bounds_from=source)
