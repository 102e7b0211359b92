"""Regulation eras, per-era standardisation and circuit versions: pure functions (no Dagster, no storage).

Loaded by `f1_assets.transforms.features` (the `era` column of lap_features), by the ML assets of
`f1_assets.assets.ml.eras` (`era_statistics`, `standardised_telemetry_features`, `circuit_versions`)
and by the tests.

**Eras** (`ERAS`): the periods of the FIA Formula One Technical Regulations that changed what a car is
(engine formula, aerodynamic concept). Sources: the FIA's yearly Formula One Technical Regulations
(fia.com, "Regulations"), as summarised in the Wikipedia articles "Formula One regulations" and "Formula
One engines" (engine formulas by year). Every season from 1950 on is in exactly one era; the last era
is open-ended. Boundaries are where the regulations changed, not where a car first won with the idea
(the rear-engined Cooper won in 1959 under the 2.5 L formula: 1950–1960 stays one era).

**Per-era standardisation**: `z = (x - mean_era) / std_era` with the era's mean and sample standard
deviation (ddof 1) of the train split only (`era_statistics`); NULL with a reason where the era has
n < 2 values, std 0, or no train-split statistics at all. Telemetry exists from 2018 only, so in
practice the eras with statistics are `hybrid` (2018–2021) and `ground_effect` (2022 of the train split).

**Circuit versions**: a circuit's layout changes when its median telemetry lap distance moves by more
than `LAYOUT_CHANGE_PCT` from the current version's. Measured per race (the median of its laps' distances,
races with at least `MIN_LAPS_PER_RACE` laps), in race order; the first race of a new version names it
`<circuit_id>@<season>` (`.<round>` added when a circuit starts two versions in one season). A return to
an earlier layout is a new version: versions are contiguous in time. Jolpica's circuit table carries no
length, so seasons before telemetry (2018) have no version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

FIRST_SEASON = 1950


@dataclass(frozen=True)
class Era:
    name: str
    first_season: int
    last_season: int | None  # None: still in force
    change: str

    def covers(self, season: int) -> bool:
        return self.first_season <= season and (self.last_season is None or season <= self.last_season)


ERAS: tuple[Era, ...] = (
    Era("front_engine", 1950, 1960, "4.5 L unsupercharged / 1.5 L supercharged engines (1950-53), 2.5 L from 1954; "
        "front-engined cars"),
    Era("rear_engine_1500cc", 1961, 1965, "1.5 L naturally aspirated engine formula; rear-engined cars everywhere"),
    Era("three_litre", 1966, 1976, "3.0 L engine formula (1.5 L supercharged equivalence); wings from 1968"),
    Era("ground_effect_venturi", 1977, 1982, "venturi underbodies with skirts (Lotus 78, 1977) until the flat-bottom "
        "rule of 1983"),
    Era("turbo", 1983, 1988, "flat bottoms mandated; 1.5 L turbocharged engines, boost limited from 1987"),
    Era("naturally_aspirated", 1989, 1994, "turbos banned: 3.5 L naturally aspirated engines; driver aids banned "
        "for 1994"),
    Era("three_litre_v10", 1995, 2005, "3.0 L engines (V10 only from 2000); grooved tyres and narrower cars from 1998"),
    Era("v8", 2006, 2013, "2.4 L V8 engines; KERS from 2009 with the 2009 aerodynamic overhaul"),
    Era("hybrid", 2014, 2021, "1.6 L V6 turbo hybrid power units (MGU-K + MGU-H); wider cars from 2017"),
    Era("ground_effect", 2022, 2025, "venturi-tunnel floors (ground effect) return; 18-inch wheels"),
    Era("active_aero", 2026, None, "new power units (MGU-H dropped, ~50 % electric, sustainable fuel); active "
        "aerodynamics replace DRS; smaller, lighter cars"),
)
ERA_NAMES = tuple(e.name for e in ERAS)

# The telemetry_features columns standardised per era, where the table declares them: the driving
# features (throttle, brake, speed, DRS, g-forces, corner speed). Not: keys, sample/gap counts (data
# quality, not driving), lap_distance_m and corner numbers (properties of the circuit, not the driver).
STANDARDISED_CANDIDATES = ("throttle_mean", "throttle_std", "brake_events", "speed_max", "speed_mean",
                           "drs_open_share", "max_lateral_g", "max_braking_g", "max_accel_g", "min_corner_speed_kmh")
STATISTICS_COLUMNS = ["era", "feature", "n", "mean", "std", "train_races", "first_season", "last_season",
                      "null_reason"]

LAYOUT_CHANGE_PCT = 1.0  # ≈ 50 m on a 5 km lap; integrated lap distances of one race scatter far less
MIN_LAPS_PER_RACE = 10  # fewer laps with a distance: the race says nothing about the layout
VERSION_COLUMNS = ["circuit_id", "version_id", "first_season", "first_round", "last_season", "last_round",
                   "median_lap_distance_m", "change_pct", "races", "laps"]


def era_of(season: int) -> str:
    """The era of a championship season; ValueError before 1950."""
    for era in ERAS:
        if era.covers(int(season)):
            return era.name
    raise ValueError(f"season {season} is before the championship ({FIRST_SEASON})")


def era_of_seasons(seasons: pd.Series | Sequence[int]) -> pd.Series:
    """`era_of` for many seasons at once (vectorised); ValueError for a missing or pre-1950 season."""
    s = pd.Series(seasons)
    values = pd.to_numeric(s, errors="coerce")
    if values.isna().any() or (values < FIRST_SEASON).any():
        bad = sorted(set(s[values.isna() | (values < FIRST_SEASON)].astype(str)))
        raise ValueError(f"no era for season(s) {bad[:5]}")
    starts = np.array([e.first_season for e in ERAS])
    idx = np.searchsorted(starts, values.to_numpy(dtype="int64"), side="right") - 1
    return pd.Series(np.array(ERA_NAMES, dtype=object)[idx], index=s.index, dtype=object)


def eras_frame() -> pd.DataFrame:
    """The era table as a frame (last_season NULL for the era in force)."""
    return pd.DataFrame({"era": ERA_NAMES, "first_season": [e.first_season for e in ERAS],
                         "last_season": pd.array([e.last_season for e in ERAS], dtype="Int64"),
                         "change": [e.change for e in ERAS]})


def era_case_sql(column: str) -> str:
    """A SQL CASE expression mapping the integer season `column` (a quoted identifier) to its era. The
    literals come from `ERAS` alone (constants of this module, never input)."""
    whens = " ".join(f"WHEN {column} >= {e.first_season}" + ("" if e.last_season is None
                                                             else f" AND {column} <= {e.last_season}")
                     + f" THEN '{e.name}'" for e in ERAS)
    return f"CASE {whens} END"


def standardised_features(columns: Sequence[str]) -> list[str]:
    """The candidates present in `columns` (the telemetry_features declaration), in candidate order."""
    return [c for c in STANDARDISED_CANDIDATES if c in set(columns)]


# ------------------------------------------------------------------------- per-era statistics


def era_statistics(train: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Per (era, feature) of every era in `ERAS`: n (non-NULL values), mean, sample std, the races and
    seasons that contributed, and `null_reason` where standardised values must be NULL.

    `train` holds the train split's telemetry rows: `season`, `round` and the `features`."""
    frame = train.copy()
    frame["era"] = era_of_seasons(frame["season"]) if len(frame) else pd.Series(dtype=object)
    rows = []
    for era in ERAS:
        part = frame[frame["era"] == era.name]
        for feature in features:
            values = pd.to_numeric(part[feature], errors="coerce").astype("float64")
            have = part[values.notna()]
            x = values.dropna()
            n = len(x)
            mean = float(x.mean()) if n else None
            std = float(x.std(ddof=1)) if n >= 2 else None
            reason = None
            if n == 0:
                reason = ("no train-split telemetry in this era (telemetry exists from 2018)" if part.empty
                          else f"no non-NULL {feature} in the era's train-split rows")
            elif n < 2:
                reason = f"n = {n} < 2 train-split values: no standard deviation"
            elif std == 0 or not np.isfinite(std):
                reason = f"std = 0: every train-split value is {mean}"
            rows.append({
                "era": era.name, "feature": feature, "n": n, "mean": mean, "std": std,
                "train_races": int(have[["season", "round"]].drop_duplicates().shape[0]),
                "first_season": int(have["season"].min()) if n else None,
                "last_season": int(have["season"].max()) if n else None,
                "null_reason": reason,
            })
    out = pd.DataFrame(rows, columns=STATISTICS_COLUMNS)
    for col in ("first_season", "last_season"):
        out[col] = pd.array(out[col], dtype="Int64")
    return out


