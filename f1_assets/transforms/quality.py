"""The data quality score of one table partition: completeness per column, null counts, outlier share,
and a 0-100 score (the design's "quality score, threshold 95").

Pure: a frame and its table declaration (`f1_assets.tables`) in, a `QualityReport` out; no Dagster, no
storage. Called by the table assets on the frame they hand to their IO manager (`f1_assets.assets.*`);
`f1_assets.checks.rules` turns reports into the `quality_score` check and materialization metadata.

Definitions, for a partition of `rows` rows of season `season` (None: an unpartitioned table):
- completeness(c) = non-NULL rows of column c / rows (1.0 for a partition without rows);
- expected columns: the nullable columns the declaration expects filled in that season (a column's
  `expected` attribute: absent = always, `{since: YYYY}` = from that season on, `{sparse: why}` = never
  judged). NOT NULL columns are always complete (the schema refuses NULLs before any write) and are
  not counted;
- outlier share = rows a WARN value rule flags as implausible / rows. Chosen rules: the lap-time range
  30-300 s (`lap_time_range`; `f1_assets.transforms.features.MIN_LAP_MS`/`MAX_LAP_MS`) on the tables
  with a `lap_time_ms` column (raw_laps, fastf1_laps, lap_features); 0 for every other table (their
  WARN rules judge whole races or drivers, not rows). lap_features' `is_outlier` is NOT the outlier
  share: it also flags race events (first lap, in/out laps, safety car: 13-18 % of a normal race's
  rows), which are not defects; it is reported as `is_outlier_share`;
- score = 100 x min(1, worst completeness over the expected columns) x (1 - outlier share),
  rounded to 2 decimals; 100 for a partition without rows or expected columns.

So a complete clean partition scores 100; an expected column filled below 95 % (`THRESHOLD`) puts the
score below 95 by itself (a mean over columns would hide one empty column among twenty); a lap-time
outlier share of 5 % does the same. The columns that pull the score down are the expected columns under
the threshold (`low_columns`), and "outliers" when the outlier share alone is above 5 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from f1_assets.tables import Table
from f1_assets.transforms.features import MAX_LAP_MS, MIN_LAP_MS

THRESHOLD = 0.95  # the design's completeness threshold and, as 100 x THRESHOLD, the score's
LAP_TIME_COLUMN = "lap_time_ms"
OUTLIER_RULE = f"lap_time_range: {LAP_TIME_COLUMN} outside {MIN_LAP_MS}-{MAX_LAP_MS} ms"
WORST_PARTITIONS = 5  # partitions a batch summary names


@dataclass(frozen=True)
class QualityReport:
    """The quality of one table partition (see the module docstring for every definition)."""

    table: str
    partition: str | None
    rows: int
    completeness: dict[str, float]  # every column
    null_counts: dict[str, int]  # every column
    expected: tuple[str, ...]  # the columns judged
    outlier_rows: int
    score: float
    is_outlier_share: float | None = None  # lap_features only: every flagged row, race events included
    low_columns: dict[str, float] = field(default_factory=dict)  # expected columns under THRESHOLD

    @property
    def outlier_share(self) -> float:
        return self.outlier_rows / self.rows if self.rows else 0.0

    @property
    def passed(self) -> bool:
        return self.score >= 100 * THRESHOLD

    def pulled_down_by(self) -> list[str]:
        """What lowers the score under the threshold: the low columns (worst first), then 'outliers'."""
        names = [f"{c} {s:.1%}" for c, s in sorted(self.low_columns.items(), key=lambda kv: (kv[1], kv[0]))]
        if self.outlier_share > 1 - THRESHOLD:
            names.append(f"outliers {self.outlier_share:.1%} ({OUTLIER_RULE})")
        return names


def score(completeness: dict[str, float], expected: Sequence[str], outlier_share: float) -> float:
    """100 x min(1, worst completeness of the expected columns) x (1 - outlier share), 2 decimals."""
    worst = min((completeness[c] for c in expected), default=1.0)
    return round(100.0 * min(1.0, worst) * (1.0 - outlier_share), 2)


def outlier_mask(frame: pd.DataFrame) -> pd.Series:
    """Rows a WARN value rule flags as implausible: lap times outside 30-300 s where the table has them."""
    if LAP_TIME_COLUMN not in frame.columns:
        return pd.Series(False, index=frame.index)
    t = pd.to_numeric(frame[LAP_TIME_COLUMN], errors="coerce")
    return (t.notna() & ((t < MIN_LAP_MS) | (t > MAX_LAP_MS))).fillna(False).astype(bool)


def quality_report(frame: pd.DataFrame, declared: Table, season: int | None = None,
                   partition: str | None = None) -> QualityReport:
    """The report of one partition's rows (`frame`: the table's columns; others are ignored)."""
    columns = [c for c in declared.column_names if c in frame.columns]
    rows = len(frame)
    nulls = {c: int(n) for c, n in frame[columns].isna().sum().items()}
    completeness = {c: (round(1.0 - nulls[c] / rows, 4) if rows else 1.0) for c in columns}
    expected = tuple(c for c in columns if declared.column(c).nullable and declared.column(c).expected_filled(season))
    outliers = int(outlier_mask(frame).sum())
    is_outlier = None
    if "is_outlier" in frame.columns:
        is_outlier = round(float(frame["is_outlier"].fillna(False).astype(bool).mean()), 4) if rows else 0.0
    return QualityReport(
        table=declared.name, partition=partition, rows=rows, completeness=completeness, null_counts=nulls,
        expected=expected, outlier_rows=outliers,
        score=score(completeness, expected, outliers / rows if rows else 0.0),
        is_outlier_share=is_outlier,
        low_columns={c: completeness[c] for c in expected if completeness[c] < THRESHOLD},
    )


@dataclass(frozen=True)
class BatchQuality:
    """A run's reports summarised in a size that does not grow with the batch."""

    score: float  # the minimum over the partitions
    partitions: int
    below: int  # partitions under the threshold
    worst: list[str]  # "key score: pulled down by ...", worst first, at most WORST_PARTITIONS
    null_counts: dict[str, int]  # summed over the partitions
    rows: int


def summarise(reports: Sequence[QualityReport]) -> BatchQuality:
    ordered = sorted(reports, key=lambda r: (r.score, r.partition or ""))
    worst = [f"{r.partition} {r.score:g}" + (f": {', '.join(r.pulled_down_by())}" if not r.passed else "")
             for r in ordered[:WORST_PARTITIONS]]
    nulls: dict[str, int] = {}
    for r in reports:
        for c, n in r.null_counts.items():
            nulls[c] = nulls.get(c, 0) + n
    return BatchQuality(score=ordered[0].score if ordered else 100.0, partitions=len(reports),
                        below=sum(not r.passed for r in reports), worst=worst, null_counts=nulls,
                        rows=sum(r.rows for r in reports))
