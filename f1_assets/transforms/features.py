"""Feature layer transforms: raw race tables → `lap_features`, raw telemetry → `telemetry_features`.

Pure, vectorised pandas functions (DataFrames in, DataFrame out; no Dagster, no storage). Called by
the feature assets (`f1_assets.assets.features`), by tests and by `bench/bench_features.py`.
Each result is conformed to its table's declaration (`f1_assets.tables`: `lap_features`,
`telemetry_features`), which alone states the columns and their dtypes; a frame goes straight to the
warehouse writer.

Feature definitions (one row per driver-lap of `raw_laps`; no row is ever dropped):

- `race_id`: the race partition key `YYYY-RR`.
- `position`: the running position at the end of the lap as Jolpica publishes it (raw_laps).
- `scheduled_laps` (not a column): the race distance in laps = the winner's `laps` in the results.
- `pit_stop`: True when the pit-stop log has a stop for this driver on this lap (the in-lap).
- `stint`: FastF1's stint where FastF1 has the lap; else derived from the pit-stop log:
  1 + number of this driver's stops on laps strictly before this lap.
- `tire_age`: laps since the stint began, counting the stint's first lap as 1:
  `lap_number - first lap of the (driver, stint) + 1`. With the pit log, the lap after an in-lap
  (the out-lap) has age 1, so the age resets exactly on the lap after each logged stop.
- `tire_compound`: FastF1's compound name as reported (era-specific) where FastF1 has the lap, else
  'UNKNOWN'; `tire_compound_std`: FastF1's standardized compound (SOFT/MEDIUM/HARD/INTERMEDIATE/WET),
  else 'UNKNOWN'.
- `fuel_remaining` (kg) — an ESTIMATE, no team publishes fuel loads: 110 kg at the start burnt
  linearly to 0 at the flag over the scheduled laps; after completing lap n:
  `110 * (1 - n / scheduled_laps)`, clipped to [0, 110].
- `laps_remaining`: `scheduled_laps - lap_number` (0 on the winner's last lap; lapped cars end > 0).
- `gap_to_leader_ms`: the driver's cumulative race time after lap n (cumsum of lap times) minus the
  cumulative time of the car in position 1 on lap n (the gap at equal laps; the leader's gap is 0).
- `delta_to_next_ms`: cumulative time minus that of the car one position ahead on the same lap
  (0 for the leader, who has no car ahead). Cumulative times are NULL after a lap without a time.
- `track_status`: FastF1's track status codes seen during the lap ('1' clear, '2' yellow, '4' SC,
  '5' red, '6' VSC, '7' VSC ending), NULL where FastF1 does not have the lap.
- `safety_car`: True when the status contains 4, 5, 6 or 7; NULL where the status is unknown.
- `sector1_ms`..`sector3_ms`: FastF1's sector times (fastf1_laps), NULL where FastF1 has none.
- `air_temp_c`, `track_temp_c`, `humidity_pct`, `rainfall`: the lap's weather from fastf1_laps (FastF1's
  WeatherData stream; `f1_assets.transforms.weather`), NULL without it. Categorical bins (the design's
  "categorical binning"): `weather` per lap 'Wet' (rain during the lap) / 'Dry' / 'UNKNOWN' (no weather
  for the lap: before 2018, no FastF1 data, no weather stream); `race_weather` per race 'Dry' (no lap
  with rain) / 'Wet' (rain on more than half of the driver-laps with known weather) / 'Mixed' /
  'UNKNOWN' (no lap with known weather).
- `is_outlier` / `outlier_reason` (comma-joined, in this order): 'no_time' (no lap time),
  'too_fast' (< 30 s), 'too_slow' (> 300 s), 'statistical' (> mean + 3σ of the driver's clean
  laps; clean = timed, 30–300 s, not first/in/out lap, not under SC/VSC/red), 'first_lap',
  'in_lap' (pit_stop), 'out_lap' (lap after a logged stop), 'safety_car' (4), 'red_flag' (5),
  'vsc' (6 or 7), 'neutralised' (no track status known for the lap, and the field's median time on
  that lap (in/out laps aside) is more than 1.05 x the race's typical field median: a safety car or VSC seen in the
  timing itself, for races without FastF1). Outliers are flagged, never dropped; neutralised laps
  are not clean laps.
- `era`: the season's regulation era (`f1_assets.transforms.eras.ERAS`, FIA technical regulation
  periods with their source), never NULL.

Telemetry per (driver, lap) — see `build_telemetry_features`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from f1_assets.tables import table
from f1_assets.transforms.eras import era_of
from f1_assets.transforms.kinematics import lap_kinematics
from f1_assets.transforms.weather import race_weather_bin, weather_bin

START_FUEL_KG = 110.0
MIN_LAP_MS = 30_000
MAX_LAP_MS = 300_000
OUTLIER_SIGMAS = 3.0
NEUTRALISED_FACTOR = 1.05  # field median of a lap vs the race's median field median
DRS_OPEN_CODES = (10, 12, 14)
UNKNOWN_COMPOUND = "UNKNOWN"

# channels whose NaN marks a sample inside a telemetry gap (FastF1 leaves long gaps NULL)
TELEMETRY_CHANNELS = ["Speed", "RPM", "nGear", "Throttle", "Brake", "DRS", "X", "Y", "Z"]

_STATUS_REASONS = (("4", "safety_car"), ("5", "red_flag"), ("67", "vsc"))
# fastf1_laps columns carried into lap_features as they are (fastf1_laps name → lap_features name)
FASTF1_CARRIED = {"sector1_time_ms": "sector1_ms", "sector2_time_ms": "sector2_ms", "sector3_time_ms": "sector3_ms",
                  "air_temp_c": "air_temp_c", "track_temp_c": "track_temp_c", "humidity_pct": "humidity_pct",
                  "rainfall": "rainfall"}


def race_id(season: int, rnd: int) -> str:
    """The race partition key `YYYY-RR` (same format as `f1_assets.partitions.race_key`)."""
    return f"{int(season):04d}-{int(rnd):02d}"


def scheduled_laps(results: pd.DataFrame) -> int | None:
    """The race distance in laps: the winner's completed laps (position 1, else classification #1)."""
    if results is None or results.empty:
        return None
    winner = results[results["position"] == 1]
    if winner.empty:
        winner = results.sort_values("position_order").head(1)
    laps = int(winner["laps"].iloc[0])
    return laps or None


