"""Metadata and check results shared by the asset modules: column schemas, check specs, pure check
outcomes (name, passed, severity 'ERROR'|'WARN', description, metadata) turned into Dagster check
results, and the one way an asset refuses to write.

Blocking rule (issue 9): every ERROR rule about an asset's own rows is a blocking check
(`AssetCheckSpec(blocking=True)`); WARN rules are not. The assets evaluate their rules on the frame
*before* writing it: when a blocking rule fails they report the checks and fail the step through
`reject` — nothing is written, no materialization is recorded, the stored version stays, and Dagster
skips the downstream steps of the run. (A failing blocking check *returned with* a materialization
would also stop the run, but only after the materialization — and the rows — were recorded.)
"""

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import pandas as pd

SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}
# A run tagged f1/allow_shrink=true may replace stored rows with fewer (recorded in metadata and audit);
# without it every asset refuses a smaller version of a partition and keeps the stored rows.
ALLOW_SHRINK_TAG = "f1/allow_shrink"


def allow_shrink(context: dg.AssetExecutionContext) -> bool:
    return str(context.run.tags.get(ALLOW_SHRINK_TAG, "")).strip().lower() in ("1", "true", "yes")
FAILING_KEYS_IN_MESSAGE = 5


def table_schema(df: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as Dagster's column schema (shown on the asset page)."""
    return dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])


def metadata_value(value: Any) -> Any:
    """Lists and dicts as JSON metadata; scalars as they are."""
    return dg.MetadataValue.json(value) if isinstance(value, (list, dict, tuple)) else value


def check_specs(asset: str, rules: dict[str, tuple[str, str]], non_blocking: Iterable[str] = ()
                ) -> list[dg.AssetCheckSpec]:
    """One spec per rule {name: (severity, description)}: ERROR rules block, WARN rules do not.

    `non_blocking` names ERROR rules that are deliberately not blocking (FastF1 availability: its
    failure must not stop `lap_features`, whose FastF1 columns are optional).
    """
    exempt = set(non_blocking)
    return [
        dg.AssetCheckSpec(name, asset=asset, description=f"{description} (severity {severity}"
                          + (", blocking)" if severity == "ERROR" and name not in exempt else ")"),
                          blocking=severity == "ERROR" and name not in exempt)
        for name, (severity, description) in rules.items()
    ]


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


def blocking_failures(results: Iterable[dg.AssetCheckResult], specs: Iterable[dg.AssetCheckSpec]
                      ) -> list[dg.AssetCheckResult]:
    """The results that fail a blocking spec with ERROR severity (what Dagster itself would block on)."""
    blocking = {spec.name for spec in specs if spec.blocking}
    return [r for r in results
            if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR and r.check_name in blocking]


def describe_failures(results: Iterable[dg.AssetCheckResult]) -> str:
    """`name (3 failing: k1, k2, …)` for each failed result, for a step's failure message."""
    parts = []
    for r in results:
        md = {k: getattr(v, "value", v) for k, v in (r.metadata or {}).items()}
        count = next((md[k] for k in ("failing_rows", "failing_count", "failing_columns") if k in md), None)
        keys = md.get("failing_keys") or []
        detail = f"{count} failing" if count is not None else "failed"
        if keys:
            shown = ", ".join(str(k) for k in list(keys)[:FAILING_KEYS_IN_MESSAGE])
            detail += f": {shown}{', …' if len(keys) > FAILING_KEYS_IN_MESSAGE else ''}"
        parts.append(f"{r.check_name} ({detail})")
    return "; ".join(parts)


def reject(results: Iterable[dg.AssetCheckResult], description: str) -> Iterator[dg.AssetCheckResult]:
    """Report the check results that explain a refusal, then fail the step (no retry).

    Use with `yield from` in a generator asset, before anything was written: the checks show in the
    UI, no materialization is recorded, the stored version stays and downstream steps are skipped.
    """
    yield from results
    raise dg.Failure(description=description, allow_retries=False)
