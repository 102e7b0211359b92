"""ML-facing assets: train/validation/test split views over lap_features, and driver profiles.

- `split_views` (one step, three assets `train`, `validation`, `test`): `CREATE OR REPLACE VIEW` over
  `lap_features` by `race_date`, all three in one transaction, on PostgreSQL and DuckDB. Boundaries
  are run config (`SplitConfig`, defaults train <= 2022-12-31, validation 2023-01-01..2023-06-30,
  test >= 2023-07-01), validated as ISO dates and strictly ordered; identifiers are quoted by the
  driver, dates rendered as typed literals (`psycopg.sql.Literal` on PostgreSQL, `DATE 'YYYY-MM-DD'`
  from a validated date on DuckDB). The view SQL lives only in `split_view_sql`.
- `split_checks` (asset checks, `CHECKS`): read the views as they are *now* and compare them with the
  boundaries of the latest materialization of `train`: train never passes its end, validation stays
  inside its range, test never starts early, no race in two splits, and every lap_features row in
  exactly one split (rows outside all splits are a WARN with their race keys). The ERROR outcomes
  are blocking: `driver_profiles` is not built in a run whose split checks failed.
- `driver_profiles`: reads the `train` view only (and the raw_results rows of the races in it),
  computes the scores of `f1_assets.transforms.profiles`, replaces the whole table in one
  transaction, and attaches a consistency-vs-aggression PNG to its metadata.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.metadata import check_result, table_schema
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import Warehouse, WarehouseError
from f1_assets.transforms import plots
from f1_assets.transforms import profiles as prof

SPLITS = ("train", "validation", "test")
SOURCE_TABLE = "lap_features"
PROFILES_TABLE = "driver_profiles"
MAX_KEYS = 50  # failing keys listed in check metadata
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# the one place of the split view SQL: {view}, {source}, {predicate}; predicate terms `{column} {op} {value}`
VIEW_TEMPLATE = "CREATE OR REPLACE VIEW {view} AS SELECT * FROM {source} WHERE {predicate}"
PREDICATE_TERM = "{column} {op} {value}"


# ------------------------------------------------------------------------------------- boundaries


class SplitConfig(dg.Config):
    """Split boundaries (inclusive ISO dates): train <= train_end, validation_start <= validation <=
    validation_end, test >= test_start. Must satisfy train_end < validation_start <= validation_end
    < test_start."""

    train_end: str = "2022-12-31"
    validation_start: str = "2023-01-01"
    validation_end: str = "2023-06-30"
    test_start: str = "2023-07-01"


def parse_date(name: str, value: Any) -> date:
    """A strict `YYYY-MM-DD` calendar date, or ValueError naming the field."""
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"{name}={value!r}: expected an ISO date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r}: not a calendar date ({exc})") from exc


@dataclass(frozen=True)
class SplitBounds:
    train_end: date
    validation_start: date
    validation_end: date
    test_start: date

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "SplitBounds":
        b = cls(**{f: parse_date(f, values[f]) for f in ("train_end", "validation_start", "validation_end",
                                                         "test_start")})
        if not (b.train_end < b.validation_start <= b.validation_end < b.test_start):
            raise ValueError(f"split boundaries must satisfy train_end < validation_start <= validation_end < "
                             f"test_start, got {b.as_dict()}")
        return b

    @classmethod
    def from_config(cls, config: SplitConfig) -> "SplitBounds":
        return cls.from_values(config.model_dump())

    def ranges(self) -> dict[str, tuple[date | None, date | None]]:
        """Inclusive (lower, upper) per split; None = open."""
        return {"train": (None, self.train_end), "validation": (self.validation_start, self.validation_end),
                "test": (self.test_start, None)}

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in self.__dict__.items()}


# ------------------------------------------------------------------------------------- view SQL


def split_view_sql(kind: str, split: str, lower: date | None, upper: date | None) -> Any:
    """The CREATE OR REPLACE VIEW statement of one split: a `psycopg.sql.Composed` for PostgreSQL,
    a string for DuckDB (identifiers quoted, dates as typed literals from validated `date`s)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    terms = [(op, d) for op, d in ((">=", lower), ("<=", upper)) if d is not None]
    if not terms or not all(isinstance(d, date) for _, d in terms):
        raise ValueError(f"split {split!r} needs date bounds, got {lower!r}..{upper!r}")
    if kind == "postgres":
        from psycopg import sql

        predicate = sql.SQL(" AND ").join(
            sql.SQL(PREDICATE_TERM).format(column=sql.Identifier("race_date"), op=sql.SQL(op), value=sql.Literal(d))
            for op, d in terms
        )
        return sql.SQL(VIEW_TEMPLATE).format(
            view=sql.Identifier(split), source=sql.Identifier(SOURCE_TABLE), predicate=predicate
        )
    if kind == "duckdb":
        predicate = " AND ".join(
            PREDICATE_TERM.format(column=Warehouse.quote("race_date"), op=op,
                                  value=f"DATE '{parse_date(split, d.isoformat()).isoformat()}'")
            for op, d in terms
        )
        return VIEW_TEMPLATE.format(view=Warehouse.quote(split), source=Warehouse.quote(SOURCE_TABLE),
                                    predicate=predicate)
    raise ValueError(f"unknown warehouse kind {kind!r}")