def _race_value(race: Mapping[str, Any] | pd.Series | pd.DataFrame, name: str) -> Any:
    if isinstance(race, pd.DataFrame):
        if len(race) != 1:
            raise ValueError(f"expected one raw_races row, got {len(race)}")
        race = race.iloc[0]
    value = race.get(name) if hasattr(race, "get") else race[name]
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


# ------------------------------------------------------------------------- lap_features, step by step


def join_lap_inputs(
    race: Mapping[str, Any] | pd.Series | pd.DataFrame, results: pd.DataFrame, laps: pd.DataFrame
) -> pd.DataFrame:
    """The raw_laps rows in (driver_id, lap_number) order with the race identity and the driver's car.

    Columns: `season`, `round`, `race_id` (`YYYY-RR`), `race_date` (a date or None), `circuit_id` from
    the raw_races row; `driver_id`, `lap_number`, `position`, `lap_time_ms` (ms) from raw_laps;
    `driver_code`, `driver_number` from the driver's raw_results row (NULL without one). One row per
    raw_laps row, index 0..n-1.
    """
    season = int(_race_value(race, "season"))
    rnd = int(_race_value(race, "round"))
    race_date = _race_value(race, "race_date")
    df = laps[["driver_id", "lap_number", "position", "lap_time_ms"]].copy()
    df["lap_number"] = df["lap_number"].astype("int64")
    df = df.sort_values(["driver_id", "lap_number"], kind="stable").reset_index(drop=True)
    ids = results[["driver_id", "driver_code", "driver_number"]].drop_duplicates("driver_id")
    df = df.merge(ids, on="driver_id", how="left")
    df.insert(0, "season", np.int64(season))
    df.insert(1, "round", np.int64(rnd))
    df.insert(2, "race_id", race_id(season, rnd))
    df.insert(3, "race_date", None if race_date is None else pd.Timestamp(race_date).date())
    df.insert(4, "circuit_id", _race_value(race, "circuit_id"))
    return df


