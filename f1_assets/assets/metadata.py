"""Materialization metadata shared by every table asset (`dagster/column_schema`)."""

import dagster as dg
import pandas as pd


def table_schema(df: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as Dagster's column schema (shown on the asset page)."""
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])
