"""Driver profiles from train-split lap features: pure, vectorised pandas (DataFrames in, DataFrame out).

Called by the `driver_profiles` asset (`f1_assets.assets.ml`) with the rows of the `train` view and
the `raw_results` rows of the races in that view, and by tests. No storage, no Dagster.

Every score compares a driver with the *same race's field* (or team-mates in the same race), so a
number means the same thing in 1998 and in 2022, in a fast car and in a slow one; pace differences
between cars and circuits cancel. A score is NULL when the driver has too little data for it, and
`null_reason` says which score and why (never a made-up default).

Definitions (thresholds are `ProfileParams`):

- clean lap: `is_outlier` is false and the lap has a time (so not the first lap, in/out laps,
  safety-car/VSC/red laps where known, statistical outliers; see `f1_assets.transforms.features`),
  the lap is not neutralised (below), and it is at most `slow_lap_factor` (1.07) x the driver's
  median clean lap of the race (traffic, incidents, damage).
- neutralised lap L of a race: a car had a safety-car/VSC/red status on L (FastF1), or the feature
  layer flagged L 'neutralised' (status unknown and the whole field slow: an inferred safety car).
- racing lap of a driver on lap L (L >= 2): the driver has a position on L-1 and L, neither L nor
  the out-lap is a pit lap (`pit_stop` or outlier reason `out_lap`), and no car in the race had a
  neutralised status on L. An on-track pass of A over B on lap L: both on a racing lap,
  A behind B at the end of L-1 and ahead at the end of L (pit-cycle and retirement swaps excluded).
- **aggression**: attack laps are racing laps on which the driver was within `attack_gap_ms` of the
  car directly ahead at the end of L-1 (`delta_to_next_ms`). With `p_r` = the race field's passes
  per attack lap, `aggression = Σ passes made on attack laps / Σ_r p_r · attack laps in race r`.
  1.0 = converts closeness into passes at the field's rate; 0 = never passed; 2 = twice the rate.
  NULL below `min_attack_laps` attack laps or when the field made no pass on those races.
- **consistency**: per race, the driver's spread = median |Δ lap time| between consecutive clean
  laps of one stint (lap-to-lap differences remove the slow fuel/tyre trend), needing
  `min_clean_pairs` pairs. Field spread = median of the drivers' spreads in that race.
  `consistency = exp(-Σ w·ln(spread / field spread) / Σ w)`, w = pairs (a pair-weighted geometric
  mean of field/driver). 1.0 = field-typical, 1.25 = spread 20 % below the field's. NULL below
  `min_races` races with a spread.
- **pressure_response**: pressure laps are racing laps on which the car directly behind at the end
  of L-1 was within `pressure_gap_ms` (that car's `delta_to_next_ms`). Held = the driver lost no
  position on track on that lap. With `h_r` = the race field's held share of pressure laps,
  `pressure_response = (Σ held - Σ_r h_r · pressure laps in race r) / Σ pressure laps`:
  0 = defends like the field, +0.05 = holds 5 points more of pressure laps. NULL below
  `min_pressure_laps` pressure laps.
- **tire_management**: per stint with at least `min_stint_laps` clean laps, the degradation slope
  = OLS slope of lap time (ms) on `tire_age`; a driver's race degradation = clean-lap-weighted mean
  of their stint slopes. Relative degradation = driver's minus the mean of the team-mates'
  (same `constructor_id` in raw_results, same race); fuel burn, track evolution and the car's base
  pace are shared by team-mates and cancel. `tire_management = -(lap-weighted mean over races)`
  in ms per lap of tyre age: > 0 = the driver loses less time per lap of tyre age than the
  team-mates. NULL below `min_races` races with a team-mate comparison.
- **career_races**: train-split races with a raw_results row for the driver (entries, including
  retirements; Jolpica lap data starts in 1996, so only those races are in the split).
- **data_quality**: clean laps / laps completed per raw_results (`laps`), clipped to [0, 1]: the
  share of the driver's racing the scores can use. NULL when raw_results has no completed lap.
- **laps_used**: clean laps; **races_used**: races with lap rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

import numpy as np
import pandas as pd

from f1_assets.tables import table

_PROFILES = table("driver_profiles")
# the declared columns but `updated_at`, which the asset stamps when it writes the table
PROFILE_COLUMNS = [c for c in _PROFILES.column_names if c != "updated_at"]
SCORES = ["aggression", "consistency", "pressure_response", "tire_management", "data_quality"]

# the lap_features columns the profiles read (the asset selects exactly these from the train view)
LAP_INPUT_COLUMNS = [
    "season",
    "round",
    "race_id",
    "race_date",
    "driver_id",
    "driver_code",
    "lap_number",
    "lap_time_ms",
    "position",
    "stint",
    "tire_age",
    "pit_stop",
    "delta_to_next_ms",
    "safety_car",
    "is_outlier",
    "outlier_reason",
]
RESULT_INPUT_COLUMNS = ["season", "round", "driver_id", "driver_code", "given_name", "family_name",
                        "constructor_id", "laps"]

_NEUTRALISED = ("safety_car", "vsc", "red_flag", "neutralised")
_PAIR_CHUNK = 20_000


@dataclass(frozen=True)
class ProfileParams:
    min_races: int = 3
    min_clean_pairs: int = 5
    min_stint_laps: int = 5
    attack_gap_ms: int = 1_000
    pressure_gap_ms: int = 1_000
    min_attack_laps: int = 20
    min_pressure_laps: int = 20
    slow_lap_factor: float = 1.07


def param_fields() -> dict[str, tuple[type, Any]]:
    """`(type, default)` of each `ProfileParams` threshold, in declaration order.

    The one list of thresholds a run-config class is built from (`assets/ml/config.py`:
    `pydantic.create_model("ProfileConfig", __base__=dg.Config, **param_fields())`), so the names,
    types and defaults are not written twice."""
    hints = get_type_hints(ProfileParams)
    return {f.name: (hints[f.name], f.default) for f in fields(ProfileParams)}


def _prep_laps(laps: pd.DataFrame, params: ProfileParams) -> pd.DataFrame:
    """Typed copy: the warehouse drivers hand back object columns for nullable ints/bools."""
    df = laps[[c for c in LAP_INPUT_COLUMNS if c in laps.columns]].copy()
    for col in ("season", "round", "lap_number", "lap_time_ms", "position", "stint", "tire_age", "delta_to_next_ms"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    reason = df["outlier_reason"].astype("string").fillna("")
    df["is_outlier"] = df["is_outlier"].astype("boolean").fillna(True).astype(bool)
    df["pit_stop"] = df["pit_stop"].astype("boolean").fillna(False).astype(bool)
    sc = df["safety_car"].astype("boolean").fillna(False).astype(bool)
    df["neutral"] = sc | reason.str.contains("|".join(_NEUTRALISED), regex=True)
    df["pit_lap"] = df["pit_stop"] | reason.str.contains("in_lap|out_lap", regex=True)
    df["clean"] = ~df["is_outlier"] & df["lap_time_ms"].notna()
    df["clean"] &= ~df["neutral"]
    clean_t = df["lap_time_ms"].where(df["clean"])
    driver_median = clean_t.groupby([df["race_id"], df["driver_id"]]).transform("median")
    df["clean"] &= (df["lap_time_ms"] <= params.slow_lap_factor * driver_median).fillna(False).astype(bool)
    return df.sort_values(["race_id", "driver_id", "lap_number"]).reset_index(drop=True)


def _weighted(values: pd.Series, weights: pd.Series, by: pd.Series) -> pd.Series:
    num = (values * weights).groupby(by).sum()
    den = weights.groupby(by).sum()
    return num / den.where(den > 0)


def _reasons(drivers: pd.Index, failing: np.ndarray, why: Callable[[str], str]) -> pd.Series:
    """Per driver: `why(driver)` where `failing`, else None."""
    return pd.Series([why(d) if bad else None for d, bad in zip(drivers, failing, strict=True)], index=drivers,
                     dtype=object)


# ----------------------------------------------------------------------------------- consistency


def consistency_inputs(df: pd.DataFrame, params: ProfileParams) -> pd.DataFrame:
    """Per (race_id, driver_id): pairs, spread_ms, field_spread_ms, log_ratio (races with a spread)."""
    c = df[df["clean"]]
    g = c.groupby(["race_id", "driver_id"], sort=False)
    consecutive = (c["lap_number"] - g["lap_number"].shift() == 1) & (c["stint"] == g["stint"].shift())
    diff = (c["lap_time_ms"] - g["lap_time_ms"].shift()).abs().where(consecutive)
    per = (pd.DataFrame({"race_id": c["race_id"], "driver_id": c["driver_id"], "diff": diff})
           .dropna(subset=["diff"])
           .groupby(["race_id", "driver_id"])["diff"].agg(pairs="size", spread_ms="median")
           .reset_index())
    per = per[per["pairs"] >= params.min_clean_pairs]
    per["field_spread_ms"] = per.groupby("race_id")["spread_ms"].transform("median")
    per = per[per.groupby("race_id")["driver_id"].transform("size") >= 2]  # a field to compare with
    per["log_ratio"] = np.log(per["spread_ms"].clip(lower=1.0) / per["field_spread_ms"].clip(lower=1.0))
    return per.reset_index(drop=True)


def consistency_score(df: pd.DataFrame, params: ProfileParams, drivers: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per driver: `exp(-Σ w·ln(spread / field spread) / Σ w)`, w = pairs (unitless; 1 = the field's
    spread); NULL below `min_races` races with a spread. Returns (score, null reason)."""
    ci = consistency_inputs(df, params)
    races = ci.groupby("driver_id").size().reindex(drivers, fill_value=0)
    score = np.exp(-_weighted(ci["log_ratio"], ci["pairs"].astype(float), ci["driver_id"])).reindex(drivers)
    ok = races >= params.min_races
    return score.where(ok), _reasons(drivers, ~ok.to_numpy(), lambda d: (
        f"consistency: {races[d]} race(s) with >= {params.min_clean_pairs} consecutive clean-lap pairs, "
        f"need {params.min_races}"))