def pit_stop_laps(keys: pd.DataFrame, pit_stops: pd.DataFrame | None) -> pd.DataFrame:
    """Per lap row of `keys` (`driver_id`, `lap_number`): where it stands relative to the pit-stop log.

    - `pit_stop`: the log has a stop for this driver on this lap (the in-lap).
    - `out_lap`: the log has a stop for this driver on the lap before (lap_number - 1).
    - `stops_before`: the driver's logged stops on laps strictly before this lap (a count; a stop on
      lap L counts from lap L + 1 on, also when lap L itself has no raw_laps row).
    Duplicate log rows (same driver and lap) count once.
    """
    stops = pit_stops[["driver_id", "lap"]].drop_duplicates() if pit_stops is not None else None
    if stops is None or not len(stops):
        return pd.DataFrame({"pit_stop": np.zeros(len(keys), dtype=bool), "out_lap": np.zeros(len(keys), dtype=bool),
                             "stops_before": pd.Series(0, index=keys.index, dtype="int64")}, index=keys.index)
    stops = stops.astype({"lap": "int64"})
    in_keys = pd.MultiIndex.from_frame(stops.rename(columns={"lap": "lap_number"}))
    out_keys = pd.MultiIndex.from_arrays([stops["driver_id"], stops["lap"] + 1])
    lap_keys = pd.MultiIndex.from_arrays([keys["driver_id"], keys["lap_number"]])
    per_lap = stops.groupby(["driver_id", "lap"]).size().rename("k").reset_index()
    per_lap = per_lap.sort_values(["driver_id", "lap"])
    per_lap["before_next"] = per_lap.groupby("driver_id")["k"].cumsum()
    per_lap["lap_number"] = per_lap["lap"] + 1
    stops_before = pd.merge_asof(
        keys[["lap_number", "driver_id"]].reset_index().sort_values("lap_number"),
        per_lap[["lap_number", "driver_id", "before_next"]].sort_values("lap_number"),
        on="lap_number", by="driver_id", direction="backward",
    ).set_index("index")["before_next"].reindex(keys.index).fillna(0).astype("int64")
    return pd.DataFrame({"pit_stop": lap_keys.isin(in_keys), "out_lap": lap_keys.isin(out_keys),
                         "stops_before": stops_before}, index=keys.index)


def fastf1_lap_columns(keys: pd.DataFrame, fastf1_laps: pd.DataFrame | None, results: pd.DataFrame) -> pd.DataFrame:
    """FastF1's `stint`, `compound`, `compound_std`, `track_status` for each lap row of `keys`.

    FastF1 rows are keyed by car number; they are joined to Jolpica's `driver_id` through the
    `driver_number` of raw_results (a car number raced by two drivers keeps the first). Columns
    `ff_stint`, `ff_compound`, `ff_compound_std`, `ff_track_status`: NULL where FastF1 has no such lap,
    all NULL without FastF1 data. Index: that of `keys`.
    """
    carried = {c: f"ff_{name}" for c, name in FASTF1_CARRIED.items()}  # also `ff_sector1_ms`.., `ff_rainfall`
    cols = ["ff_stint", "ff_compound", "ff_compound_std", "ff_track_status", *carried.values()]
    if fastf1_laps is None or fastf1_laps.empty:
        return pd.DataFrame({c: None for c in cols}, index=keys.index)
    numbers = results[["driver_id", "driver_number"]].dropna().drop_duplicates("driver_number")
    numbers = numbers.astype({"driver_number": "int64"})
    # reindex: rows stored before the sector/weather columns existed lack them (NULL)
    ff = fastf1_laps.reindex(columns=["driver_number", "lap_number", "stint", "compound", "compound_std",
                                      "track_status", *carried]).rename(columns=carried)
    ff = ff.dropna(subset=["driver_number", "lap_number"]).astype({"driver_number": "int64", "lap_number": "int64"})
    ff = ff.merge(numbers, on="driver_number", how="inner").drop_duplicates(["driver_id", "lap_number"])
    ff = ff.drop(columns="driver_number").rename(columns={
        "stint": "ff_stint", "compound": "ff_compound", "compound_std": "ff_compound_std",
        "track_status": "ff_track_status"})
    joined = keys[["driver_id", "lap_number"]].merge(ff, on=["driver_id", "lap_number"], how="left")
    return joined[cols].set_axis(keys.index)


