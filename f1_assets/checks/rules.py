"""The one check mechanism: every quality rule declared once (name, severity, description) in the data
file `rules.toml`, evaluated into a `CheckOutcome` by pure code, turned into Dagster's
`AssetCheckSpec`/`AssetCheckResult` here.

ERROR rules about an asset's own rows are blocking (`AssetCheckSpec(blocking=True)`); WARN rules
never block; `live_timing_available` is an ERROR that deliberately does not block (FastF1's absence
must not stop `lap_features`, whose FastF1 columns are optional). The assets evaluate their rules
on the frame *before* returning it to the IO manager: when a blocking rule fails, `reject` reports
the checks and fails the step — nothing is written, the stored version stays, downstream is skipped.

Every table asset also evaluates `quality_score` (WARN, never blocking) on the same frame and records
the score as materialization metadata (`quality_check`, `quality_metadata`; the score itself is
`f1_assets.transforms.quality`). `schema_drift_checks` adds Dagster's column-schema-change checks on
every table asset (`definitions.py` registers them).
"""

from __future__ import annotations

import importlib.resources
import tomllib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from f1_assets.transforms.quality import THRESHOLD, QualityReport, summarise

SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}
COMPLETENESS_MIN = 0.95  # the design's completeness threshold, for every table that judges it
MAX_KEYS = 20  # failing keys listed in a check's metadata (the counts are always complete)
FAILING_KEYS_IN_MESSAGE = 5


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # 'ERROR' | 'WARN'
    description: str
    blocking: bool | None = None  # None: ERROR rules block, WARN rules do not

    @property
    def blocks(self) -> bool:
        return self.severity == "ERROR" if self.blocking is None else self.blocking

    def spec(self, asset: str) -> dg.AssetCheckSpec:
        kind = f"severity {self.severity}" + (", blocking" if self.blocks else "")
        return dg.AssetCheckSpec(self.name, asset=asset, blocking=self.blocks,
                                 description=f"{self.description} ({kind})",
                                 metadata={"severity": self.severity, "blocking": self.blocks})

    def outcome(self, passed: bool, metadata: dict[str, Any] | None = None, description: str | None = None,
                severity: str | None = None) -> CheckOutcome:
        return CheckOutcome(self.name, bool(passed), severity or self.severity, description or self.description,
                            dict(metadata or {}))


@dataclass(frozen=True)
class CheckOutcome:
    """A rule evaluated on frames (pure: no Dagster). `result(asset)` makes the AssetCheckResult."""

    name: str
    passed: bool
    severity: str
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def result(self, asset: str, **extra: Any) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            asset_key=asset, check_name=self.name, passed=self.passed, severity=SEVERITY[self.severity],
            description=self.description, metadata={**{k: _value(v) for k, v in self.metadata.items()}, **extra},
        )


def merge(per_partition: Mapping[str, Sequence[CheckOutcome]]) -> list[CheckOutcome]:
    """One outcome per rule for a run of many partitions (Dagster's checks are per asset, not per
    partition): passed when every partition passed; its metadata names the failing partitions, sums
    the counts and prefixes each failing key with its partition. One partition: its outcomes as they are."""
    if len(per_partition) == 1:
        return list(next(iter(per_partition.values())))
    by_rule: dict[str, list[tuple[str, CheckOutcome]]] = {}
    for key, outcomes in per_partition.items():
        for o in outcomes:
            by_rule.setdefault(o.name, []).append((key, o))
    merged = []
    for name, pairs in by_rule.items():
        failed = [(k, o) for k, o in pairs if not o.passed]
        first = (failed or pairs)[0][1]
        metadata: dict[str, Any] = {"partitions": len(pairs), "failing_partitions": len(failed)}
        for field_name in ("rows", "failing", "failing_count", "failing_rows", "timings"):
            values = [o.metadata[field_name] for _, o in pairs if isinstance(o.metadata.get(field_name), int)]
            if values:
                metadata[field_name] = int(sum(values))
        keys = [f"{k} {fk}" for k, o in failed for fk in (o.metadata.get("failing_keys") or [None]) if fk is not None]
        metadata["failing_keys"] = (keys or [k for k, _ in failed])[:MAX_KEYS]
        if failed:
            metadata["first_failure"] = {"partition": failed[0][0], **failed[0][1].metadata}
            if failed[0][1].metadata.get("reason"):
                metadata["reason"] = f"{failed[0][0]}: {failed[0][1].metadata['reason']}"
        severity = "ERROR" if any(o.severity == "ERROR" for _, o in failed) else first.severity
        merged.append(CheckOutcome(name, not failed, severity, first.description, metadata))
    return merged