def create_split_views(wh: Warehouse, bounds: SplitBounds) -> dict[str, str]:
    """(Re)create the three views in one transaction; returns the SQL text executed per split."""
    if not wh.columns(SOURCE_TABLE):  # applies the schema, so lap_features exists afterwards
        raise WarehouseError(f"table {SOURCE_TABLE} does not exist")
    statements = {s: split_view_sql(wh.kind, s, lo, hi) for s, (lo, hi) in bounds.ranges().items()}
    texts: dict[str, str] = {}
    if wh.kind == "postgres":
        with wh.connect() as conn:  # type: ignore[attr-defined]
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('f1_assets.split_views'))")
            for split, stmt in statements.items():
                texts[split] = stmt.as_string(conn)
                conn.execute(stmt)
            conn.commit()
    else:
        with wh._connect() as con:  # type: ignore[attr-defined]
            con.execute("BEGIN TRANSACTION")
            try:
                for split, stmt in statements.items():
                    texts[split] = stmt
                    con.execute(stmt)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    return texts


def view_exists(wh: Warehouse, name: str) -> bool:
    sql_text = "SELECT table_name FROM information_schema.tables WHERE table_name = %s AND table_type = 'VIEW'"
    if wh.kind == "postgres":
        sql_text += " AND table_schema = current_schema()"
    return len(wh.query(sql_text, [name])) > 0


def split_summary(wh: Warehouse) -> pd.DataFrame:
    """Per (split, race_id): first/last race_date and rows, as the views return them now."""
    parts = [
        f"SELECT '{s}' AS split, race_id, MIN(race_date) AS first_date, MAX(race_date) AS last_date, "
        f"COUNT(*) AS n_rows FROM {wh.quote(s)} GROUP BY race_id"
        for s in SPLITS
    ]
    df = wh.query(" UNION ALL ".join(parts))
    df["n_rows"] = pd.to_numeric(df["n_rows"]).astype("int64")
    for col in ("first_date", "last_date"):
        df[col] = pd.to_datetime(df[col]).dt.date
    return df


