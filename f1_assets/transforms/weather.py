"""Weather per lap from FastF1's weather stream, and its categorical bins (pure pandas/numpy, no I/O).

Called by `f1_assets.transforms.fastf1_laps.laps_to_rows` (the weather columns of `fastf1_laps`),
by `f1_assets.transforms.features` (the bins of `lap_features`) and by tests.

Input: FastF1's `session.weather_data` (live timing's `WeatherData.jsonStream`, about one sample a
minute): `Time` (session time), AirTemp (°C), TrackTemp (°C), Humidity (%), Pressure (mbar),
Rainfall (bool), WindSpeed (m/s), WindDirection (°). F1 publishes it from 2018 on; a race may have
none (many recorded sessions here lack it, e.g. Baku 2018): then every weather value is NULL.

Per lap (`lap_weather`), over the lap's session-time window [LapStartTime, Time]:
- numbers (`air_temp_c`, `track_temp_c`, `humidity_pct`, `pressure_mbar`, `wind_speed_mps`,
  `wind_direction_deg`): the mean of the samples inside the window; with none inside (laps are
  shorter than the sample interval now and then), the last sample before the lap ended, but only
  when it is at most `WEATHER_MAX_AGE` older than the lap's end (the stream has gaps: a sample from
  20 minutes earlier says nothing about this lap); NULL otherwise (or when the lap has no end time).
  Wind direction is averaged as a compass angle (circular mean), so 350° and 10° give 0°, not 180°.
- `rainfall`: any sample inside the window reports rain; with none inside, the last sample before
  (same age limit).
Each channel is judged on its own readable samples: an unreadable value (NaN / NA, see
`weather_from_stream`) is no sample for that channel.

`weather_from_stream` parses the raw stream itself, because FastF1's parser (`fastf1._api.weather_data`)
turns a value it cannot read (junk, or a missing key) into 0 (AirTemp 0.0 °C) or False (Rainfall: any
value but "1", i.e. "Dry"): here such a value is NaN (Rainfall NA), never a made-up reading.

The design's categorical binning:
- `weather` per lap: 'Wet' = rain during the lap (`rainfall` true), 'Dry' = no rain, 'UNKNOWN' = no
  weather sample for the lap (before 2018, no FastF1 session, or no weather stream).
- `race_weather` per race, from its laps' `rainfall`: 'UNKNOWN' = fewer than `KNOWN_SHARE` (half) of the
  race's driver-laps have a known weather (rain in the laps without a sample would go unseen: a race is not
  'Dry' on a few minutes of samples); otherwise 'Dry' = no lap with rain, 'Wet' = rain on most laps (more
  than `WET_SHARE`, half, of the driver-laps with a known weather), 'Mixed' = rain on some laps but not most.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DRY, WET, MIXED, UNKNOWN = "Dry", "Wet", "Mixed", "UNKNOWN"
# F1 sends a weather sample about once a minute: a lap without a sample inside takes the last one before
# its end only when that one is at most this old (a few missed samples); older, the lap's weather is unknown
WEATHER_MAX_AGE = pd.Timedelta(minutes=5)
WET_SHARE = 0.5  # a race is 'Wet' when more than this share of its driver-laps with a known weather had rain
# a race has a bin only when at least this share of its driver-laps has a known weather; below it 'UNKNOWN'
KNOWN_SHARE = 0.5
# FastF1's weather channels → the columns of fastf1_laps (numbers; Rainfall is handled apart)
NUMERIC_CHANNELS = {
    "AirTemp": "air_temp_c",
    "TrackTemp": "track_temp_c",
    "Humidity": "humidity_pct",
    "Pressure": "pressure_mbar",
    "WindSpeed": "wind_speed_mps",
    "WindDirection": "wind_direction_deg",
}
WEATHER_COLUMNS = [*NUMERIC_CHANNELS.values(), "rainfall"]
# the columns of FastF1's `session.weather_data`, in its order
STREAM_COLUMNS = ["Time", "AirTemp", "Humidity", "Pressure", "Rainfall", "TrackTemp", "WindDirection", "WindSpeed"]
_RAIN = {"1": True, "0": False, 1: True, 0: False}  # the bools True / False hash as 1 / 0: read too


def _number(value: object) -> float:
    """A reading as a float; NaN when it is not a finite number (junk text, null, a bool, a missing key)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return np.nan
    try:
        number = float(value)
    except ValueError:
        return np.nan
    return number if np.isfinite(number) else np.nan


def weather_from_stream(entries: list) -> pd.DataFrame:
    """FastF1's `session.weather_data` frame, parsed strictly from the raw `WeatherData.jsonStream` entries
    (`[timestamp, {channel: value}]`, as `fastf1._api.fetch_page(path, "weather_data")` returns them; the
    same entries FastF1 keeps: at least two elements, a dict). A value that is not a number (Rainfall: not
    "0"/"1") or is missing is NaN (Rainfall NA) where FastF1 would put 0 / False; a timestamp that does not
    parse is NaT (`lap_weather` skips it)."""
    rows = [(entry[0], entry[1]) for entry in entries
            if isinstance(entry, (list, tuple)) and len(entry) >= 2 and isinstance(entry[1], dict)]
    out = pd.DataFrame({"Time": pd.to_timedelta(pd.Series([str(t) for t, _ in rows], dtype=object),
                                                errors="coerce")})
    for channel in STREAM_COLUMNS[1:]:
        if channel == "Rainfall":
            values = [_RAIN.get(v) if isinstance(v, (str, int, bool)) else None
                      for v in (row.get(channel) for _, row in rows)]
            out[channel] = pd.array(values, dtype="boolean")
        else:
            out[channel] = np.array([_number(row.get(channel)) for _, row in rows], dtype="float64")
    return out[STREAM_COLUMNS]


