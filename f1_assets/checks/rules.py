"""The one check mechanism: every quality rule declared once (name, severity, description), evaluated
into a `CheckOutcome` by pure code, turned into Dagster's `AssetCheckSpec`/`AssetCheckResult` here.

ERROR rules about an asset's own rows are blocking (`AssetCheckSpec(blocking=True)`); WARN rules
never block; `live_timing_available` is an ERROR that deliberately does not block (FastF1's absence
must not stop `lap_features`, whose FastF1 columns are optional). The assets evaluate their rules
on the frame *before* returning it to the IO manager: when a blocking rule fails, `reject` reports
the checks and fails the step — nothing is written, the stored version stays, downstream is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

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
                                 description=f"{self.description} ({kind})")

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


def _value(value: Any) -> Any:
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
        parts.append(f"{r.check_name} ({detail})")
    return "; ".join(parts)


def reject(checks: Iterable[dg.AssetCheckResult], description: str) -> Iterator[dg.AssetCheckResult]:
    """Report the check results that explain a refusal, then fail the step (no retry).

    Use with `yield from` in a generator asset before its output: the checks show in the UI, no
    materialization is recorded, the stored version stays and downstream steps are skipped."""
    yield from checks
    raise dg.Failure(description=description, allow_retries=False)


def gate(checks: Sequence[dg.AssetCheckResult], check_specs: Sequence[dg.AssetCheckSpec], what: str,
         stored: int | str) -> Iterator[dg.AssetCheckResult]:
    """`reject` when a blocking check fails, naming the failures and what stays stored; else nothing."""
    blocked = blocking_failures(checks, check_specs)
    if blocked:
        kept = f"{stored} rows" if isinstance(stored, int) else stored
        yield from reject(checks, f"{what}: blocking checks failed: {describe_failures(blocked)}. Nothing was "
                          f"written; what is stored ({kept}) is kept.")


# ------------------------------------------------------------------------------- the rules

LIVE_TIMING = Rule("live_timing_available", "ERROR",
                   "FastF1 served every stream this asset is made of (2018+ races FastF1 has a session for); "
                   "failures name the missing streams or the unreachable host", blocking=False)
DRIVERS_IN_RESULTS = Rule("drivers_in_results", "ERROR", "Every driver in the rows is in the race's Jolpica results")

RAW = rule_set(
    Rule("row_count_matches_upstream", "ERROR", "Rows written equal MRData.total (and a season has races)"),
    Rule("has_rows", "ERROR", "A race that has run has rows where its era and schedule say upstream has them"),
    Rule("positions_in_range", "ERROR", "Positions are 1..the race's starters"),
    DRIVERS_IN_RESULTS,
    Rule("lap_times_positive", "ERROR", "Lap times are > 0 (the schema refuses 0 before any write)"),
    Rule("joins_race", "WARN", "Every result row joins its race in raw_races (the calendar may lag)"),
    Rule("laps_complete", "WARN", "Each driver's lap timings equal the laps the results say they completed; "
                                  "fails for a partial race"),
)

FASTF1_LAPS = rule_set(
    Rule("lap_numbers_within_race", "ERROR", "Every lap number is 1..the race's laps (Jolpica results, else FastF1)"),
    DRIVERS_IN_RESULTS,
    LIVE_TIMING,
)

RAW_TELEMETRY = rule_set(
    Rule("throttle_range", "ERROR", "Throttle is 0–100 %"),
    Rule("speed_range", "ERROR", "Speed is 0–400 km/h"),
    Rule("gear_range", "ERROR", "nGear is 0–8"),
    Rule("lap_numbers_within_race", "ERROR", "Tagged lap numbers are 1..the race's laps"),
    Rule("completeness", "WARN", f"Per driver, ≥ {COMPLETENESS_MIN:.0%} of samples have every channel"),
    DRIVERS_IN_RESULTS,
    LIVE_TIMING,
)

LAP_FEATURES = rule_set(
    Rule("lap_features_schema", "ERROR", "pandera schema of lap_features"),
    Rule("lap_time_range", "WARN", "lap times 30-300 s; outliers flagged, not dropped"),
    Rule("fuel_range", "ERROR", "fuel_remaining 0-150 kg"),
    Rule("position_range", "ERROR", "1 <= position <= starters"),
    Rule("pit_stops_per_result", "WARN", "0-5 pit stops per result"),
    Rule("feature_completeness", "ERROR", f"> {COMPLETENESS_MIN:.0%} non-NULL per feature column"),
    Rule("rows_join_race", "ERROR", "every lap_features row joins its race"),
    Rule("fastf1_coverage", "WARN", f"FastF1 track status on > {COMPLETENESS_MIN:.0%} of rows when the race has "
                                    "FastF1 laps"),
)

TELEMETRY_FEATURES = rule_set(
    Rule("telemetry_features_schema", "ERROR", "pandera schema of telemetry_features"),
    Rule("telemetry_ranges", "ERROR", "throttle 0-100 %, speed 0-400 km/h"),
)

SPLITS = rule_set(
    Rule("train_ends_by_boundary", "ERROR", "No train race after train_end; failing race keys in metadata"),
    Rule("validation_within_boundaries", "ERROR", "Validation races within validation_start..validation_end"),
    Rule("test_starts_at_boundary", "ERROR", "No test race before test_start"),
    Rule("no_race_in_another_split", "ERROR", "No race of the split appears in another split"),
    Rule("every_row_in_one_split", "ERROR", "Every lap_features row is in exactly one split: rows in several "
                                            "splits fail (ERROR); rows outside all splits are reported (WARN)"),
)
