"""The era assets of the ML group (unpartitioned; loaded through `f1_assets.assets.ml`):

- `era_statistics` (table, replaced whole): per regulation era × telemetry feature, n / mean / sample std
  of `telemetry_features` rows of the races in the `train` view only (no leakage: validation and test
  rows never reach the statistics). Formulas and the era table: `f1_assets.transforms.eras`.
- `standardised_telemetry_features` (a view): every telemetry_features row with its era and
  `<feature>_z = (x - mean_era) / std_era` from `era_statistics`, NULL with `null_reason` where the era
  has n < 2, std 0 or no statistics. A view rather than a table: the z-scores always use exactly the
  statistics that `era_statistics` shows, and follow each telemetry_features partition as it is
  rewritten, with no copy of the table to go stale (the split views are views for the same reason).
- `circuit_versions` (table, replaced whole): layouts told apart by the median telemetry lap distance
  (telemetry_features.lap_distance_m) per race; all races with telemetry, since a layout is a property of
  the track, not a statistic learnt from the train split.
"""


import json
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.ml.config import SplitBounds, SplitConfig
from f1_assets.assets.ml.sql import view_exists
from f1_assets.checks import rules
from f1_assets.io_managers.warehouse import DERIVED_METADATA
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import Warehouse
from f1_assets.tables import table
from f1_assets.transforms import eras
from f1_assets.transforms.quality import quality_report

STATISTICS_TABLE = "era_statistics"
VERSIONS_TABLE = "circuit_versions"
STANDARDISED_VIEW = "standardised_telemetry_features"
TELEMETRY_TABLE = "telemetry_features"
FEATURES = eras.standardised_features(table(TELEMETRY_TABLE).column_names)
VIEW_KEYS = ("season", "round", "race_id", "driver_number", "driver_code", "lap_number")
TRAIN_ONLY = rules.ALL["era_statistics_train_only"]
USABLE = rules.ALL["era_statistics_usable"]
MAX_KEYS = 20
STATISTICS_SPECS = [TRAIN_ONLY.spec(STATISTICS_TABLE), USABLE.spec(STATISTICS_TABLE),
                    rules.quality_spec(STATISTICS_TABLE)]


def read_train_telemetry(wh: Warehouse, features: Sequence[str]) -> pd.DataFrame:
    """telemetry_features rows (season, round, race_date, features) of the races in the `train` view only."""
    cols = ", ".join(f"t.{wh.quote(c)}" for c in ("season", "round", *features))
    return wh.query(
        f"SELECT {cols}, r.race_date FROM {wh.quote(TELEMETRY_TABLE)} t JOIN (SELECT DISTINCT season, round, "
        f"race_date FROM {wh.quote('train')}) r ON t.season = r.season AND t.round = r.round"
    )


def train_upper_bound(instance: dg.DagsterInstance) -> tuple[str, str]:
    """The train view's last allowed race date (ISO) and where it comes from: the latest materialization
    of `train`, else SplitConfig's default."""
    event = instance.get_latest_materialization_event(dg.AssetKey("train"))
    mat = event.asset_materialization if event is not None else None
    value = mat.metadata.get("split_bounds") if mat is not None else None
    if value is not None:
        data = value.value if not isinstance(value.value, str) else json.loads(value.value)
        return SplitBounds.from_values(data).train_end.isoformat(), "latest materialization of train"
    return SplitBounds.from_config(SplitConfig()).train_end.isoformat(), "SplitConfig default"