# ------------------------------------------------------------------------- passes and pressure


def lap_duels(df: pd.DataFrame, params: ProfileParams) -> pd.DataFrame:
    """Per driver-lap on racing laps: passes made/lost on track, attack and pressure flags."""
    key = ["race_id", "driver_id"]
    prev = df[key + ["lap_number", "position", "delta_to_next_ms"]].copy()
    prev["lap_number"] += 1
    prev = prev.rename(columns={"position": "p0", "delta_to_next_ms": "gap_ahead_ms"})
    r = df[key + ["lap_number", "position", "pit_lap"]].merge(prev, on=key + ["lap_number"], how="inner")
    race_neutral = df.groupby(["race_id", "lap_number"])["neutral"].any().rename("lap_neutral")
    r = r.join(race_neutral, on=["race_id", "lap_number"])
    r = r[(r["lap_number"] >= 2) & ~r["pit_lap"] & ~r["lap_neutral"].fillna(False).astype(bool)
          & r["position"].notna() & r["p0"].notna()].reset_index(drop=True)
    # gap of the car directly behind at the end of L-1 = its delta_to_next_ms on L-1
    behind = df[["race_id", "lap_number", "position", "delta_to_next_ms"]].dropna(subset=["position"]).copy()
    behind["lap_number"] += 1
    behind["position"] -= 1
    behind = behind.rename(columns={"position": "p0", "delta_to_next_ms": "gap_behind_ms"})
    behind = behind.drop_duplicates(["race_id", "lap_number", "p0"])
    r = r.merge(behind, on=["race_id", "lap_number", "p0"], how="left")

    made = np.zeros(len(r), dtype=np.int64)
    lost = np.zeros(len(r), dtype=np.int64)
    if len(r):
        grp = r.groupby(["race_id", "lap_number"], sort=False).ngroup().to_numpy()
        slot = r.groupby(["race_id", "lap_number"], sort=False).cumcount().to_numpy()
        n_groups, width = grp.max() + 1, slot.max() + 1
        p0 = np.full((n_groups, width), np.nan)
        p1 = np.full((n_groups, width), np.nan)
        p0[grp, slot] = r["p0"].to_numpy(dtype=float)
        p1[grp, slot] = r["position"].to_numpy(dtype=float)
        made_m = np.zeros((n_groups, width), dtype=np.int64)
        lost_m = np.zeros((n_groups, width), dtype=np.int64)
        for lo in range(0, n_groups, _PAIR_CHUNK):  # NaN compares False: empty slots never count
            a0, a1 = p0[lo:lo + _PAIR_CHUNK], p1[lo:lo + _PAIR_CHUNK]
            made_m[lo:lo + _PAIR_CHUNK] = ((a0[:, :, None] > a0[:, None, :]) & (a1[:, :, None] < a1[:, None, :])).sum(2)
            lost_m[lo:lo + _PAIR_CHUNK] = ((a0[:, :, None] < a0[:, None, :]) & (a1[:, :, None] > a1[:, None, :])).sum(2)
        made, lost = made_m[grp, slot], lost_m[grp, slot]
    r["passes_made"] = made
    r["passes_lost"] = lost
    r["attack"] = (r["p0"] > 1) & (r["gap_ahead_ms"] <= params.attack_gap_ms)
    r["pressure"] = r["gap_behind_ms"] <= params.pressure_gap_ms
    r["held"] = r["passes_lost"] == 0
    return r