def sectors_and_weather(fastf1: pd.DataFrame) -> pd.DataFrame:
    """`sector1_ms`..`sector3_ms`, the lap's weather and its bins `weather` and `race_weather` (one
    value for every row of the race) from `fastf1_lap_columns(...)`; see the module docstring."""
    out = pd.DataFrame({name: fastf1[f"ff_{name}"] for name in FASTF1_CARRIED.values()}, index=fastf1.index)
    out["rainfall"] = out["rainfall"].astype("boolean")
    out["weather"] = weather_bin(out["rainfall"])
    out["race_weather"] = race_weather_bin(out["rainfall"])
    return out


def stints_and_tyres(keys: pd.DataFrame, fastf1: pd.DataFrame, stops_before: pd.Series) -> pd.DataFrame:
    """`stint`, `tire_age`, `tire_compound`, `tire_compound_std` per lap row of `keys`.

    - `stint`: FastF1's stint where FastF1 has the lap, else `1 + stops_before` (pit-stop log).
    - `tire_age` (laps): `lap_number - first lap_number of the (driver_id, stint) + 1`; the stint's
      first lap has age 1, so with the pit log the out-lap has age 1.
    - `tire_compound` / `tire_compound_std`: FastF1's compound as reported / standardized, else
      'UNKNOWN'.
    `fastf1` is `fastf1_lap_columns(keys, ...)`.
    """
    stint_ff = pd.to_numeric(fastf1["ff_stint"], errors="coerce")
    stint = stint_ff.where(stint_ff.notna(), stops_before + 1).astype("Int64")
    stint_start = keys["lap_number"].groupby([keys["driver_id"], stint]).transform("min")
    compound, compound_std = fastf1["ff_compound"], fastf1["ff_compound_std"]
    return pd.DataFrame({
        "tire_compound": compound.where(compound.notna(), UNKNOWN_COMPOUND).astype(object),
        "tire_compound_std": compound_std.where(compound_std.notna(), UNKNOWN_COMPOUND).astype(object),
        "stint": stint,
        "tire_age": (keys["lap_number"] - stint_start + 1).astype("Int64"),
    })


def fuel_and_laps_remaining(lap_number: pd.Series, scheduled: int | None) -> pd.DataFrame:
    """`fuel_remaining` (kg, an estimate) and `laps_remaining` (laps) after completing each lap.

    `fuel_remaining = 110 * (1 - lap_number / scheduled)` clipped to [0, 110] (110 kg at the start
    burnt linearly to 0 at the flag); `laps_remaining = scheduled - lap_number` (0 on the winner's
    last lap). Both NULL when the scheduled distance is unknown (`scheduled` None).
    """
    if not scheduled:
        return pd.DataFrame({"fuel_remaining": np.nan,
                             "laps_remaining": pd.array([pd.NA] * len(lap_number), dtype="Int64")},
                            index=lap_number.index)
    return pd.DataFrame({
        "fuel_remaining": (START_FUEL_KG * (1.0 - lap_number / scheduled)).clip(0.0, START_FUEL_KG),
        "laps_remaining": (scheduled - lap_number).astype("Int64"),
    })


def cumulative_time_ms(driver_id: pd.Series, lap_ms: pd.Series) -> pd.Series:
    """The driver's race time (ms) after each lap: cumsum of lap times in row order (rows sorted by
    driver and lap); NaN from the first lap without a time on (the sum is no longer known)."""
    cum = lap_ms.groupby(driver_id).cumsum()
    cum[lap_ms.isna().groupby(driver_id).cummax()] = np.nan
    return cum


