"""Car data + position → one per-sample telemetry frame for a race (pure pandas/numpy, no I/O).

Called by the `raw_telemetry` asset (`f1_assets.assets.ingest_fastf1`), its checks, the tests and
`bench/bench_telemetry.py`. Inputs are FastF1's shapes: `session.car_data` / `session.pos_data`
(dicts car number → frame with `Date`, `SessionTime` and the channels `Speed, RPM, nGear, Throttle,
Brake, DRS` resp. `X, Y, Z`) and `session.laps` (`DriverNumber, LapNumber, LapStartTime, Time`).

Merging (per driver, vectorised over samples): the two streams sample at different instants
(~4–5 Hz each), so the output has one row per instant of either stream. A channel's value at an
instant of the other stream is interpolated from its own two neighbouring samples when they are
less than 1 s apart — linearly for continuous channels (Speed, RPM, Throttle, X, Y, Z), the previous
value for discrete ones (nGear, Brake, DRS) — and the row is marked `Interpolated`. Inside a longer
gap (or before the first / after the last sample, or with a stream absent) the channel stays NaN and
the row counts as a *gap sample*. Each row is tagged with the lap whose [LapStartTime, Time] holds
its SessionTime (NULL outside every lap). Each lap's samples then get their track position
`Distance` (m from the lap's first sample, FastF1's `add_distance` integration) and, when FastF1's
circuit info is given, the `Corner` they are at (`f1_assets.transforms.kinematics`). The output is the
declared Parquet table `raw_telemetry` (`f1_assets/tables/fastf1.yaml`: its columns, dtypes, units and meaning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from f1_assets.tables import table
from f1_assets.transforms.kinematics import distance_along_laps, match_corners, seconds

RAW_TELEMETRY = table("raw_telemetry")
CAR_CHANNELS = ["Speed", "RPM", "nGear", "Throttle", "Brake", "DRS"]
POS_CHANNELS = ["X", "Y", "Z"]
DISCRETE_CHANNELS = {"nGear", "Brake", "DRS"}
MAX_INTERPOLATION_GAP = pd.Timedelta(seconds=1)


@dataclass(frozen=True)
class TelemetryStats:
    rows: int
    drivers: int
    samples: int  # source samples read (car + position)
    interpolated: int  # rows with at least one interpolated channel
    gap_samples: int  # rows with a channel left NaN because its stream had a gap >= 1 s

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def empty_telemetry() -> pd.DataFrame:
    """A race without samples: the `raw_telemetry` columns and dtypes, no rows."""
    return RAW_TELEMETRY.empty_frame()


def _ns(values: pd.Series) -> np.ndarray:
    return pd.to_timedelta(values).to_numpy(dtype="timedelta64[ns]").astype(np.int64)


def _resample_stream(
    stream: pd.DataFrame | None, channels: list[str], at: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Values of `channels` at session times `at` (int ns, sorted); returns (values, interpolated, gap)."""
    n = len(at)
    if stream is None or len(stream) == 0:
        return {c: np.full(n, np.nan) for c in channels}, np.zeros(n, bool), np.ones(n, bool)
    stream = stream.sort_values("SessionTime").drop_duplicates("SessionTime")
    t = _ns(stream["SessionTime"])
    prev = np.searchsorted(t, at, side="right") - 1
    has_prev = prev >= 0
    prev_c = np.clip(prev, 0, len(t) - 1)
    next_c = np.clip(prev + 1, 0, len(t) - 1)
    exact = has_prev & (t[prev_c] == at)
    span = t[next_c] - t[prev_c]
    bracket = has_prev & (prev + 1 < len(t)) & (span < MAX_INTERPOLATION_GAP.value) & ~exact
    weight = np.where(bracket, (at - t[prev_c]) / np.where(span > 0, span, 1), 0.0)
    values = {}
    for channel in channels:
        v = stream[channel].to_numpy(dtype="float64")
        before, after = v[prev_c], v[next_c]
        between = before if channel in DISCRETE_CHANNELS else before + (after - before) * weight
        values[channel] = np.where(exact, before, np.where(bracket, between, np.nan))
    return values, bracket, ~(exact | bracket)


def merge_driver(car: pd.DataFrame | None, pos: pd.DataFrame | None) -> tuple[pd.DataFrame, int]:
    """One driver's car data and position on the union of their sample instants; (frame, gap samples)."""
    parts = [s[["SessionTime", "Date"]] for s in (car, pos) if s is not None and len(s)]
    if not parts:
        return empty_telemetry().drop(columns=["DriverNumber", "Driver", "LapNumber"]), 0
    instants = (
        pd.concat(parts, ignore_index=True)
        .astype({"SessionTime": "timedelta64[ns]", "Date": "datetime64[ns]"})
        .sort_values("SessionTime", kind="stable")
        .drop_duplicates("SessionTime")
        .reset_index(drop=True)
    )
    at = _ns(instants["SessionTime"])
    car_values, car_interp, car_gap = _resample_stream(car, CAR_CHANNELS, at)
    pos_values, pos_interp, pos_gap = _resample_stream(pos, POS_CHANNELS, at)
    frame = instants.assign(**car_values, **pos_values)
    frame["Interpolated"] = car_interp | pos_interp
    return frame, int((car_gap | pos_gap).sum())