def _ns(values: pd.Series | np.ndarray) -> np.ndarray:
    """Session times as int64 nanoseconds; NaT becomes the int64 minimum (masked by callers)."""
    return pd.to_timedelta(pd.Series(values)).to_numpy(dtype="timedelta64[ns]").astype("int64")


def _window_mean(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window [lo, hi) of the sorted samples: the mean of the non-NaN values and how many there were."""
    ok = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums[hi] - sums[lo]) / n, n


def empty_lap_weather(index: pd.Index) -> pd.DataFrame:
    """The weather columns, all NULL (a race without weather samples)."""
    out = pd.DataFrame({c: np.full(len(index), np.nan) for c in NUMERIC_CHANNELS.values()}, index=index)
    out["rainfall"] = pd.array([pd.NA] * len(index), dtype="boolean")
    return out[WEATHER_COLUMNS]


def lap_weather(lap_start: pd.Series, lap_end: pd.Series, weather: pd.DataFrame | None) -> pd.DataFrame:
    """The weather of each lap (see the module docstring): one row per lap, on the laps' index.

    `lap_start`, `lap_end`: session times (timedeltas; NaT where unknown) of each lap's start and end;
    `weather`: FastF1's `session.weather_data` (or None / empty: every value NULL).
    """
    index = lap_end.index
    if weather is None or len(weather) == 0 or "Time" not in weather:
        return empty_lap_weather(index)
    samples = weather.dropna(subset=["Time"]).sort_values("Time", kind="stable")
    if samples.empty:
        return empty_lap_weather(index)
    t = _ns(samples["Time"])
    start, end = lap_start.isna().to_numpy(), lap_end.isna().to_numpy()
    start_ns, end_ns = _ns(lap_start), _ns(lap_end)
    # samples inside [start, end]: [lo, hi); a lap without a start time has an empty window
    hi = np.searchsorted(t, end_ns, side="right")
    lo = np.where(start, hi, np.searchsorted(t, start_ns, side="left"))
    lo = np.minimum(lo, hi)
    # a fallback sample must be at least this recent (a lap without an end has none: its NaT stands in)
    oldest = np.where(end, 0, end_ns) - WEATHER_MAX_AGE.value

    def fallback(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per lap: the last sample at or before its end with a readable value (`ok`), and whether there
        is one not older than WEATHER_MAX_AGE."""
        last_ok = np.maximum.accumulate(np.where(ok, np.arange(len(ok)), -1)) if len(ok) else np.array([], int)
        idx = np.where(hi > 0, last_ok[np.maximum(hi - 1, 0)], -1)
        found = ~end & (idx >= 0)
        found &= t[np.maximum(idx, 0)] >= oldest
        return np.maximum(idx, 0), found

    out = pd.DataFrame(index=index)
    for channel, column in NUMERIC_CHANNELS.items():
        values = (pd.to_numeric(samples[channel], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                  if channel in samples else np.full(len(samples), np.nan))
        if channel == "WindDirection":  # a compass angle: average the unit vectors, not the degrees
            rad = np.deg2rad(values)
            sin, n = _window_mean(np.sin(rad), lo, hi)
            cos, _ = _window_mean(np.cos(rad), lo, hi)
            inside = np.round(np.rad2deg(np.arctan2(sin, cos)) % 360.0, 1)
        else:
            inside, n = _window_mean(values, lo, hi)
        before, recent = fallback(~np.isnan(values))
        inside_ok = ~end & (n > 0)
        out[column] = np.where(inside_ok, inside, np.where(recent, values[before], np.nan))
    rain = (samples["Rainfall"].astype("boolean") if "Rainfall" in samples
            else pd.Series(pd.NA, index=samples.index, dtype="boolean"))
    rain_known = rain.notna().to_numpy()
    rain_true = rain.fillna(False).to_numpy(dtype=bool)
    known_count = np.concatenate([[0], np.cumsum(rain_known)])
    rain_count = np.concatenate([[0], np.cumsum(rain_true)])
    known_inside = ~end & ((known_count[hi] - known_count[lo]) > 0)
    before, recent = fallback(rain_known)
    rainfall = pd.array(np.where(known_inside, (rain_count[hi] - rain_count[lo]) > 0, rain_true[before]),
                        dtype="boolean")
    rainfall[~known_inside & ~recent] = pd.NA
    out["rainfall"] = rainfall
    return out[WEATHER_COLUMNS]


def weather_bin(rainfall: pd.Series) -> pd.Series:
    """Per lap: 'Wet' (rain during the lap), 'Dry' (none) or 'UNKNOWN' (no weather for the lap)."""
    rain = rainfall.astype("boolean")
    out = pd.Series(UNKNOWN, index=rainfall.index, dtype=object)
    out[rain.fillna(False).to_numpy(dtype=bool)] = WET
    out[(~rain).fillna(False).to_numpy(dtype=bool)] = DRY
    return out


def race_weather_bin(rainfall: pd.Series) -> str:
    """Per race, from all its laps' `rainfall` (NA: no weather for the lap): 'Dry', 'Wet' (rain on most known
    laps), 'Mixed', or 'UNKNOWN' when fewer than `KNOWN_SHARE` of the laps have a known weather."""
    known = rainfall.astype("boolean").dropna()
    if known.empty or len(known) < KNOWN_SHARE * len(rainfall):
        return UNKNOWN
    wet = int(known.sum())
    if wet == 0:
        return DRY
    return WET if wet > WET_SHARE * len(known) else MIXED