def gaps_ms(lap_number: pd.Series, position: pd.Series, cum_ms: pd.Series) -> pd.DataFrame:
    """`gap_to_leader_ms` and `delta_to_next_ms` (ms, rounded) at equal laps from cumulative times.

    gap = cum(driver, lap) - cum(car in position 1 on that lap); delta = cum(driver, lap) - cum(car in
    position - 1 on that lap), 0 for the leader. NULL when a time is unknown (no position, no car in
    that position, or a cumulative time that is NaN).
    """
    pos = pd.to_numeric(position, errors="coerce")
    by_lap_pos = (pd.DataFrame({"lap_number": lap_number, "_pos": pos, "_cum": cum_ms})
                  .dropna(subset=["_pos"]).drop_duplicates(["lap_number", "_pos"])
                  .set_index(["lap_number", "_pos"])["_cum"])
    leader = pd.Series(1.0, index=lap_number.index)
    leader_cum = by_lap_pos.reindex(pd.MultiIndex.from_arrays([lap_number, leader])).to_numpy()
    ahead_cum = by_lap_pos.reindex(pd.MultiIndex.from_arrays([lap_number, pos - 1])).to_numpy()
    cum = cum_ms.to_numpy()
    delta = np.where(pos.to_numpy() == 1, 0.0, cum - ahead_cum)
    return pd.DataFrame({
        "gap_to_leader_ms": pd.array(np.round(cum - leader_cum), dtype="Float64").astype("Int64"),
        "delta_to_next_ms": pd.array(np.round(delta), dtype="Float64").astype("Int64"),
    }, index=lap_number.index)


def track_status_flags(status: pd.Series) -> pd.DataFrame:
    """FastF1's track status of each lap and what it says.

    `track_status`: the status codes seen during the lap as text ('1' clear, '2' yellow, '4' SC,
    '5' red, '6' VSC, '7' VSC ending), None where unknown. Flags (bool, False where unknown):
    `sc` (4), `red` (5), `vsc` (6 or 7). `safety_car`: any of the three, NULL where unknown.
    """
    text = status.astype("string")
    track_status = text.astype(object).where(text.notna(), None)
    unknown = track_status.isna().to_numpy()
    # the codes take a handful of values: test each distinct string once, not each lap
    codes, uniques = pd.factorize(track_status.fillna(""))
    uniques = pd.Series(uniques, dtype=object)
    flags = {reason: uniques.str.contains(f"[{chars}]", regex=True).to_numpy(dtype=bool)[codes]
             for chars, reason in _STATUS_REASONS}
    neutralised = flags["safety_car"] | flags["red_flag"] | flags["vsc"]
    safety_car = pd.array(neutralised, dtype="boolean")
    safety_car[unknown] = pd.NA
    return pd.DataFrame({"track_status": track_status, "safety_car": safety_car, "sc": flags["safety_car"],
                         "red": flags["red_flag"], "vsc": flags["vsc"]}, index=status.index)


def neutralised_laps(lap_number: pd.Series, lap_ms: pd.Series, status_unknown: np.ndarray,
                     pit_lane: np.ndarray) -> np.ndarray:
    """Laps the timing shows neutralised where the track status is unknown (races without FastF1).

    Field median of lap L = median lap time (ms) on L of the laps not in the pit lane (in/out laps
    aside); typical = median of the field medians of laps >= 2. Neutralised: status unknown, L > 1,
    and field median(L) > 1.05 x typical (a safety car or VSC slows the whole field).
    """
    racing_ms = lap_ms.where(~pit_lane)
    field_median = racing_ms.groupby(lap_number).transform("median")
    typical = racing_ms.groupby(lap_number).median().loc[lambda m: m.index > 1].median()
    first_lap = (lap_number == 1).to_numpy()
    return status_unknown & ~first_lap & (field_median > NEUTRALISED_FACTOR * typical).to_numpy()


def statistical_outliers(driver_id: pd.Series, lap_ms: pd.Series, clean: np.ndarray) -> np.ndarray:
    """Timed laps slower than mean + 3σ (sample σ, ms) of the driver's clean laps; laps over 300 s
    are 'too_slow' instead."""
    clean_ms = lap_ms.where(clean)
    grp = clean_ms.groupby(driver_id)
    threshold = grp.transform("mean") + OUTLIER_SIGMAS * grp.transform("std")
    return (lap_ms.notna() & (lap_ms > threshold) & (lap_ms <= MAX_LAP_MS)).to_numpy()


