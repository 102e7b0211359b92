"""Pandera schemas of the raw tables — the contract a parsed frame meets before it is written.

Each is its table's declaration (`f1_assets.tables`: every column, its dtype and nullability, the
primary key unique, no other column) plus the value checks below. Called by the ingest assets
(validation before any write) and by tests. A violation becomes an error that names the URL(s) the
frame came from and the failing field.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from f1_assets.tables import table

_POSITION_TEXT = ["R", "D", "W", "N", "E", "F"]

_PARTITION_CHECKS = {"season": [pa.Check.in_range(1950, 2100)], "round": [pa.Check.in_range(1, 30)]}

RAW_RACES = table("raw_races").pandera_schema(
    {**_PARTITION_CHECKS, "lat": [pa.Check.in_range(-90, 90)], "lng": [pa.Check.in_range(-180, 180)]}
)

_CLASSIFICATION_CHECKS = {
    **_PARTITION_CHECKS,
    "position_order": [pa.Check.ge(1)],
    "grid": [pa.Check.ge(0)],
    "position": [pa.Check.ge(1)],
    "position_text": [pa.Check(lambda s: s.str.isdigit() | s.isin(_POSITION_TEXT))],
    "points": [pa.Check.ge(0)],
    "laps": [pa.Check.ge(0)],
    "time_ms": [pa.Check.gt(0)],
    "fastest_lap_time_ms": [pa.Check.gt(0)],
}


def _no_driver_twice(df: pd.DataFrame) -> pd.Series:
    """No driver classified twice in the same car. (A driver in two cars of one race — the 1950s'
    shared drives — has two numbers; rows without a number are not judged.)"""
    numbered = df["driver_number"].notna()
    return ~(df.duplicated(["season", "round", "driver_id", "driver_number"], keep=False) & numbered)


_DRIVER_ONCE = pa.Check(_no_driver_twice, name="driver_classified_once", error="a driver appears twice in one car")
RAW_RESULTS = table("raw_results").pandera_schema(_CLASSIFICATION_CHECKS, dataframe_checks=[_DRIVER_ONCE])
RAW_SPRINT_RESULTS = table("raw_sprint_results").pandera_schema(_CLASSIFICATION_CHECKS,
                                                                 dataframe_checks=[_DRIVER_ONCE])

RAW_QUALIFYING = table("raw_qualifying").pandera_schema(
    {
        **_PARTITION_CHECKS,
        "position_order": [pa.Check.ge(1)],
        "position": [pa.Check.ge(1)],
        "q1_ms": [pa.Check.gt(0)],
        "q2_ms": [pa.Check.gt(0)],
        "q3_ms": [pa.Check.gt(0)],
    },
    dataframe_checks=[pa.Check(lambda df: ~df.duplicated(["season", "round", "driver_id"], keep=False),
                               name="driver_qualified_once", error="a driver appears twice in one qualifying")],
)

RAW_LAPS = table("raw_laps").pandera_schema(
    {
        **_PARTITION_CHECKS,
        "lap_number": [pa.Check.ge(1)],
        "position": [pa.Check.ge(1)],
        "lap_time_ms": [pa.Check.gt(0)],  # `0:00.000` is no lap time
    }
)

RAW_PIT_STOPS = table("raw_pit_stops").pandera_schema(
    {**_PARTITION_CHECKS, "stop": [pa.Check.ge(1)], "lap": [pa.Check.ge(0)], "duration_ms": [pa.Check.gt(0)]}
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