def _value(value: Any) -> Any:
    if isinstance(value, dg.MetadataValue):  # already typed (Dagster's values are tuples underneath)
        return value
    return dg.MetadataValue.json(value) if isinstance(value, (list, dict, tuple)) else value


def rule_set(*rules: Rule) -> dict[str, Rule]:
    return {r.name: r for r in rules}


def specs(asset: str, rules: Iterable[Rule]) -> list[dg.AssetCheckSpec]:
    return [r.spec(asset) for r in rules]


def results(asset: str, outcomes: Iterable[CheckOutcome]) -> list[dg.AssetCheckResult]:
    return [o.result(asset) for o in outcomes]


def blocking_failures(checks: Iterable[dg.AssetCheckResult], check_specs: Iterable[dg.AssetCheckSpec]
                      ) -> list[dg.AssetCheckResult]:
    """The results that fail a blocking spec with ERROR severity (what Dagster itself would block on)."""
    blocking = {(s.asset_key, s.name) for s in check_specs if s.blocking}
    return [r for r in checks if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
            and (r.asset_key, r.check_name) in blocking]


def describe_failures(checks: Iterable[dg.AssetCheckResult]) -> str:
    """`name (3 failing: k1, k2, …)` for each failed result, for a step's failure message."""
    parts = []
    for r in checks:
        md = {k: getattr(v, "value", v) for k, v in (r.metadata or {}).items()}
        count = next((md[k] for k in ("failing_rows", "failing_count", "failing_columns") if k in md), None)
        keys = md.get("failing_keys") or []
        detail = f"{count} failing" if count is not None else "failed"
        if keys:
            shown = ", ".join(str(k) for k in list(keys)[:FAILING_KEYS_IN_MESSAGE])
            detail += f": {shown}{', …' if len(keys) > FAILING_KEYS_IN_MESSAGE else ''}"
        if md.get("reason"):  # the rule's own explanation (e.g. has_rows: which URL answered 0 rows)
            detail += f": {md['reason']}"
        parts.append(f"{r.check_name} ({detail})")
    return "; ".join(parts)


def reject(checks: Iterable[dg.AssetCheckResult], description: str) -> Iterator[dg.AssetCheckResult]:
    """Report the check results that explain a refusal, then fail the step (no retry).

    Use with `yield from` in a generator asset before its output: the checks show in the UI, no
    materialization is recorded, the stored version stays and downstream steps are skipped."""
    yield from checks
    raise dg.Failure(description=description, allow_retries=False)


def gate(checks: Sequence[dg.AssetCheckResult], check_specs: Sequence[dg.AssetCheckSpec], what: str,
         stored: int | str | Callable[[], int | str]) -> Iterator[dg.AssetCheckResult]:
    """`reject` when a blocking check fails, naming the failures and what stays stored; else nothing.

    `stored` may be a function: then the stored rows are counted only for a refusal's message."""
    blocked = blocking_failures(checks, check_specs)
    if blocked:
        stored = stored() if callable(stored) else stored
        kept = f"{stored} rows" if isinstance(stored, int) else stored
        yield from reject(checks, f"{what}: blocking checks failed: {describe_failures(blocked)}. Nothing was "
                          f"written; what is stored ({kept}) is kept.")


# ------------------------------------------------------------------------------- the rules

def _load_rules() -> tuple[dict[str, Rule], dict[str, dict[str, Rule]]]:
    """Every rule of `rules.toml` (shipped in the package), and the rule set of each asset family."""
    text = importlib.resources.files("f1_assets.checks").joinpath("rules.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    declared = {name: Rule(name, spec["severity"], spec["description"].format(completeness=f"{COMPLETENESS_MIN:.0%}"),
                           spec.get("blocking"))
                for name, spec in data["rules"].items()}
    return declared, {family: rule_set(*(declared[n] for n in names)) for family, names in data["sets"].items()}


ALL, _SETS = _load_rules()
LIVE_TIMING = ALL["live_timing_available"]
DRIVERS_IN_RESULTS = ALL["drivers_in_results"]
RAW = _SETS["raw"]
FASTF1_LAPS = _SETS["fastf1_laps"]
RAW_TELEMETRY = _SETS["raw_telemetry"]
LAP_FEATURES = _SETS["lap_features"]
TELEMETRY_FEATURES = _SETS["telemetry_features"]
SPLITS = _SETS["splits"]
QUALITY = ALL["quality_score"]