def tag_laps(frame: pd.DataFrame, laps: pd.DataFrame) -> pd.Series:
    """The lap number of each sample (`DriverNumber`, `SessionTime`), NA outside every lap."""
    if len(frame) == 0 or len(laps) == 0:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    spans = pd.DataFrame(
        {
            "DriverNumber": pd.to_numeric(laps["DriverNumber"].astype(str)).astype("int64"),
            "LapNumber": pd.to_numeric(laps["LapNumber"]).astype("Int64"),
            "start": pd.to_timedelta(laps["LapStartTime"]).astype("timedelta64[ns]"),
            "end": pd.to_timedelta(laps["Time"]).astype("timedelta64[ns]"),
        }
    ).dropna(subset=["start"])
    spans = spans.sort_values("start", kind="stable")
    left = pd.DataFrame(
        {
            "DriverNumber": frame["DriverNumber"].astype("int64").to_numpy(),
            "SessionTime": frame["SessionTime"].astype("timedelta64[ns]").to_numpy(),
            "_row": np.arange(len(frame)),
        }
    ).sort_values("SessionTime", kind="stable")
    tagged = pd.merge_asof(
        left, spans, left_on="SessionTime", right_on="start", by="DriverNumber", direction="backward"
    )
    inside = tagged["end"].isna() | (tagged["SessionTime"] <= tagged["end"])
    lap = tagged["LapNumber"].where(inside & tagged["start"].notna())
    out = pd.Series(pd.NA, index=range(len(frame)), dtype="Int64")
    out.iloc[tagged["_row"].to_numpy()] = lap.astype("Int64").to_numpy()
    out.index = frame.index
    return out


def merge_race_telemetry(
    car_data: Mapping[str, pd.DataFrame],
    pos_data: Mapping[str, pd.DataFrame],
    laps: pd.DataFrame,
    driver_codes: Mapping[str, str],
    corners: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, TelemetryStats]:
    """Every driver's merged telemetry in one frame (the table `raw_telemetry`), plus its counts.
    `corners`: FastF1's circuit info corners (Number, X, Y); None leaves `Corner` NULL."""
    frames = []
    samples = gaps = 0
    numbers = sorted({str(k) for k in car_data} | {str(k) for k in pos_data}, key=int)
    for number in numbers:  # ~20 drivers: the per-sample work inside is vectorised
        car, pos = car_data.get(number), pos_data.get(number)
        samples += sum(len(s) for s in (car, pos) if s is not None)
        frame, driver_gaps = merge_driver(car, pos)
        gaps += driver_gaps
        if len(frame):
            frame.insert(0, "DriverNumber", int(number))
            frame.insert(1, "Driver", driver_codes.get(number))
            frames.append(frame)
    if not frames:
        return empty_telemetry(), TelemetryStats(0, 0, samples, 0, gaps)
    race = pd.concat(frames, ignore_index=True)
    race["LapNumber"] = tag_laps(race, laps)
    race["Distance"], race["Corner"] = track_position(race, corners)
    race = RAW_TELEMETRY.conform(race)
    stats = TelemetryStats(
        rows=len(race),
        drivers=race["DriverNumber"].nunique(),
        samples=samples,
        interpolated=int(race["Interpolated"].sum()),
        gap_samples=gaps,
    )
    return race, stats


def track_position(race: pd.DataFrame, corners: pd.DataFrame | None) -> tuple[np.ndarray, pd.Series]:
    """Per sample of `race` (rows in driver, SessionTime order): `Distance` along its lap (NaN outside
    every lap) and the `Corner` it is at (NA without `corners` or away from every corner)."""
    lap = race["LapNumber"].to_numpy(dtype="float64", na_value=np.nan)
    car = race["DriverNumber"].to_numpy(dtype="int64")
    lap_key = np.nan_to_num(lap, nan=-1.0)
    new_lap = np.ones(len(race), dtype=bool)
    new_lap[1:] = (car[1:] != car[:-1]) | (lap_key[1:] != lap_key[:-1])
    distance = distance_along_laps(new_lap, seconds(race["SessionTime"]), race["Speed"].to_numpy(dtype="float64"))
    corner = match_corners(race["X"].to_numpy(dtype="float64"), race["Y"].to_numpy(dtype="float64"), corners)
    return np.where(np.isnan(lap), np.nan, distance), pd.Series(pd.array(corner, dtype="Int64"), index=race.index)


def completeness_by_driver(race: pd.DataFrame) -> pd.DataFrame:
    """Share of rows per driver with every channel present (0–1), sorted worst first."""
    if len(race) == 0:
        return pd.DataFrame({"DriverNumber": [], "Driver": [], "rows": [], "complete": []})
    complete = race[CAR_CHANNELS + POS_CHANNELS].notna().all(axis=1)
    grouped = complete.groupby([race["DriverNumber"], race["Driver"].fillna("")])
    out = pd.DataFrame({"rows": grouped.size(), "complete": grouped.mean()}).reset_index()
    return out.sort_values("complete").reset_index(drop=True)