def joined_reasons(reasons: list[tuple[str, np.ndarray]]) -> pd.Series:
    """Per row, the names whose mask is true, comma-joined in list order; None where no mask is true."""
    code = np.zeros(len(reasons[0][1]), dtype=np.int64)
    for bit, (_, mask) in enumerate(reasons):
        code |= np.asarray(mask, dtype=bool).astype(np.int64) << bit
    # few distinct combinations: build each string once
    combos, inverse = np.unique(code, return_inverse=True)
    text = np.array([",".join(name for bit, (name, _) in enumerate(reasons) if c >> bit & 1) or None
                     for c in combos], dtype=object)
    return pd.Series(text[inverse.reshape(-1)], dtype=object)


def outlier_flags(frame: pd.DataFrame, lap_ms: pd.Series) -> pd.DataFrame:
    """`is_outlier` and `outlier_reason` per lap (see the module docstring for each reason).

    `frame` has `driver_id`, `lap_number`, `pit_stop`, `out_lap` and `track_status_flags` columns;
    `lap_ms` is the lap time in ms (NaN without one). Reasons in order: no_time, too_fast (< 30 s),
    too_slow (> 300 s), statistical, first_lap, in_lap, out_lap, safety_car, red_flag, vsc, neutralised.
    """
    timed = lap_ms.notna().to_numpy()
    too_fast = timed & (lap_ms < MIN_LAP_MS).to_numpy()
    too_slow = timed & (lap_ms > MAX_LAP_MS).to_numpy()
    first_lap = (frame["lap_number"] == 1).to_numpy()
    in_lap, out_lap = frame["pit_stop"].to_numpy(dtype=bool), frame["out_lap"].to_numpy(dtype=bool)
    sc, red, vsc = (frame[c].to_numpy(dtype=bool) for c in ("sc", "red", "vsc"))
    neutralised = neutralised_laps(frame["lap_number"], lap_ms, frame["track_status"].isna().to_numpy(),
                                   in_lap | out_lap)
    clean = timed & ~too_fast & ~too_slow & ~first_lap & ~in_lap & ~out_lap & ~(sc | red | vsc) & ~neutralised
    reason = joined_reasons([
        ("no_time", ~timed), ("too_fast", too_fast), ("too_slow", too_slow),
        ("statistical", statistical_outliers(frame["driver_id"], lap_ms, clean)),
        ("first_lap", first_lap), ("in_lap", in_lap), ("out_lap", out_lap),
        ("safety_car", sc), ("red_flag", red), ("vsc", vsc), ("neutralised", neutralised),
    ]).set_axis(frame.index)
    return pd.DataFrame({"is_outlier": reason.notna().to_numpy(), "outlier_reason": reason})


