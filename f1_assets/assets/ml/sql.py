"""The ML layer's SQL: the split views (one template, per-engine literals) and the reads over them.
Executed through the warehouse (`Warehouse.execute_all`: one transaction on either engine)."""

from datetime import date
from typing import Any

import pandas as pd

from f1_assets.assets.ml.config import SPLITS, SplitBounds, parse_date
from f1_assets.storage.warehouse import Warehouse, WarehouseError
from f1_assets.transforms import profiles as prof

SOURCE_TABLE = "lap_features"
# the one place of the split view SQL: {view}, {source}, {predicate}; predicate terms `{column} {op} {value}`
VIEW_TEMPLATE = "CREATE OR REPLACE VIEW {view} AS SELECT * FROM {source} WHERE {predicate}"
PREDICATE_TERM = "{column} {op} {value}"


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
    texts = wh.execute_all(list(statements.values()), lock="f1_assets.split_views")
    return dict(zip(statements, texts, strict=True))


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