def _vs_field(duels: pd.DataFrame, flag: str, outcome: str) -> pd.DataFrame:
    """Per driver: laps with `flag`, Σ outcome on them, Σ outcome expected at each race field's rate."""
    d = duels[duels[flag]].copy()
    d["outcome"] = d[outcome].astype(float)
    race_rate = d.groupby("race_id")["outcome"].sum() / d.groupby("race_id").size()
    per = d.groupby(["race_id", "driver_id"]).agg(laps=("outcome", "size"), got=("outcome", "sum")).reset_index()
    per["expected"] = per["race_id"].map(race_rate) * per["laps"]
    return per.groupby("driver_id")[["laps", "got", "expected"]].sum()


def aggression_score(duels: pd.DataFrame, params: ProfileParams, drivers: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per driver: passes made on attack laps / passes expected at each race field's rate (unitless;
    1 = the field's rate); NULL below `min_attack_laps` attack laps or with no expected pass.
    Returns (score, null reason)."""
    att = _vs_field(duels, "attack", "passes_made").reindex(drivers).fillna(0.0)
    ok = (att["laps"] >= params.min_attack_laps) & (att["expected"] > 0)
    score = (att["got"] / att["expected"].where(att["expected"] > 0)).where(ok)

    def why(d: str) -> str:
        if att.at[d, "laps"] < params.min_attack_laps:
            return (f"aggression: {int(att.at[d, 'laps'])} attack lap(s) within {params.attack_gap_ms} ms "
                    f"of the car ahead, need {params.min_attack_laps}")
        return "aggression: the field made no on-track pass in the driver's races"

    return score, _reasons(drivers, ~ok.to_numpy(), why)


def pressure_response_score(duels: pd.DataFrame, params: ProfileParams,
                            drivers: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per driver: (pressure laps held - held expected at each race field's rate) / pressure laps
    (a share; 0 = the field's rate); NULL below `min_pressure_laps`. Returns (score, null reason)."""
    pr = _vs_field(duels, "pressure", "held").reindex(drivers).fillna(0.0)
    ok = pr["laps"] >= params.min_pressure_laps
    score = ((pr["got"] - pr["expected"]) / pr["laps"].where(pr["laps"] > 0)).where(ok)
    return score, _reasons(drivers, ~ok.to_numpy(), lambda d: (
        f"pressure_response: {int(pr.at[d, 'laps'])} pressure lap(s) with a car within "
        f"{params.pressure_gap_ms} ms behind, need {params.min_pressure_laps}"))


# ----------------------------------------------------------------------------- tyre management


def degradation_inputs(df: pd.DataFrame, results: pd.DataFrame, params: ProfileParams) -> pd.DataFrame:
    """Per (race_id, driver_id) with a team-mate comparison: deg_ms_per_lap, mates_deg, rel, laps."""
    c = df[df["clean"] & df["tire_age"].notna()].copy()
    c["x"], c["y"] = c["tire_age"], c["lap_time_ms"]
    c["xy"], c["xx"] = c["x"] * c["y"], c["x"] * c["x"]
    s = c.groupby(["race_id", "season", "round", "driver_id", "stint"]).agg(
        n=("x", "size"), sx=("x", "sum"), sy=("y", "sum"), sxy=("xy", "sum"), sxx=("xx", "sum")).reset_index()
    den = s["n"] * s["sxx"] - s["sx"] ** 2
    s["slope"] = (s["n"] * s["sxy"] - s["sx"] * s["sy"]) / den.where(den > 0)
    s = s[(s["n"] >= params.min_stint_laps) & s["slope"].notna()]
    s["w_slope"] = s["slope"] * s["n"]
    per = s.groupby(["race_id", "season", "round", "driver_id"]).agg(laps=("n", "sum"), ws=("w_slope", "sum"))
    per = per.reset_index()
    per["deg"] = per["ws"] / per["laps"]
    teams = results[["season", "round", "driver_id", "constructor_id"]].copy()
    teams["season"] = pd.to_numeric(teams["season"]).astype(float)
    teams["round"] = pd.to_numeric(teams["round"]).astype(float)
    teams = teams.drop_duplicates(["season", "round", "driver_id"])
    per = per.merge(teams, on=["season", "round", "driver_id"], how="inner")
    grp = per.groupby(["race_id", "constructor_id"])
    n_team, sum_team = grp["deg"].transform("size"), grp["deg"].transform("sum")
    per["mates_deg"] = (sum_team - per["deg"]) / (n_team - 1).where(n_team > 1)
    per = per[per["mates_deg"].notna()].copy()
    per["rel"] = per["deg"] - per["mates_deg"]
    return per[["race_id", "driver_id", "constructor_id", "laps", "deg", "mates_deg", "rel"]].reset_index(drop=True)


def tire_management_score(df: pd.DataFrame, results: pd.DataFrame, params: ProfileParams,
                          drivers: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per driver: -(lap-weighted mean over races of the degradation relative to team-mates), in ms
    per lap of tyre age (> 0 = degrades less); NULL below `min_races` races with a team-mate
    comparison. Returns (score, null reason)."""
    di = degradation_inputs(df, results, params)
    races = di.groupby("driver_id").size().reindex(drivers, fill_value=0)
    score = -_weighted(di["rel"], di["laps"].astype(float), di["driver_id"]).reindex(drivers)
    ok = races >= params.min_races
    return score.where(ok), _reasons(drivers, ~ok.to_numpy(), lambda d: (
        f"tire_management: {races[d]} race(s) with a team-mate stint comparison "
        f"(>= {params.min_stint_laps} clean laps a stint), need {params.min_races}"))


# ------------------------------------------------------------------------------------ profiles


def driver_identity(df: pd.DataFrame, results: pd.DataFrame, drivers: pd.Index) -> pd.DataFrame:
    """Per driver: `name` and `driver_code` (latest train-split result row; the code falls back to the
    laps), `career_races` (races with a result row), `laps_used` (clean laps), `races_used` (races with
    lap rows), `first_race_id` / `last_race_id` (of the lap rows)."""
    out = pd.DataFrame(index=drivers)
    last = results.sort_values(["season", "round"]).groupby("driver_id").last()
    name = (last["given_name"].fillna("") + " " + last["family_name"].fillna("")).str.strip()
    out["name"] = name.replace("", pd.NA).reindex(drivers)
    code_laps = df.dropna(subset=["driver_code"]).groupby("driver_id")["driver_code"].last()
    out["driver_code"] = last["driver_code"].reindex(drivers).fillna(code_laps.reindex(drivers))
    out["career_races"] = results.drop_duplicates(["season", "round", "driver_id"]).groupby("driver_id").size()
    out["laps_used"] = df[df["clean"]].groupby("driver_id").size()
    out["races_used"] = df.groupby("driver_id")["race_id"].nunique()
    race_span = df.groupby("driver_id")["race_id"].agg(["min", "max"])
    out["first_race_id"], out["last_race_id"] = race_span["min"], race_span["max"]
    for col in ("career_races", "laps_used", "races_used"):
        out[col] = out[col].reindex(drivers).fillna(0).astype("int64")
    return out


def data_quality_score(laps_used: pd.Series, results: pd.DataFrame, drivers: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per driver: clean laps / laps completed per raw_results, clipped to [0, 1]; NULL without a
    completed lap. Returns (score, null reason)."""
    completed = results.drop_duplicates(["season", "round", "driver_id"]).groupby("driver_id")["laps"].sum()
    completed = completed.reindex(drivers).fillna(0.0)
    score = (laps_used / completed.where(completed > 0)).clip(0.0, 1.0)
    no_laps = (completed <= 0).to_numpy()
    return score, _reasons(drivers, no_laps, lambda d: "data_quality: no completed lap in raw_results")


def driver_profiles(laps: pd.DataFrame, results: pd.DataFrame, params: ProfileParams | None = None) -> pd.DataFrame:
    """One row per driver of the train split (`laps`: train-view rows; `results`: their races' results).

    Scores and their null reasons come from `consistency_score`, `aggression_score`,
    `pressure_response_score`, `tire_management_score`, `data_quality_score`; `null_reason` joins
    the reasons with '; ' in that order (None when every score has its data).
    """
    params = params or ProfileParams()
    df = _prep_laps(laps, params)
    res = results.copy()
    res["laps"] = pd.to_numeric(res["laps"], errors="coerce")
    drivers = pd.Index(sorted(set(df["driver_id"]) | set(res["driver_id"])), name="driver_id")
    out = driver_identity(df, res, drivers)
    duels = lap_duels(df, params)
    scored = {
        "consistency": consistency_score(df, params, drivers),
        "aggression": aggression_score(duels, params, drivers),
        "pressure_response": pressure_response_score(duels, params, drivers),
        "tire_management": tire_management_score(df, res, params, drivers),
        "data_quality": data_quality_score(out["laps_used"], res, drivers),
    }
    for col, (score, _) in scored.items():
        out[col] = score
    reasons = zip(*(reason.to_numpy() for _, reason in scored.values()), strict=True)
    out["null_reason"] = pd.Series(["; ".join(r for r in row if r is not None) or None for row in reasons],
                                   index=drivers, dtype=object)
    dtypes = _PROFILES.dtypes()
    return out.reset_index()[PROFILE_COLUMNS].astype({c: dtypes[c] for c in PROFILE_COLUMNS})
