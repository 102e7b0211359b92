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
  shorter than the sample interval now and then), the last sample before the lap ended; NULL when
  no sample precedes the end (or the lap has no end time). Wind direction is averaged as a compass
  angle (circular mean), so 350° and 10° give 0°, not 180°.
- `rainfall`: any sample inside the window reports rain; with none inside, the last sample before.

The design's categorical binning:
- `weather` per lap: 'Wet' = rain during the lap (`rainfall` true), 'Dry' = no rain, 'UNKNOWN' = no
  weather sample for the lap (before 2018, no FastF1 session, or no weather stream).
- `race_weather` per race, from its laps' `rainfall`: 'Dry' = no lap with rain, 'Wet' = rain on most
  laps (more than half of the driver-laps with a known weather), 'Mixed' = rain on some laps but not
  most, 'UNKNOWN' = no lap with a known weather.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DRY, WET, MIXED, UNKNOWN = "Dry", "Wet", "Mixed", "UNKNOWN"
WET_SHARE = 0.5  # a race is 'Wet' when more than this share of its driver-laps had rain
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
    before = np.maximum(hi - 1, 0)  # the last sample at or before the end (valid when hi > 0)
    known = ~end & (hi > 0)

    out = pd.DataFrame(index=index)
    for channel, column in NUMERIC_CHANNELS.items():
        values = (pd.to_numeric(samples[channel], errors="coerce").to_numpy(dtype="float64")
                  if channel in samples else np.full(len(samples), np.nan))
        if channel == "WindDirection":  # a compass angle: average the unit vectors, not the degrees
            rad = np.deg2rad(values)
            sin, n = _window_mean(np.sin(rad), lo, hi)
            cos, _ = _window_mean(np.cos(rad), lo, hi)
            inside = np.round(np.rad2deg(np.arctan2(sin, cos)) % 360.0, 1)
        else:
            inside, n = _window_mean(values, lo, hi)
        last = values[before]
        out[column] = np.where(~known, np.nan, np.where(n > 0, inside, last))
    rain_values = (samples["Rainfall"].astype("boolean").fillna(False).to_numpy(dtype=bool)
                   if "Rainfall" in samples else np.zeros(len(samples), dtype=bool))
    rain_count = np.concatenate([[0], np.cumsum(rain_values)])
    inside_n = hi - lo
    rain = np.where(inside_n > 0, (rain_count[hi] - rain_count[lo]) > 0, rain_values[before])
    rainfall = pd.array(rain, dtype="boolean")
    rainfall[~known] = pd.NA
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
    """Per race, from its laps' `rainfall`: 'Dry', 'Wet' (rain on most laps), 'Mixed' or 'UNKNOWN'."""
    known = rainfall.astype("boolean").dropna()
    if known.empty:
        return UNKNOWN
    wet = int(known.sum())
    if wet == 0:
        return DRY
    return WET if wet > WET_SHARE * len(known) else MIXED