def split_coverage(wh: Warehouse) -> pd.DataFrame:
    """Per (race_id, n_splits): lap_features rows that are in n_splits of the views (0 = outside all)."""
    keys = "season, round, driver_id, lap_number"
    members = " UNION ALL ".join(f"SELECT {keys} FROM {wh.quote(s)}" for s in SPLITS)
    df = wh.query(
        f"WITH m AS ({members}), c AS (SELECT {keys}, COUNT(*) AS n_splits FROM m GROUP BY {keys}) "
        f"SELECT lf.race_id, MIN(lf.race_date) AS race_date, COALESCE(c.n_splits, 0) AS n_splits, "
        f"COUNT(*) AS n_rows FROM {wh.quote(SOURCE_TABLE)} lf LEFT JOIN c ON lf.season = c.season "
        f"AND lf.round = c.round AND lf.driver_id = c.driver_id AND lf.lap_number = c.lap_number "
        f"GROUP BY lf.race_id, COALESCE(c.n_splits, 0)"
    )
    for col in ("n_splits", "n_rows"):
        df[col] = pd.to_numeric(df[col]).astype("int64")
    return df


# ------------------------------------------------------------------------------------ checks


@dataclass
class SplitCheckOutcome:
    asset: str
    name: str
    passed: bool
    severity: str  # ERROR / WARN
    description: str
    metadata: dict[str, Any]


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
        out.append(SplitCheckOutcome(
            split, name, bad.empty, "ERROR",
            f"every race in `{split}` has {rule}" + ("" if bad.empty else f": {len(bad)} race(s) do not"),
            {"failing_races": len(bad), "failing_rows": int(bad["n_rows"].sum()), "failing_keys": _keys(bad["race_id"]),
             "rule": rule, **{f"bound_{k}": v for k, v in b.items()}},
        ))

    splits_of = summary.groupby("race_id")["split"].agg(lambda s: sorted(set(s)))
    shared = splits_of[splits_of.map(len) > 1]
    for split in SPLITS:
        mine = shared[shared.map(lambda s, sp=split: sp in s)]
        out.append(SplitCheckOutcome(
            split, "no_race_in_another_split", mine.empty, "ERROR",
            f"no race of `{split}` is in another split" + ("" if mine.empty else f": {len(mine)} race(s) are"),
            {"failing_races": len(mine), "failing_keys": _keys(mine.index),
             "splits_of_failing": {k: v for k, v in list(mine.items())[:MAX_KEYS]}},
        ))

    multi = coverage[coverage["n_splits"] > 1]
    outside = coverage[coverage["n_splits"] == 0]
    total = int(coverage["n_rows"].sum())
    passed = multi.empty and outside.empty
    severity = "ERROR" if not multi.empty else "WARN"
    desc = (f"{total} lap_features rows: {int(multi['n_rows'].sum())} in more than one split, "
            f"{int(outside['n_rows'].sum())} outside all splits")
    out.append(SplitCheckOutcome(
        "train", "every_row_in_one_split", passed, severity, desc,
        {"lap_features_rows": total, "rows_in_several_splits": int(multi["n_rows"].sum()),
         "rows_outside_splits": int(outside["n_rows"].sum()),
         "races_in_several_splits": _keys(multi["race_id"]),
         "races_outside_splits": _keys(outside["race_id"].fillna("NULL")),
         "outside_rows_without_race_date": int(outside.loc[outside["race_date"].isna(), "n_rows"].sum())},
    ))
    return out


