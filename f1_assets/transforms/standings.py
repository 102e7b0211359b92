"""Do the championship standings after a round agree with the results up to it? Pure: frames in, a verdict out.

A driver's (constructor's) points after round R are the sum of the points of their race and sprint results
of rounds 1..R (`raw_results`, `raw_sprint_results`) — in the seasons where every result counts. Which
seasons those are comes from Jolpica's championship systems (`formula_one_championshipsystem.csv` of its
dump; `best_results` -1 = every result counts, `points_per_session` 1 = only the best car of a team
scores) and its championship adjustments (`formula_one_championshipadjustment.csv`), restated here as
`ALL_RESULTS_COUNT` and `ADJUSTED` (f1_assets_tests/test_standings.py holds them against the dump):

| standings | seasons the check skips, and why |
|---|---|
| drivers | before 1991: only the best N results counted (split seasons 1967-1980); 1950s shared drives |
| constructors | before 1979: only the best-placed car of a team scored (1958-1978), best-N results too |
| both | adjusted: 1997 michael_schumacher disqualified (D), 2007 mclaren excluded (E), 2020 racing_point -15 |

A round whose results (or, on a sprint weekend, sprint results) are not in the warehouse leaves the sum
unknown: the verdict then passes with `compared: false` and names the missing rounds (a gap in loading is
not an error of the standings; the rows are still written). Called by the standings assets of
`f1_assets/assets/ingest_jolpica.py`; no Dagster, no storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# from the dump's championship systems: the first season from which every result counts, per standings kind
ALL_RESULTS_COUNT = {"driver": 1991, "constructor": 1979}
# the dump's championship adjustments: (season, kind, id) → why the points are not the results' sum
ADJUSTED = {
    (1997, "driver", "michael_schumacher"): "disqualified from the 1997 drivers' championship (positionText D)",
    (2007, "constructor", "mclaren"): "excluded from the 2007 constructors' championship (positionText E, 0 points)",
    (2020, "constructor", "racing_point"): "15 points deducted from the 2020 constructors' championship",
}
TOLERANCE = 1e-6  # points are halves at worst (half points): a float sum is exact to far below this
MAX_KEYS = 20


@dataclass(frozen=True)
class Verdict:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


def missing_rounds(season: int, rnd: int, calendar: pd.DataFrame, results: pd.DataFrame,
                   sprint: pd.DataFrame) -> list[str]:
    """The race keys of rounds 1..rnd whose results (or sprint results on a sprint weekend) are not loaded;
    a round the calendar does not hold counts as missing (its sprint is unknown)."""
    races = calendar[calendar["season"] == season].set_index("round")
    have = set(results.loc[results["season"] == season, "round"].astype(int))
    have_sprint = set(sprint.loc[sprint["season"] == season, "round"].astype(int))
    missing = []
    for r in range(1, rnd + 1):
        if r not in races.index or r not in have or bool(races.loc[r, "has_sprint"]) and r not in have_sprint:
            missing.append(f"{season}-{r:02d}")
    return missing


def standings_agree(standings: pd.DataFrame, kind: str, season: int, rnd: int, calendar: pd.DataFrame,
                    results: pd.DataFrame, sprint: pd.DataFrame) -> Verdict:
    """`standings_agree_with_results` for one race's standings rows (`kind` "driver" or "constructor");
    `results`/`sprint` the season's loaded raw_results/raw_sprint_results rows (any rounds), `calendar` its
    raw_races rows. Fails naming each entity and round whose points differ from the results' sum."""
    key = f"{kind}_id"
    base = {"season": season, "round": rnd, "entries": len(standings)}
    if standings.empty:
        return Verdict(True, {**base, "compared": False, "reason": "no standings rows to compare"})
    if season < ALL_RESULTS_COUNT[kind]:
        return Verdict(True, {**base, "compared": False, "reason": (
            f"{season}: not every result counted towards the {kind}s' championship before "
            f"{ALL_RESULTS_COUNT[kind]} (best-N results, shared drives, best car per team): the standings are "
            "not the results' sum")})
    gap = missing_rounds(season, rnd, calendar, results, sprint)
    if gap:
        return Verdict(True, {**base, "compared": False, "reason": (
            f"the results of {len(gap)} earlier round(s) are not in the warehouse (materialize raw_results"
            f"/raw_sprint_results for them): {', '.join(gap[:MAX_KEYS])}")})
    upto = pd.concat([f.loc[(f["season"] == season) & (f["round"] <= rnd), [key, "points"]]
                      for f in (results, sprint)], ignore_index=True)
    summed = upto.groupby(key)["points"].sum()
    stood = standings.set_index(key)["points"]
    both = pd.concat([stood.rename("standings"), summed.rename("results")], axis=1)
    both = both.fillna({"results": 0.0})
    skipped = {k: why for (s, kd, k), why in ADJUSTED.items() if s == season and kd == kind and k in both.index}
    both = both.drop(index=list(skipped))
    # an entity with points in the results but absent from the standings fails too
    absent = both["standings"].isna() & (both["results"].abs() > TOLERANCE)
    bad = both[absent | ((both["standings"] - both["results"]).abs() > TOLERANCE)]
    failing = [f"{k} after round {rnd}: standings {_pts(r.standings)} points, results {_pts(r.results)}"
               for k, r in bad.iterrows()]
    return Verdict(bad.empty, {
        **base, "compared": True, "rounds_summed": rnd, "failing_count": len(bad), "failing_keys": failing[:MAX_KEYS],
        **({"skipped_adjusted": skipped} if skipped else {})})


def _pts(value: float) -> str:
    if pd.isna(value):
        return "none (absent)"
    return f"{value:g}"