def stale_statistics(instance: dg.DagsterInstance) -> str | None:
    """Why the stored era_statistics must not standardise now, or None: they were computed with another
    train boundary than the train view's current one (a later one would leak validation/test races into
    every z-score; an earlier one leaves train races out)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(STATISTICS_TABLE))
    mat = event.asset_materialization if event is not None else None
    value = mat.metadata.get("train_end") if mat is not None else None
    if value is None:
        return None
    used = str(value.value)
    bound, source = train_upper_bound(instance)
    if used == bound:
        return None
    return (f"era_statistics were computed with train_end {used}, but the train view now ends {bound} ({source}): "
            f"materialize era_statistics before {STANDARDISED_VIEW} (the view was not changed)")


def train_only_outcome(train: pd.DataFrame, bound: str, source: str) -> rules.CheckOutcome:
    """`era_statistics_train_only`: no race behind the statistics is after the train boundary."""
    races = train[["season", "round", "race_date"]].drop_duplicates() if len(train) else pd.DataFrame(
        columns=["season", "round", "race_date"])
    dates = pd.to_datetime(races["race_date"])
    late = races[dates > pd.Timestamp(bound)]
    keys = sorted(f"{int(s)}-{int(r):02d}" for s, r in zip(late["season"], late["round"], strict=True))
    metadata = {"train_races": len(races), "failing_races": len(late), "failing_keys": keys[:MAX_KEYS],
                "train_end": bound, "bound_from": source,
                "last_race_date": dates.max().date().isoformat() if len(races) else None}
    return TRAIN_ONLY.outcome(late.empty, metadata, description=f"{len(races)} train race(s) behind the statistics, "
                              f"{len(late)} after train_end {bound}")


def usable_outcome(stats: pd.DataFrame) -> rules.CheckOutcome:
    """`era_statistics_usable`: every (era, feature) of an era with train-split rows can standardise, and
    at least one can."""
    with_rows = stats[stats.groupby("era")["n"].transform("max") > 0]
    bad = with_rows[with_rows["null_reason"].notna()]
    usable = int(stats["null_reason"].isna().sum())
    passed = bad.empty and usable > 0
    keys = [f"{e}/{f}: {r}" for e, f, r in zip(bad["era"], bad["feature"], bad["null_reason"], strict=True)]
    what = ("no era has train-split telemetry: every standardised value is NULL" if not len(with_rows)
            else f"{usable} (era, feature) pairs usable, {len(bad)} not in eras with train-split rows")
    return USABLE.outcome(passed, description=what, metadata={
        "usable_pairs": usable, "eras_with_train_rows": sorted(set(with_rows["era"])),
        "failing_pairs": len(bad), "failing_keys": keys[:MAX_KEYS]})


@dg.asset(
    deps=[dg.AssetKey("train"), dg.AssetKey(TELEMETRY_TABLE)],
    group_name="ml",
    kinds={"pandas", "sql"},
    io_manager_key="warehouse_io_manager",  # the whole table, replaced in one transaction
    metadata={"dagster/column_schema": table(STATISTICS_TABLE).table_schema(), DERIVED_METADATA: True},
    check_specs=STATISTICS_SPECS,
    description="Per regulation era and telemetry feature: n, mean, sample std of the train split's "
                "telemetry_features (f1_assets/transforms/eras.py). Reads the train view only.",
)
def era_statistics(context: dg.AssetExecutionContext,
                   warehouse: WarehouseResource) -> Iterator[dg.Output | dg.AssetCheckResult]:
    wh = warehouse.get()
    if not view_exists(wh, "train"):
        raise dg.Failure("the `train` view does not exist: materialize train/validation/test first")
    train = read_train_telemetry(wh, FEATURES)
    stats = eras.era_statistics(train, FEATURES).assign(computed_at=pd.Timestamp.now(tz="UTC"))
    bound, source = train_upper_bound(context.instance)
    checks = [train_only_outcome(train, bound, source).result(STATISTICS_TABLE),
              usable_outcome(stats).result(STATISTICS_TABLE)]
    if train.empty:
        context.log.warning("the train split has no telemetry_features rows: every statistic is NULL (n = 0)")
    usable = stats[stats["null_reason"].isna()]
    # the train rows themselves, standardised: how many lie beyond 3 sigma of their era, per feature
    z = eras.standardise(train, stats, FEATURES)
    beyond = {f: int((z[f"{f}_z"].abs() > 3).sum()) for f in FEATURES if z[f"{f}_z"].notna().any()}
    metadata: dict[str, Any] = {
        "features": dg.MetadataValue.json(FEATURES),
        "train_telemetry_rows": len(train),
        "train_races": int(train[["season", "round"]].drop_duplicates().shape[0]) if len(train) else 0,
        "eras_with_statistics": dg.MetadataValue.json(sorted(set(usable["era"]))),
        "usable_pairs": len(usable),
        "train_rows_beyond_3_sigma": dg.MetadataValue.json(beyond),
        "null_reasons": dg.MetadataValue.json(
            {f"{e}/{f}": r for e, f, r in zip(stats["era"], stats["feature"], stats["null_reason"], strict=True)
             if r is not None and e in set(stats.loc[stats["n"] > 0, "era"])}),
        "era_table": dg.MetadataValue.md(_markdown(eras.eras_frame())),
        "train_end": bound,
    }
    quality = [quality_report(stats, table(STATISTICS_TABLE))]
    # a blocking failure (statistics from races after train_end: leakage) writes nothing, keeps what is stored
    yield from rules.gate(checks, STATISTICS_SPECS, STATISTICS_TABLE, stored="the previous statistics")
    yield from checks
    yield rules.quality_check(STATISTICS_TABLE, quality)
    yield dg.Output(stats, metadata={**metadata, **rules.quality_metadata(quality)})


def _markdown(frame: pd.DataFrame) -> str:
    """A small frame as a Markdown table (pandas' to_markdown needs tabulate, which is no dependency)."""
    cells = [[("" if pd.isna(v) else str(v)).replace("|", "/") for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def standardised_view_sql(wh: Warehouse, features: Sequence[str]) -> list[str]:
    """DROP + CREATE of the standardised view (a view's columns cannot change in place on PostgreSQL).
    Identifiers are quoted by the warehouse; the only literals are feature names and eras from code."""
    q = wh.quote
    keys = ", ".join(f"t.{q(c)}" for c in VIEW_KEYS)
    source = f"(SELECT *, {eras.era_case_sql(q('season'))} AS era FROM {q(TELEMETRY_TABLE)})"
    zs, joins, reasons = [], [], []
    for i, f in enumerate(features):
        s = f"s{i}"
        joins.append(f"LEFT JOIN {q(STATISTICS_TABLE)} {s} ON {s}.era = t.era AND {s}.feature = '{f}'")
        zs.append(f"CASE WHEN {s}.std > 0 THEN (t.{q(f)} - {s}.mean) / {s}.std END AS {q(f + '_z')}")
        reasons.append(f"CASE WHEN t.{q(f)} IS NOT NULL AND COALESCE({s}.std, 0) <= 0 THEN '{f}: ' || "
                       f"COALESCE({s}.null_reason, 'the era has no train-split statistics') END")
    reason = f"NULLIF(concat_ws('; ', {', '.join(reasons)}), '')" if reasons else "CAST(NULL AS TEXT)"
    select = (f"SELECT {keys}, t.era, {', '.join(zs)}{', ' if zs else ''}{reason} AS null_reason "
              f"FROM {source} t {' '.join(joins)}")
    return [f"DROP VIEW IF EXISTS {q(STANDARDISED_VIEW)}", f"CREATE VIEW {q(STANDARDISED_VIEW)} AS {select}"]


def _view_schema(features: Sequence[str]) -> dg.TableSchema:
    declared = table(TELEMETRY_TABLE)
    columns = [dg.TableColumn(c, declared.column(c).type, description=declared.column(c).described())
               for c in VIEW_KEYS]
    columns.append(dg.TableColumn("era", "text", description="Regulation era of the season (transforms/eras.py)"))
    columns.extend(dg.TableColumn(f"{f}_z", "float64", description=f"({f} - era mean) / era std (era_statistics)")
                   for f in features)
    columns.append(dg.TableColumn("null_reason", "text", description="Why a z of a non-NULL value is NULL"))
    return dg.TableSchema(columns=columns)


@dg.asset(
    deps=[dg.AssetKey(STATISTICS_TABLE), dg.AssetKey(TELEMETRY_TABLE)],
    group_name="ml",
    kinds={"sql"},
    metadata={"dagster/column_schema": _view_schema(FEATURES)},
    description="View over telemetry_features: era and (x - mean_era) / std_era of each standardised feature "
                "from era_statistics (train split only); NULL with null_reason where the era cannot standardise.",
)
def standardised_telemetry_features(context: dg.AssetExecutionContext,
                                    warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    stale = stale_statistics(context.instance)
    if stale:
        raise dg.Failure(description=stale, allow_retries=False)
    statements = standardised_view_sql(wh, FEATURES)
    texts = wh.execute_all(statements, lock="f1_assets.standardised_view")
    q = wh.quote
    counts = wh.query("SELECT COUNT(*) AS n_rows, " + ", ".join(f"COUNT({q(f + '_z')}) AS {q(f)}" for f in FEATURES)
                      + f", COUNT(null_reason) AS with_reason FROM {q(STANDARDISED_VIEW)}").iloc[0]
    by_era = wh.query(f"SELECT era, COUNT(*) AS n FROM {q(STANDARDISED_VIEW)} GROUP BY era ORDER BY era")
    n_rows = int(counts["n_rows"])
    if n_rows == 0:
        context.log.warning("telemetry_features is empty: the standardised view has no rows")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n_rows,
        "dagster/column_schema": _view_schema(FEATURES),
        "features": dg.MetadataValue.json(FEATURES),
        "rows_with_z": dg.MetadataValue.json({f: int(counts[f]) for f in FEATURES}),
        "rows_with_null_reason": int(counts["with_reason"]),
        "rows_by_era": dg.MetadataValue.json({str(e): int(n) for e, n in zip(by_era["era"], by_era["n"], strict=True)}),
        "empty_reason": "telemetry_features has no rows" if n_rows == 0 else None,
        "view_sql": dg.MetadataValue.md(f"```sql\n{texts[-1]}\n```"),
        "warehouse": wh.kind,
    })


def read_lap_distances(wh: Warehouse) -> pd.DataFrame | None:
    """(circuit_id, season, round, lap_distance_m) of every telemetry lap with a distance; None when the
    warehouse's telemetry_features has no lap_distance_m column."""
    if "lap_distance_m" not in wh.columns(TELEMETRY_TABLE):
        return None
    return wh.query(
        f"SELECT r.circuit_id, t.season, t.round, t.lap_distance_m FROM {wh.quote(TELEMETRY_TABLE)} t "
        f"JOIN {wh.quote('raw_races')} r ON t.season = r.season AND t.round = r.round "
        "WHERE t.lap_distance_m IS NOT NULL"
    )


@dg.asset(
    deps=[dg.AssetKey(TELEMETRY_TABLE), dg.AssetKey("raw_races")],
    group_name="ml",
    kinds={"pandas", "sql"},
    io_manager_key="warehouse_io_manager",
    metadata={"dagster/column_schema": table(VERSIONS_TABLE).table_schema(), DERIVED_METADATA: True},
    check_specs=[rules.quality_spec(VERSIONS_TABLE)],
    description="Circuit layout versions from the median telemetry lap distance per race (change > "
                f"{eras.LAYOUT_CHANGE_PCT} % starts '<circuit_id>@<season>'); 2018+ only (telemetry).",
)
def circuit_versions(context: dg.AssetExecutionContext,
                     warehouse: WarehouseResource) -> Iterator[dg.Output | dg.AssetCheckResult]:
    laps = read_lap_distances(warehouse.get())
    reason = None
    if laps is None:
        reason = "telemetry_features has no lap_distance_m column"
        laps = pd.DataFrame(columns=["circuit_id", "season", "round", "lap_distance_m"])
    elif laps.empty:
        reason = "no telemetry lap has a lap distance (telemetry_features empty or 2018+ races not materialized)"
    versions = eras.circuit_versions(laps)
    if reason:
        context.log.warning(f"circuit_versions is empty: {reason}")
    changed = versions[versions["change_pct"].notna()]
    quality = [quality_report(versions, table(VERSIONS_TABLE))]
    yield rules.quality_check(VERSIONS_TABLE, quality)
    yield dg.Output(versions, metadata={
        "circuits": int(versions["circuit_id"].nunique()),
        "layout_changes": dg.MetadataValue.json(sorted(changed["version_id"])),
        "telemetry_laps_with_distance": len(laps),
        "threshold_pct": eras.LAYOUT_CHANGE_PCT,
        "min_laps_per_race": eras.MIN_LAPS_PER_RACE,
        "before_telemetry": "no version: Jolpica's circuit table carries no length and telemetry starts in 2018",
        "empty_reason": reason,
        **rules.quality_metadata(quality),
    })