# Every split rule is about the views' own rows: blocking, so a run that also materializes
# driver_profiles does not build them on a leaking split (the WARN outcome of every_row_in_one_split,
# rows outside all splits, does not block).
SPLIT_CHECK_SPECS = [
    dg.AssetCheckSpec("train_ends_by_boundary", asset="train", blocking=True,
                      description="No train race after train_end (ERROR, blocking); failing race keys in metadata."),
    dg.AssetCheckSpec("validation_within_boundaries", asset="validation", blocking=True,
                      description="Validation races within validation_start..validation_end (ERROR, blocking)."),
    dg.AssetCheckSpec("test_starts_at_boundary", asset="test", blocking=True,
                      description="No test race before test_start (ERROR, blocking)."),
    *[dg.AssetCheckSpec("no_race_in_another_split", asset=s, blocking=True,
                        description=f"No race of {s} appears in another split (ERROR, blocking).") for s in SPLITS],
    dg.AssetCheckSpec("every_row_in_one_split", asset="train", blocking=True,
                      description="Every lap_features row is in exactly one split: rows in several splits "
                                  "fail (ERROR, blocking); rows outside all splits are reported (WARN)."),
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
        yield check_result(o, asset_key=o.asset, bounds_from=source)


# -------------------------------------------------------------------------------------- splits


@dg.multi_asset(
    name="split_views",
    specs=[
        dg.AssetSpec(s, deps=[dg.AssetKey(SOURCE_TABLE)], group_name="ml", kinds={"sql", "duckdb", "postgres"},
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
    columns = table_schema(wh.query(f"SELECT * FROM {wh.quote(SPLITS[0])} LIMIT 0"))  # the views share them
    context.log.info(f"split views on {wh.kind}: {bounds.as_dict()}")
    for split, (lo, hi) in bounds.ranges().items():
        s = summary[summary["split"] == split]
        first = min(s["first_date"]) if len(s) else None
        last = max(s["last_date"]) if len(s) else None
        yield dg.MaterializeResult(
            asset_key=split,
            metadata={
                "dagster/row_count": int(s["n_rows"].sum()),
                "dagster/column_schema": columns,
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


# ----------------------------------------------------------------------------- driver profiles


class ProfileConfig(dg.Config):
    """Minimum data per score (see `f1_assets.transforms.profiles.ProfileParams`)."""

    min_races: int = 3
    min_clean_pairs: int = 5
    min_stint_laps: int = 5
    attack_gap_ms: int = 1_000
    pressure_gap_ms: int = 1_000
    min_attack_laps: int = 20
    min_pressure_laps: int = 20
    slow_lap_factor: float = 1.07


def read_train(wh: Warehouse) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train view's rows (profile input columns) and raw_results of the races in that view only."""
    cols = ", ".join(wh.quote(c) for c in prof.LAP_INPUT_COLUMNS)
    laps = wh.query(f"SELECT {cols} FROM {wh.quote('train')}")
    rcols = ", ".join(f"r.{wh.quote(c)}" for c in prof.RESULT_INPUT_COLUMNS)
    results = wh.query(
        f"SELECT {rcols} FROM {wh.quote('raw_results')} r JOIN (SELECT DISTINCT season, round FROM "
        f"{wh.quote('train')}) t ON r.season = t.season AND r.round = t.round"
    )
    return laps, results


@dg.asset(
    deps=[dg.AssetKey("train"), dg.AssetKey("raw_results")],
    group_name="ml",
    kinds={"pandas", "sql", "matplotlib"},
    description="One row per train-split driver: aggression, consistency, pressure response, tyre management, "
                "career races, data quality (formulas: f1_assets/transforms/profiles.py). Reads the train view only.",
)
def driver_profiles(context: dg.AssetExecutionContext, config: ProfileConfig,
                    warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.get()
    if not view_exists(wh, "train"):
        raise dg.Failure("the `train` view does not exist: materialize train/validation/test first")
    laps, results = read_train(wh)
    params = prof.ProfileParams(**config.model_dump())
    frame = prof.driver_profiles(laps, results, params)
    frame = frame.assign(updated_at=pd.Timestamp.now(tz="UTC"))
    n = wh.replace_partition(PROFILES_TABLE, frame, {})  # {}: the whole table, in one transaction
    dates = pd.to_datetime(laps["race_date"]) if len(laps) else pd.Series(dtype="datetime64[ns]")
    png = plots.profile_scatter_png(frame)
    if n == 0:
        context.log.warning("the train split has no rows: driver_profiles is empty")
    metadata: dict[str, Any] = {
        "dagster/row_count": n,
        "dagster/column_schema": table_schema(frame),
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
    return dg.MaterializeResult(metadata=metadata)


ASSETS = [split_views, driver_profiles]
CHECKS = [split_checks]