def standardise(frame: pd.DataFrame, statistics: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """`frame` (with `season` and the `features`) plus `era`, `<feature>_z` = (x - mean_era) / std_era
    and `null_reason`: '; '-joined '<feature>: <why>' for every NULL z of a non-NULL value (the era's
    statistics' null_reason, or that the era has no statistics)."""
    out = frame.copy()
    out["era"] = era_of_seasons(out["season"]) if len(out) else pd.Series(dtype=object)
    reasons = pd.Series([[] for _ in range(len(out))], index=out.index, dtype=object)
    for feature in features:
        stats = statistics[statistics["feature"] == feature].set_index("era")
        mean = out["era"].map(stats["mean"]).astype("float64")
        std = out["era"].map(stats["std"]).astype("float64")
        usable = std.notna() & (std > 0) & mean.notna()
        x = pd.to_numeric(out[feature], errors="coerce").astype("float64")
        out[f"{feature}_z"] = ((x - mean) / std).where(usable)
        why = out["era"].map(stats["null_reason"]).where(out["era"].isin(stats.index),
                                                          "the era has no train-split statistics")
        for i in out.index[~usable & x.notna()]:
            reasons[i] = [*reasons[i], f"{feature}: {why[i]}"]
    out["null_reason"] = reasons.map(lambda r: "; ".join(r) or None)
    return out


# ------------------------------------------------------------------------- circuit versions


def circuit_versions(laps: pd.DataFrame, *, threshold_pct: float = LAYOUT_CHANGE_PCT,
                     min_laps: int = MIN_LAPS_PER_RACE) -> pd.DataFrame:
    """Versions of each circuit from its laps' distances: `laps` has circuit_id, season, round,
    lap_distance_m (NULL/≤ 0 ignored). See the module docstring for the rule."""
    d = laps.assign(lap_distance_m=pd.to_numeric(laps["lap_distance_m"], errors="coerce"))
    d = d[d["lap_distance_m"] > 0]
    races = (d.groupby(["circuit_id", "season", "round"])["lap_distance_m"].agg(["median", "size"])
             .reset_index().sort_values(["circuit_id", "season", "round"]))
    races = races[races["size"] >= min_laps]
    rows: list[dict] = []
    for circuit, group in races.groupby("circuit_id", sort=True):
        current: dict | None = None
        medians: list[float] = []
        for race in group.itertuples(index=False):
            reference = float(np.median(medians)) if medians else None
            change = None if reference is None else (race.median - reference) / reference * 100
            if current is None or abs(change) > threshold_pct:
                if current is not None:
                    current["median_lap_distance_m"] = reference
                    rows.append(current)
                vid = f"{circuit}@{race.season}"
                if any(r["version_id"] == vid for r in rows):
                    vid = f"{vid}.{race.round}"
                current = {"circuit_id": circuit, "version_id": vid, "first_season": int(race.season),
                           "first_round": int(race.round), "races": 0, "laps": 0,
                           "change_pct": None if change is None else float(change)}
                medians = []
            medians.append(float(race.median))
            current.update(last_season=int(race.season), last_round=int(race.round),
                           races=current["races"] + 1, laps=current["laps"] + int(race.size))
        if current is not None:
            current["median_lap_distance_m"] = float(np.median(medians))
            rows.append(current)
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)