# ------------------------------------------------------------------------------- quality score

def quality_outcome(report: QualityReport) -> CheckOutcome:
    """`quality_score` of one partition: passes at >= 95 with the score; below, WARN naming the columns
    (and the outlier share) that pull it down."""
    pulled = report.pulled_down_by()
    metadata: dict[str, Any] = {
        "quality_score": dg.MetadataValue.float(report.score), "threshold": 100 * THRESHOLD, "rows": report.rows,
        "expected_columns": len(report.expected), "outlier_share": round(report.outlier_share, 4),
        "failing_keys": pulled[:MAX_KEYS],
    }
    if report.low_columns:
        metadata["completeness_below_95"] = report.low_columns
    if report.passed:
        return QUALITY.outcome(True, metadata, f"quality score {report.score:g} >= {100 * THRESHOLD:g}")
    return QUALITY.outcome(False, {**metadata, "reason": ", ".join(pulled)},
                           f"quality score {report.score:g} < {100 * THRESHOLD:g}: pulled down by {', '.join(pulled)}")


def quality_check(asset: str, reports: Sequence[QualityReport]) -> dg.AssetCheckResult:
    """The `quality_score` result of a run: one partition's, or for a batch the minimum score, the
    partitions below 95 and the worst partitions (at most `quality.WORST_PARTITIONS`)."""
    if len(reports) == 1:
        return quality_outcome(reports[0]).result(asset)
    batch = summarise(reports)
    passed = batch.below == 0
    what = (f"batch minimum quality score {batch.score:g} over {batch.partitions} partitions"
            + ("" if passed else f"; {batch.below} below {100 * THRESHOLD:g}, worst: {batch.worst[0]}"))
    return QUALITY.outcome(passed, {
        "quality_score": dg.MetadataValue.float(batch.score), "threshold": 100 * THRESHOLD,
        "partitions": batch.partitions, "failing_partitions": batch.below, "rows": batch.rows,
        "worst_partitions": batch.worst, "failing_keys": [w.split(" ")[0] for w in batch.worst if ":" in w],
    }, what).result(asset)


def quality_metadata(reports: Sequence[QualityReport]) -> dict[str, Any]:
    """Materialization metadata of a run's quality: `quality_score` (a float, plotted by Dagster over
    time), the expected columns below 95 %, null counts per field; for a batch (whose metadata Dagster
    repeats on every partition) the minimum score, the partitions below 95 and the worst ones, and the
    null counts summed over the batch."""
    if len(reports) == 1:
        r = reports[0]
        metadata: dict[str, Any] = {
            "quality_score": dg.MetadataValue.float(r.score),
            "completeness_below_95": dg.MetadataValue.json(r.low_columns),
            "null_counts": dg.MetadataValue.json(r.null_counts),
            "outlier_share": dg.MetadataValue.float(round(r.outlier_share, 4)),
        }
        if r.is_outlier_share is not None:
            metadata["is_outlier_share"] = dg.MetadataValue.float(r.is_outlier_share)
        return metadata
    batch = summarise(reports)
    return {
        "quality_score": dg.MetadataValue.float(batch.score),
        "quality_partitions_below_95": batch.below,
        "quality_worst_partitions": dg.MetadataValue.json(batch.worst),
        "null_counts": dg.MetadataValue.json(batch.null_counts),
    }


def quality_spec(asset: str) -> dg.AssetCheckSpec:
    return QUALITY.spec(asset)


# ------------------------------------------------------------------------------- schema drift

def schema_drift_checks(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> list[dg.AssetChecksDefinition]:
    """Dagster's column-schema-change checks (WARN) on every table asset: those whose definition declares
    `dagster/column_schema` (their materializations report it too). The check compares an asset's two
    latest materializations, whatever their partitions. `build_column_schema_change_checks` is beta in
    Dagster 1.13: its BetaWarning is silenced here, and only here."""
    keys = sorted({spec.key for a in assets for spec in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])
                   if "dagster/column_schema" in (spec.metadata or {})}, key=lambda k: k.to_user_string())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return list(dg.build_column_schema_change_checks(assets=keys, severity=dg.AssetCheckSeverity.WARN))