def build_lap_features(
    race: Mapping[str, Any] | pd.Series | pd.DataFrame,
    results: pd.DataFrame,
    laps: pd.DataFrame,
    pit_stops: pd.DataFrame,
    fastf1_laps: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One lap_features row per raw_laps row (see the module docstring for each formula).

    `race` is the race's raw_races row (mapping, Series or one-row frame); `results`, `laps`,
    `pit_stops` are its raw_results/raw_laps/raw_pit_stops rows; `fastf1_laps` its fastf1_laps rows
    or None/empty when FastF1 has nothing for the race (then compound is 'UNKNOWN', track status and
    safety_car are NULL, stint comes from the pit-stop log).
    """
    df = join_lap_inputs(race, results, laps)
    keys = df[["driver_id", "lap_number"]]
    pits = pit_stop_laps(keys, pit_stops)
    fastf1 = fastf1_lap_columns(keys, fastf1_laps, results)
    lap_ms = pd.to_numeric(df["lap_time_ms"], errors="coerce").astype("float64")
    df = pd.concat([
        df,
        pits,
        stints_and_tyres(keys, fastf1, pits["stops_before"]),
        fuel_and_laps_remaining(df["lap_number"], scheduled_laps(results)),
        gaps_ms(df["lap_number"], df["position"], cumulative_time_ms(df["driver_id"], lap_ms)),
        track_status_flags(fastf1["ff_track_status"]),
        sectors_and_weather(fastf1),
    ], axis=1)
    era = era_of(int(_race_value(race, "season")))  # the season's regulation era (f1_assets/transforms/eras.py)
    return table("lap_features").conform(pd.concat([df, outlier_flags(df, lap_ms)], axis=1).assign(era=era))


# ------------------------------------------------------------------------- telemetry_features


@dataclass(frozen=True)
class LapSamples:
    """Telemetry samples sorted by (driver, lap, time) and cut into one group per (driver, lap).

    `order` takes the input rows (those with a lap number) into that order; `gid` is each sorted
    sample's group (0..groups-1), `starts` each group's first sample, `new_group` marks those starts.
    """

    frame: pd.DataFrame
    order: slice | np.ndarray
    driver_number: np.ndarray
    lap_number: np.ndarray
    new_group: np.ndarray
    gid: np.ndarray
    starts: np.ndarray
    _channels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> int:
        return len(self.starts)

    def channel(self, name: str) -> np.ndarray:
        """One channel as float64 in group order, NaN where missing (converted once per channel)."""
        if name not in self._channels:
            self._channels[name] = self.frame[name].to_numpy(dtype="float64", na_value=np.nan)[self.order]
        return self._channels[name]

    def per_lap_sum(self, weights: np.ndarray) -> np.ndarray:
        """Σ weights over each (driver, lap) group."""
        return np.bincount(self.gid, weights=weights, minlength=self.groups)


def lap_samples(telemetry: pd.DataFrame) -> LapSamples:
    """The samples with a lap number, grouped by (DriverNumber, LapNumber) in SessionTime order.

    Skips the sort when the rows already are in (driver, lap, time) order, as the Parquet usually is
    (~0.2 s per 1 M samples saved). SessionTime may be a timedelta or a number.
    """
    if not telemetry["LapNumber"].notna().all():
        telemetry = telemetry[telemetry["LapNumber"].notna().to_numpy()]
    drv = telemetry["DriverNumber"].to_numpy(dtype="int64")
    lapn = telemetry["LapNumber"].to_numpy(dtype="int64", na_value=0)
    t = telemetry["SessionTime"]
    t = t.to_numpy(dtype="timedelta64[ns]").astype("int64") if t.dtype.kind == "m" else t.to_numpy(dtype="float64")
    d_drv, d_lap, d_t = np.diff(drv), np.diff(lapn), np.diff(t)
    in_order = bool(np.all((d_drv > 0) | ((d_drv == 0) & ((d_lap > 0) | ((d_lap == 0) & (d_t >= 0))))))
    order = slice(None) if in_order else np.lexsort((t, lapn, drv))
    drv, lapn = drv[order], lapn[order]
    new_group = np.empty(len(drv), dtype=bool)
    new_group[:1] = True
    new_group[1:] = (drv[1:] != drv[:-1]) | (lapn[1:] != lapn[:-1])
    return LapSamples(frame=telemetry, order=order, driver_number=drv, lap_number=lapn, new_group=new_group,
                      gid=np.cumsum(new_group) - 1, starts=np.flatnonzero(new_group))


def nan_mean_std(samples: LapSamples, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per lap: mean and population σ (ddof=0) of `x`, NaN samples skipped; NaN for a lap without a value."""
    ok = ~np.isnan(x)
    n = samples.per_lap_sum(ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = samples.per_lap_sum(np.where(ok, x, 0.0)) / n
        dev = np.where(ok, x - mean[samples.gid], 0.0)
        var = samples.per_lap_sum(dev * dev) / n
    return mean, np.sqrt(var)


def brake_events(samples: LapSamples, brake: np.ndarray) -> np.ndarray:
    """Per lap: off→on transitions of Brake (on = ≥ 0.5): a sample that is on whose previous sample in
    the same lap is known off. The lap's first sample and a NaN → on step never count."""
    prev_off = np.zeros(len(brake), dtype=bool)
    prev_off[1:] = brake[:-1] < 0.5
    events = (brake >= 0.5) & prev_off & ~samples.new_group
    return samples.per_lap_sum(events).astype("int64")


def drs_open_share(samples: LapSamples, drs: np.ndarray) -> np.ndarray:
    """Per lap: samples with an open DRS code (10, 12, 14) / samples with a known DRS code (0–1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return samples.per_lap_sum(np.isin(drs, DRS_OPEN_CODES)) / samples.per_lap_sum(~np.isnan(drs))


def gap_samples(samples: LapSamples) -> np.ndarray:
    """Per lap: samples with NaN in any of `TELEMETRY_CHANNELS` present in the frame (a count)."""
    gap = np.zeros(len(samples.gid), dtype=bool)
    for name in TELEMETRY_CHANNELS:
        if name in samples.frame.columns:
            gap |= np.isnan(samples.channel(name))
    return samples.per_lap_sum(gap).astype("int64")


def interpolated_samples(samples: LapSamples) -> np.ndarray:
    """Per lap: samples whose `Interpolated` is true (0 without the column)."""
    if "Interpolated" not in samples.frame.columns:
        return np.zeros(samples.groups, dtype="int64")
    interp = samples.frame["Interpolated"].to_numpy(dtype=bool, na_value=False)[samples.order]
    return samples.per_lap_sum(interp).astype("int64")


def build_telemetry_features(telemetry: pd.DataFrame, *, season: int, rnd: int) -> pd.DataFrame:
    """Raw per-sample telemetry of race (`season`, `rnd`) → one `telemetry_features` row per
    (driver_number, lap_number).

    Input: FastF1 merged car data + position in the raw telemetry Parquet shape (`DriverNumber`,
    `Driver`, `LapNumber`, `SessionTime`, `Speed`, `RPM`, `nGear`, `Throttle`, `Brake`, `DRS`,
    `X`, `Y`, `Z`, `Interpolated`). Samples without a lap number (before the start, after the flag)
    are not aggregated. Per lap, over the samples in SessionTime order:

    - `throttle_mean`, `throttle_std` (%, population σ, ddof=0), `speed_max`, `speed_mean` (km/h):
      NaN samples are skipped (`nan_mean_std`).
    - `brake_events`: off→on transitions of `Brake` (`brake_events`).
    - `drs_open_share`: share of known DRS codes that are open (`drs_open_share`).
    - `sample_count`: samples in the lap; `gap_samples`: samples with NaN in any channel
      (`TELEMETRY_CHANNELS`); `interpolated_samples`: samples with `Interpolated` true.
    - track position, g-forces and corners (`lap_distance_m`, `max_lateral_g`, `max_braking_g`,
      `max_accel_g`, `g_over_limit_samples`, `corners_passed`, `slowest_corner`, `min_corner_speed_kmh`):
      `f1_assets.transforms.kinematics.lap_kinematics`.
    """
    samples = lap_samples(telemetry)
    features = table("telemetry_features")
    if samples.groups == 0:
        return features.empty_frame()
    throttle_mean, throttle_std = nan_mean_std(samples, samples.channel("Throttle"))
    speed = samples.channel("Speed")
    speed_mean, _ = nan_mean_std(samples, speed)
    frame = samples.frame
    codes = frame["Driver"].to_numpy(dtype=object)[samples.order][samples.starts] if "Driver" in frame else None
    out = pd.DataFrame({
        "season": np.int64(season),
        "round": np.int64(rnd),
        "race_id": race_id(season, rnd),
        "driver_number": samples.driver_number[samples.starts],
        "driver_code": codes,
        "lap_number": samples.lap_number[samples.starts],
        "throttle_mean": throttle_mean,
        "throttle_std": throttle_std,
        "speed_max": np.fmax.reduceat(speed, samples.starts),  # fmax skips NaN; all-NaN lap → NaN
        "speed_mean": speed_mean,
        "brake_events": brake_events(samples, samples.channel("Brake")),
        "drs_open_share": drs_open_share(samples, samples.channel("DRS")),
        "sample_count": np.diff(np.append(samples.starts, len(samples.gid))).astype("int64"),
        "gap_samples": gap_samples(samples),
        "interpolated_samples": interpolated_samples(samples),
        **lap_kinematics(samples),
    })
    return features.conform(out)
