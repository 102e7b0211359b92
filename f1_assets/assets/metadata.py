"""Metadata and check results shared by the asset modules: column schemas, and pure check outcomes
(name, passed, severity 'ERROR'|'WARN', description, metadata) turned into Dagster check results."""

from typing import Any

import dagster as dg
import pandas as pd

SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}


def table_schema(df: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as Dagster's column schema (shown on the asset page)."""
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def metadata_value(value: Any) -> Any:
    """Lists and dicts as JSON metadata; scalars as they are."""
    return dg.MetadataValue.json(value) if isinstance(value, (list, dict, tuple)) else value


def check_result(outcome: Any, asset_key: str | None = None, **extra: Any) -> dg.AssetCheckResult:
    """A pure check outcome (see `f1_assets.checks.features.CheckOutcome`) as an AssetCheckResult."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=SEVERITY[outcome.severity],
        description=outcome.description,
        metadata={**{k: metadata_value(v) for k, v in outcome.metadata.items()}, **extra},
    )
