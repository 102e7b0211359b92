"""Feature layer transforms: raw race tables → `lap_features`, raw telemetry → `telemetry_features`.

Pure, vectorised pandas functions (DataFrames in, DataFrame out; no Dagster, no storage). Called by
the feature assets (`f1_assets.assets.features`), by tests and by `bench/bench_features.py`.
Column sets equal the DDL of `lap_features` / `telemetry_features` in `sql/schema.sql`
(`LAP_FEATURE_COLUMNS`, `TELEMETRY_FEATURE_COLUMNS`), so a frame goes straight to the warehouse writer.

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
- `is_outlier` / `outlier_reason` (comma-joined, in this order): 'no_time' (no lap time),
  'too_fast' (< 30 s), 'too_slow' (> 300 s), 'statistical' (> mean + 3σ of the driver's clean
  laps; clean = timed, 30–300 s, not first/in/out lap, not under SC/VSC/red), 'first_lap',
  'in_lap' (pit_stop), 'out_lap' (lap after a logged stop), 'safety_car' (4), 'red_flag' (5),
  'vsc' (6 or 7), 'neutralised' (no track status known for the lap, and the field's median time on
  that lap (in/out laps aside) is more than 1.05 x the race's typical field median: a safety car or VSC seen in the
  timing itself, for races without FastF1). Outliers are flagged, never dropped; neutralised laps
  are not clean laps.

Telemetry per (driver, lap) — see `build_telemetry_features`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

START_FUEL_KG = 110.0
MIN_LAP_MS = 30_000
MAX_LAP_MS = 300_000
OUTLIER_SIGMAS = 3.0
NEUTRALISED_FACTOR = 1.05  # field median of a lap vs the race's median field median
DRS_OPEN_CODES = (10, 12, 14)
UNKNOWN_COMPOUND = "UNKNOWN"

LAP_FEATURE_COLUMNS = [
    "season",
    "round",
    "race_id",
    "race_date",
    "circuit_id",
    "driver_id",
    "driver_code",
    "driver_number",
    "lap_number",
    "lap_time_ms",
    "position",
    "tire_compound",
    "tire_compound_std",
    "stint",
    "tire_age",
    "pit_stop",
    "fuel_remaining",
    "gap_to_leader_ms",
    "delta_to_next_ms",
    "laps_remaining",
    "track_status",
    "safety_car",
    "is_outlier",
    "outlier_reason",
]

TELEMETRY_FEATURE_COLUMNS = [
    "season",
    "round",
    "race_id",
    "driver_number",
    "driver_code",
    "lap_number",
    "throttle_mean",
    "throttle_std",
    "speed_max",
    "speed_mean",
    "brake_events",
    "drs_open_share",
    "sample_count",
    "gap_samples",
    "interpolated_samples",
]

# channels whose NaN marks a sample inside a telemetry gap (FastF1 leaves long gaps NULL)
TELEMETRY_CHANNELS = ["Speed", "RPM", "nGear", "Throttle", "Brake", "DRS", "X", "Y", "Z"]

_STATUS_REASONS = (("4", "safety_car"), ("5", "red_flag"), ("67", "vsc"))


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


def _fastf1_by_driver_id(fastf1_laps: pd.DataFrame | None, results: pd.DataFrame) -> pd.DataFrame | None:
    """FastF1 laps keyed by Jolpica driver_id (joined on the car number raced with)."""
    if fastf1_laps is None or fastf1_laps.empty:
        return None
    numbers = results[["driver_id", "driver_number"]].dropna().drop_duplicates("driver_number")
    numbers = numbers.astype({"driver_number": "int64"})
    ff = fastf1_laps[["driver_number", "lap_number", "stint", "compound", "compound_std", "track_status"]].copy()
    ff = ff.dropna(subset=["driver_number", "lap_number"])
    ff = ff.astype({"driver_number": "int64", "lap_number": "int64"})
    ff = ff.merge(numbers, on="driver_number", how="inner").drop_duplicates(["driver_id", "lap_number"])
    ff = ff.drop(columns="driver_number").rename(
        columns={"stint": "ff_stint", "compound": "ff_compound", "compound_std": "ff_compound_std",
                 "track_status": "ff_track_status"}
    )
    return ff


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
    season = int(_race_value(race, "season"))
    rnd = int(_race_value(race, "round"))
    race_date = _race_value(race, "race_date")
    if race_date is not None:
        race_date = pd.Timestamp(race_date).date()

    df = laps[["driver_id", "lap_number", "position", "lap_time_ms"]].copy()
    df["lap_number"] = df["lap_number"].astype("int64")
    df = df.sort_values(["driver_id", "lap_number"], kind="stable").reset_index(drop=True)
    n = len(df)

    # ---- identity columns
    ids = results[["driver_id", "driver_code", "driver_number"]].drop_duplicates("driver_id")
    df = df.merge(ids, on="driver_id", how="left")
    df.insert(0, "season", np.int64(season))
    df.insert(1, "round", np.int64(rnd))
    df.insert(2, "race_id", race_id(season, rnd))
    df.insert(3, "race_date", race_date)
    df.insert(4, "circuit_id", _race_value(race, "circuit_id"))

    # ---- pit stops: in-lap flag, out-lap flag, stops before this lap
    stops = pit_stops[["driver_id", "lap"]].drop_duplicates() if pit_stops is not None else None
    if stops is not None and len(stops):
        stops = stops.astype({"lap": "int64"})
        in_keys = pd.MultiIndex.from_frame(stops.rename(columns={"lap": "lap_number"}))
        out_keys = pd.MultiIndex.from_arrays([stops["driver_id"], stops["lap"] + 1])
        lap_keys = pd.MultiIndex.from_arrays([df["driver_id"], df["lap_number"]])
        df["pit_stop"] = lap_keys.isin(in_keys)
        out_lap = lap_keys.isin(out_keys)
    else:
        df["pit_stop"] = False
        out_lap = np.zeros(n, dtype=bool)
    # stops strictly before lap n = cumulative in-laps up to n-1; laps missing from raw_laps are
    # covered because an in-lap with no timing still counts via the merge below
    if stops is not None and len(stops):
        per_lap = stops.groupby(["driver_id", "lap"]).size().rename("k").reset_index()
        per_lap = per_lap.sort_values(["driver_id", "lap"])
        per_lap["before_next"] = per_lap.groupby("driver_id")["k"].cumsum()
        per_lap["lap_number"] = per_lap["lap"] + 1  # a stop on lap L counts from lap L+1 on
        stops_before = pd.merge_asof(
            df[["lap_number", "driver_id"]].reset_index().sort_values("lap_number"),
            per_lap[["lap_number", "driver_id", "before_next"]].sort_values("lap_number"),
            on="lap_number", by="driver_id", direction="backward",
        ).set_index("index")["before_next"].reindex(df.index).fillna(0).astype("int64")
    else:
        stops_before = pd.Series(0, index=df.index, dtype="int64")
    derived_stint = stops_before + 1

    # ---- FastF1: compound, stint, track status
    ff = _fastf1_by_driver_id(fastf1_laps, results)
    if ff is not None:
        df = df.merge(ff, on=["driver_id", "lap_number"], how="left")
    else:
        for col in ("ff_stint", "ff_compound", "ff_compound_std", "ff_track_status"):
            df[col] = None
    df["tire_compound"] = df["ff_compound"].where(df["ff_compound"].notna(), UNKNOWN_COMPOUND).astype(object)
    df["tire_compound_std"] = (
        df["ff_compound_std"].where(df["ff_compound_std"].notna(), UNKNOWN_COMPOUND).astype(object)
    )
    ff_stint = pd.to_numeric(df["ff_stint"], errors="coerce")
    df["stint"] = ff_stint.where(ff_stint.notna(), derived_stint).astype("Int64")

    # ---- tire age: lap_number - first lap of the (driver, stint) + 1
    stint_start = df.groupby(["driver_id", "stint"])["lap_number"].transform("min")
    df["tire_age"] = (df["lap_number"] - stint_start + 1).astype("Int64")

    # ---- fuel estimate and laps remaining from the scheduled distance
    sched = scheduled_laps(results)
    if sched:
        df["fuel_remaining"] = (START_FUEL_KG * (1.0 - df["lap_number"] / sched)).clip(0.0, START_FUEL_KG)
        df["laps_remaining"] = (sched - df["lap_number"]).astype("Int64")
    else:
        df["fuel_remaining"] = np.nan
        df["laps_remaining"] = pd.array([pd.NA] * n, dtype="Int64")

    # ---- gaps from cumulative time (NaN after a lap without a time)
    lap_ms = pd.to_numeric(df["lap_time_ms"], errors="coerce").astype("float64")
    cum = lap_ms.groupby(df["driver_id"]).cumsum()
    cum[lap_ms.isna().groupby(df["driver_id"]).cummax()] = np.nan
    df["_cum"] = cum
    pos = pd.to_numeric(df["position"], errors="coerce")
    by_lap_pos = df.assign(_pos=pos).dropna(subset=["_pos"]).drop_duplicates(["lap_number", "_pos"])
    by_lap_pos = by_lap_pos.set_index(["lap_number", "_pos"])["_cum"]
    leader_cum = by_lap_pos.reindex(pd.MultiIndex.from_arrays([df["lap_number"], pd.Series(1.0, index=df.index)]))
    ahead_cum = by_lap_pos.reindex(pd.MultiIndex.from_arrays([df["lap_number"], pos - 1]))
    gap = cum.to_numpy() - leader_cum.to_numpy()
    delta = np.where(pos.to_numpy() == 1, 0.0, cum.to_numpy() - ahead_cum.to_numpy())
    df["gap_to_leader_ms"] = pd.array(np.round(gap), dtype="Float64").astype("Int64")
    df["delta_to_next_ms"] = pd.array(np.round(delta), dtype="Float64").astype("Int64")

    # ---- track status and safety car
    status = df["ff_track_status"].astype("string")
    status = status.astype(object).where(status.notna(), None)
    df["track_status"] = status
    status_str = status.fillna("")
    flags = {reason: status_str.str.contains(f"[{codes}]", regex=True) for codes, reason in _STATUS_REASONS}
    sc_any = flags["safety_car"] | flags["red_flag"] | flags["vsc"]
    df["safety_car"] = pd.array(sc_any, dtype="boolean")
    df.loc[status.isna().to_numpy(), "safety_car"] = pd.NA

    # ---- outliers
    timed = lap_ms.notna().to_numpy()
    too_fast = timed & (lap_ms < MIN_LAP_MS).to_numpy()
    too_slow = timed & (lap_ms > MAX_LAP_MS).to_numpy()
    first_lap = (df["lap_number"] == 1).to_numpy()
    in_lap = df["pit_stop"].to_numpy()
    out_lap = np.asarray(out_lap, dtype=bool)
    sc_lap = sc_any.to_numpy()
    # the field's pace per lap, from laps not spent in the pit lane
    racing_ms = lap_ms.where(~in_lap & ~out_lap)
    field_median = racing_ms.groupby(df["lap_number"]).transform("median")
    typical = racing_ms.groupby(df["lap_number"]).median().loc[lambda m: m.index > 1].median()
    neutralised = (status.isna().to_numpy() & ~first_lap
                   & (field_median > NEUTRALISED_FACTOR * typical).to_numpy())
    clean = timed & ~too_fast & ~too_slow & ~first_lap & ~in_lap & ~out_lap & ~sc_lap & ~neutralised
    clean_ms = lap_ms.where(clean)
    grp = clean_ms.groupby(df["driver_id"])
    threshold = grp.transform("mean") + OUTLIER_SIGMAS * grp.transform("std")
    statistical = (timed & (lap_ms > threshold).to_numpy() & ~too_slow)
    reasons = [
        ("no_time", ~timed),
        ("too_fast", too_fast),
        ("too_slow", too_slow),
        ("statistical", statistical),
        ("first_lap", first_lap),
        ("in_lap", in_lap),
        ("out_lap", out_lap),
        ("safety_car", flags["safety_car"].to_numpy()),
        ("red_flag", flags["red_flag"].to_numpy()),
        ("vsc", flags["vsc"].to_numpy()),
        ("neutralised", neutralised),
    ]
    reason = pd.Series("", index=df.index, dtype=object)
    for name, mask in reasons:
        reason = reason.where(~mask, reason + "," + name)
    reason = reason.str.lstrip(",")
    df["is_outlier"] = (reason != "").to_numpy()
    df["outlier_reason"] = reason.where(reason != "", None)

    out = df[LAP_FEATURE_COLUMNS].copy()
    return out.astype(
        {
            "season": "int64",
            "round": "int64",
            "driver_number": "Int64",
            "lap_number": "int64",
            "lap_time_ms": "Int64",
            "position": "Int64",
            "pit_stop": "bool",
            "fuel_remaining": "float64",
            "is_outlier": "bool",
        }
    )


def build_telemetry_features(
    telemetry: pd.DataFrame, *, season: int | None = None, rnd: int | None = None
) -> pd.DataFrame:
    """Raw per-sample telemetry → one row per (driver_number, lap_number).

    Input: FastF1 merged car data + position in the raw telemetry Parquet shape (`DriverNumber`,
    `Driver`, `LapNumber`, `SessionTime`, `Speed`, `RPM`, `nGear`, `Throttle`, `Brake`, `DRS`,
    `X`, `Y`, `Z`, `Interpolated`). Samples without a lap number (before the start, after the flag)
    are not aggregated. Per lap, over the samples in SessionTime order:

    - `throttle_mean`, `throttle_std` (population σ, ddof=0), `speed_max`, `speed_mean`: NaN samples
      are skipped.
    - `brake_events`: off→on transitions of `Brake` (on = ≥ 0.5) inside the lap: a sample that is on
      whose previous sample in the same lap is known off. A lap starting with the brake on and an
      unknown (NaN) → on step do not count.
    - `drs_open_share`: share of samples with a known DRS code whose code is open (10, 12, 14).
    - `sample_count`: samples in the lap; `gap_samples`: samples with NaN in any channel
      (`TELEMETRY_CHANNELS`); `interpolated_samples`: samples with `Interpolated` true.

    With `season` and `rnd` given, the frame carries the partition columns and `race_id` and equals
    the `telemetry_features` DDL (`TELEMETRY_FEATURE_COLUMNS`).
    """
    lap = telemetry["LapNumber"]
    keep = lap.notna().to_numpy()
    if not keep.all():
        telemetry = telemetry[keep]
    drv = telemetry["DriverNumber"].to_numpy(dtype="int64")
    lapn = telemetry["LapNumber"].to_numpy(dtype="int64", na_value=0)
    t = telemetry["SessionTime"]
    t = t.to_numpy(dtype="timedelta64[ns]").astype("int64") if t.dtype.kind == "m" else t.to_numpy(dtype="float64")
    # sort by (driver, lap, time) unless already so (the Parquet usually is: skip ~0.2 s per 1 M)
    d_drv, d_lap, d_t = np.diff(drv), np.diff(lapn), np.diff(t)
    in_order = bool(np.all((d_drv > 0) | ((d_drv == 0) & ((d_lap > 0) | ((d_lap == 0) & (d_t >= 0))))))
    order = slice(None) if in_order else np.lexsort((t, lapn, drv))
    drv, lapn = drv[order], lapn[order]
    cache: dict[str, np.ndarray] = {}

    def col(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = telemetry[name].to_numpy(dtype="float64", na_value=np.nan)[order]
        return cache[name]

    m = len(drv)
    if m == 0:
        out = pd.DataFrame({c: pd.Series(dtype="float64") for c in TELEMETRY_FEATURE_COLUMNS[3:]})
        out = out.astype({"driver_number": "int64", "lap_number": "int64", "driver_code": object,
                          "brake_events": "int64", "sample_count": "int64", "gap_samples": "int64",
                          "interpolated_samples": "int64"})
        return _with_race(out, season, rnd)

    # group boundaries on the sorted (driver, lap) keys
    new_group = np.empty(m, dtype=bool)
    new_group[0] = True
    new_group[1:] = (drv[1:] != drv[:-1]) | (lapn[1:] != lapn[:-1])
    gid = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    g = len(starts)
    counts = np.diff(np.append(starts, m))

    def nan_mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = ~np.isnan(x)
        n = np.bincount(gid, weights=ok, minlength=g)
        xs = np.where(ok, x, 0.0)
        s = np.bincount(gid, weights=xs, minlength=g)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            dev = np.where(ok, x - mean[gid], 0.0)
            var = np.bincount(gid, weights=dev * dev, minlength=g) / n
        return mean, np.sqrt(var)

    throttle_mean, throttle_std = nan_mean_std(col("Throttle"))
    speed = col("Speed")
    speed_mean, _ = nan_mean_std(speed)
    speed_max = np.fmax.reduceat(speed, starts)  # fmax skips NaN; all-NaN group → NaN

    brake = col("Brake")
    on = brake >= 0.5
    prev_off = np.zeros(m, dtype=bool)
    prev_off[1:] = brake[:-1] < 0.5
    events = on & prev_off & ~new_group
    brake_events = np.bincount(gid, weights=events, minlength=g).astype("int64")

    drs = col("DRS")
    drs_known = ~np.isnan(drs)
    drs_open = np.isin(drs, DRS_OPEN_CODES)
    with np.errstate(invalid="ignore", divide="ignore"):
        drs_open_share = np.bincount(gid, weights=drs_open, minlength=g) / np.bincount(
            gid, weights=drs_known, minlength=g
        )

    gap = np.zeros(m, dtype=bool)
    for name in TELEMETRY_CHANNELS:
        if name in telemetry.columns:
            gap |= np.isnan(col(name))
    gap_samples = np.bincount(gid, weights=gap, minlength=g).astype("int64")
    if "Interpolated" in telemetry.columns:
        interp = telemetry["Interpolated"].to_numpy(dtype=bool, na_value=False)[order]
        interpolated = np.bincount(gid, weights=interp, minlength=g).astype("int64")
    else:
        interpolated = np.zeros(g, dtype="int64")

    codes = telemetry["Driver"].to_numpy(dtype=object)[order][starts] if "Driver" in telemetry else None
    out = pd.DataFrame(
        {
            "driver_number": drv[starts],
            "driver_code": codes,
            "lap_number": lapn[starts],
            "throttle_mean": throttle_mean,
            "throttle_std": throttle_std,
            "speed_max": speed_max,
            "speed_mean": speed_mean,
            "brake_events": brake_events,
            "drs_open_share": drs_open_share,
            "sample_count": counts.astype("int64"),
            "gap_samples": gap_samples,
            "interpolated_samples": interpolated,
        }
    )
    return _with_race(out, season, rnd)


def _with_race(out: pd.DataFrame, season: int | None, rnd: int | None) -> pd.DataFrame:
    if season is None or rnd is None:
        return out
    out.insert(0, "season", np.int64(season))
    out.insert(1, "round", np.int64(rnd))
    out.insert(2, "race_id", race_id(season, rnd))
    return out[TELEMETRY_FEATURE_COLUMNS]
