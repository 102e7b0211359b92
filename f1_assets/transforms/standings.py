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

Also, whatever the season: positions are unique and points never rise down the table; and where the sum is
compared: wins are the race wins (P1 in raw_results) of rounds 1..R, and a driver's constructors are teams
of their results. A round whose results (or, on a sprint weekend, sprint results) are not in the warehouse
leaves the sum unknown: the verdict then passes with `compared: false` and names the missing rounds (a gap in loading is
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
    # the table's own order, whatever the season and whatever is loaded: positions unique, points by position
    disorder = order_problems(standings, key, rnd)
    if disorder:
        return Verdict(False, {**base, "compared": False, "failing_count": len(disorder),
                               "failing_keys": disorder[:MAX_KEYS],
                               "reason": "the standings contradict their own order (positions and points)"})
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
    failing += _wins_and_teams(standings, kind, season, rnd, results, sprint, set(skipped))
    return Verdict(not failing, {
        **base, "compared": True, "rounds_summed": rnd, "failing_count": len(failing),
        "failing_keys": failing[:MAX_KEYS], **({"skipped_adjusted": skipped} if skipped else {})})


def order_problems(standings: pd.DataFrame, key: str, rnd: int) -> list[str]:
    """Positions (where set) are unique and no entity has more points than one placed above it."""
    placed = standings[standings["position"].notna()].sort_values("position")
    out = [f"{k}: position {int(p)} given twice after round {rnd}"
           for k, p in zip(placed[key], placed["position"], strict=True) if (placed["position"] == p).sum() > 1]
    above = placed["points"].shift()
    for k, p, pts, prev in zip(placed[key], placed["position"], placed["points"], above, strict=True):
        if pd.notna(prev) and pts > prev + TOLERANCE:
            out.append(f"{k}: position {int(p)} with {_pts(pts)} points, more than the position above "
                       f"({_pts(prev)}) after round {rnd}")
    return out


def _wins_and_teams(standings: pd.DataFrame, kind: str, season: int, rnd: int, results: pd.DataFrame,
                    sprint: pd.DataFrame, skipped: set[str]) -> list[str]:
    """Wins = race wins (P1 in raw_results, sprints not counted) of rounds 1..R; a driver's constructors are
    teams of their race or sprint results of rounds 1..R."""
    key = f"{kind}_id"
    race = results[(results["season"] == season) & (results["round"] <= rnd)]
    won = race[race["position"] == 1].groupby(key).size()
    out = []
    for k, wins in zip(standings[key], standings["wins"], strict=True):
        if k in skipped or pd.isna(wins):
            continue
        if int(wins) != int(won.get(k, 0)):
            out.append(f"{k} after round {rnd}: standings {int(wins)} wins, results {int(won.get(k, 0))}")
    if kind == "driver" and "constructor_ids" in standings:
        both = pd.concat([f.loc[(f["season"] == season) & (f["round"] <= rnd), ["driver_id", "constructor_id"]]
                          for f in (results, sprint)], ignore_index=True)
        teams = both.groupby("driver_id")["constructor_id"].agg(set)
        for k, listed in zip(standings["driver_id"], standings["constructor_ids"], strict=True):
            named = {c for c in str(listed or "").split(",") if c}
            unknown = sorted(named - teams.get(k, set()))
            if unknown and k not in skipped:
                out.append(f"{k} after round {rnd}: constructor(s) {', '.join(unknown)} in no result of the driver")
    return out


def _pts(value: float) -> str:
    if pd.isna(value):
        return "none (absent)"
    return f"{value:g}"
