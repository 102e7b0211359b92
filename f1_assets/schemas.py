"""Pandera schemas of the raw tables — the contract a parsed frame meets before it is written.

Called by the ingest assets (validation before any write) and by tests. A violation becomes an error
that names the URL(s) the frame came from and the failing field.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

_POSITION_TEXT = ["R", "D", "W", "N", "E", "F"]


def _partition_columns() -> dict[str, pa.Column]:
    return {
        "season": pa.Column("int64", pa.Check.in_range(1950, 2100)),
        "round": pa.Column("int64", pa.Check.in_range(1, 30)),
    }


RAW_RACES = pa.DataFrameSchema(
    {
        **_partition_columns(),
        "race_name": pa.Column(str),
        "circuit_id": pa.Column(str),
        "lat": pa.Column("float64", pa.Check.in_range(-90, 90), nullable=True),
        "lng": pa.Column("float64", pa.Check.in_range(-180, 180), nullable=True),
        "has_sprint": pa.Column(bool),
    },
    unique=["season", "round"],
)

_CLASSIFICATION = {
    **_partition_columns(),
    "position_order": pa.Column("int64", pa.Check.ge(1)),
    "driver_id": pa.Column(str),
    "constructor_id": pa.Column(str),
    "grid": pa.Column("Int64", pa.Check.ge(0), nullable=True),
    "position": pa.Column("Int64", pa.Check.ge(1), nullable=True),
    "position_text": pa.Column(str, pa.Check(lambda s: s.str.isdigit() | s.isin(_POSITION_TEXT))),
    "points": pa.Column("float64", pa.Check.ge(0)),
    "laps": pa.Column("int64", pa.Check.ge(0)),
    "status": pa.Column(str),
    "time_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),
    "fastest_lap_time_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),
}

def _no_driver_twice(df: pd.DataFrame) -> pd.Series:
    """No driver classified twice in the same car. (A driver in two cars of one race — the 1950s'
    shared drives — has two numbers; rows without a number are not judged.)"""
    numbered = df["driver_number"].notna()
    return ~(df.duplicated(["season", "round", "driver_id", "driver_number"], keep=False) & numbered)


RAW_RESULTS = pa.DataFrameSchema(
    _CLASSIFICATION, unique=["season", "round", "position_order"],
    checks=[pa.Check(_no_driver_twice, name="driver_classified_once", error="a driver appears twice in one car")],
)
RAW_SPRINT_RESULTS = RAW_RESULTS

RAW_QUALIFYING = pa.DataFrameSchema(
    {
        **_partition_columns(),
        "position_order": pa.Column("int64", pa.Check.ge(1)),
        "driver_id": pa.Column(str),
        "constructor_id": pa.Column(str),
        "position": pa.Column("Int64", pa.Check.ge(1), nullable=True),
        "q1_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),
        "q2_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),
        "q3_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),
    },
    unique=["season", "round", "position_order"],
    checks=[pa.Check(lambda df: ~df.duplicated(["season", "round", "driver_id"], keep=False),
                     name="driver_qualified_once", error="a driver appears twice in one qualifying")],
)

RAW_LAPS = pa.DataFrameSchema(
    {
        **_partition_columns(),
        "driver_id": pa.Column(str),
        "lap_number": pa.Column("int64", pa.Check.ge(1)),
        "position": pa.Column("Int64", pa.Check.ge(1), nullable=True),
        "lap_time_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),  # `0:00.000` is no lap time
    },
    unique=["season", "round", "driver_id", "lap_number"],
)

RAW_PIT_STOPS = pa.DataFrameSchema(
    {
        **_partition_columns(),
        "driver_id": pa.Column(str),
        "stop": pa.Column("int64", pa.Check.ge(1)),
        "lap": pa.Column("int64", pa.Check.ge(0)),
        "duration_ms": pa.Column("Int64", pa.Check.gt(0), nullable=True),
    },
    unique=["season", "round", "driver_id", "stop"],
)


class SchemaViolation(ValueError):
    pass


def validate(schema: pa.DataFrameSchema, df: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """Validate lazily; on failure raise one error naming the source URL(s), table and fields."""
    try:
        return schema.validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        parts = []
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            values = group["failure_case"].astype(str).unique()[:5].tolist()
            parts.append(f"field {column}: {check} failed for {values}")
        raise SchemaViolation(f"{source}: {table} violates its schema: " + "; ".join(parts)) from None
