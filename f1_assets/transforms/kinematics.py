"""Track position, g-forces and corners from telemetry samples (pure numpy/pandas, no I/O).

Called by `f1_assets.transforms.telemetry.merge_race_telemetry` (per-sample `Distance` and `Corner` of
`raw_telemetry`), by `f1_assets.transforms.features.build_telemetry_features` (the per-lap columns of
`telemetry_features`: `lap_kinematics`) and by the tests (`f1_assets_tests/test_kinematics.py`).
Inputs are the `raw_telemetry` channels: Speed in km/h, X/Y in 1/10 m, SessionTime; the arrays handed
in are sorted by (driver, time) — a driver's laps follow each other in time — with `driver` the car.

- Track position (`distance_along_laps`): distance from the lap's first sample, in m, integrating the
  speed over time exactly as FastF1's `Telemetry.add_distance` / `integrate_distance` does
  (`ds_i = Speed_i / 3.6 * (t_i - t_(i-1))`, summed within the lap; the first sample is at 0 — FastF1
  counts from the lap start, which the samples do not carry). A sample without speed adds nothing.
- Smoothing (`local_quadratic`): every channel is fitted, around each sample, by a least-squares
  quadratic in time over the samples of the same car within +-`HALF_WINDOW_S` (0.5 s: ~4 samples of
  each ~4-5 Hz stream, so the linear interpolation between position samples and the 1 km/h speed
  quantisation are averaged out; at most `MAX_NEIGHBOURS` (6) samples each side). The fit gives the first
  and second time derivative at the sample; a line or parabola is reproduced exactly.
- Longitudinal g (`longitudinal_g`): dv/dt of that fit of Speed (m/s^2) / 9.80665; positive = accelerating.
- Lateral g (`lateral_g`): v^2 * kappa / 9.80665, v from Speed and kappa = |x'y'' - y'x''| / (x'^2 + y'^2)^1.5
  the curvature of the fitted X,Y path (in m). Where the path moves slower than `MIN_PATH_SPEED_MS` the
  curvature is noise (a car standing in the pit box): NaN there.
- Quality: the design bounds |g| <= 6 (`G_LIMIT`); samples beyond are counted per lap
  (`g_over_limit_samples`), flagged by the WARN rule `g_force_range`, never dropped.
- Corners (`match_corners`): FastF1's circuit info (`Session.get_circuit_info().corners`: Number, X, Y
  in the position data's units) — a sample belongs to the nearest corner marker when it is within
  `CORNER_RADIUS_M` (50 m; the markers are hand-placed) of it. Per lap: distinct corners passed, the
  lowest speed among corner samples and the number of that corner. Corner letters ("2A") are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from f1_assets.transforms.features import LapSamples

G = 9.80665  # standard gravity, m/s^2
G_LIMIT = 6.0  # the design's |lateral g|, |longitudinal g| <= 6
HALF_WINDOW_S = 0.5
MAX_NEIGHBOURS = 6  # per side: the merged streams give ~8-10 samples/s, so +-0.5 s holds ~5
MIN_FIT_SAMPLES = 4  # a quadratic through fewer points does not smooth anything
BLOCK = 16384  # samples per block of local_quadratic's sums: a block's arrays stay in the CPU cache
MIN_PATH_SPEED_MS = 5.0
CORNER_RADIUS_M = 50.0
POSITION_UNIT_M = 0.1  # X, Y are in 1/10 m


def seconds(session_time: pd.Series | np.ndarray) -> np.ndarray:
    """SessionTime as float seconds (a timedelta, or a number already in seconds)."""
    values = pd.Series(session_time) if not isinstance(session_time, pd.Series) else session_time
    if values.dtype.kind == "m":
        return values.to_numpy(dtype="timedelta64[ns]").astype("int64") / 1e9
    return values.to_numpy(dtype="float64")


def distance_along_laps(new_lap: np.ndarray, t_s: np.ndarray, speed_kmh: np.ndarray) -> np.ndarray:
    """Metres since each lap's first sample (FastF1's `integrate_distance`), for samples in lap order;
    `new_lap` marks each lap's first sample."""
    if len(t_s) == 0:
        return np.zeros(0)
    dt = np.diff(t_s, prepend=t_s[0])
    ds = np.where(new_lap | np.isnan(speed_kmh), 0.0, np.nan_to_num(speed_kmh) / 3.6 * dt)
    total = np.cumsum(ds)
    lap_start = np.maximum.accumulate(np.where(new_lap, np.arange(len(ds)), 0))
    return total - total[lap_start]  # ds at a lap start is 0


def local_quadratic(car: np.ndarray, t_s: np.ndarray, values: list[np.ndarray], half_window: float = HALF_WINDOW_S
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sample and per channel in `values`: (first, second) time derivative of the least-squares
    quadratic through the samples of the same `car` within +-`half_window` s (NaN where fewer than
    `MIN_FIT_SAMPLES`). Samples sorted by (car, time).

    The channels are fitted on the samples where all of them are known (X and Y are NaN together), so
    they share the normal equations; dt is scaled by the window to keep them well conditioned. The sums
    are taken block by block (`BLOCK` samples, one vectorised pass per neighbour offset within the block)
    so that the block's arrays stay in the CPU cache; offsets beyond the samples there are (a race of 2-5 samples)
    are skipped. A sample without a time or a value is in no fit."""
    t_s = np.asarray(t_s, dtype="float64")
    n = len(t_s)
    ok = ~np.isnan(t_s)  # a sample without a time is in no fit
    t_s = np.where(ok, t_s, 0.0)
    for y in values:
        ok &= ~np.isnan(y)
    key = _fit_key(car, ok)
    known = np.stack([np.where(ok, np.asarray(y, dtype="float64"), 0.0) for y in values])[:, None, :]
    offsets = [k for k in range(-MAX_NEIGHBOURS, MAX_NEIGHBOURS + 1) if abs(k) < n]  # fewer samples: skipped
    first = np.full((len(values), n), np.nan)
    second = np.full((len(values), n), np.nan)
    size = min(BLOCK, n)
    u_buf, use_buf, up_buf = np.empty(size), np.empty(size, dtype=bool), np.empty((5, size))
    ry_buf = np.empty((len(values), 3, size))
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        m = np.zeros((5, stop - start))  # sum of u^p, u = dt / half_window
        r = np.zeros((len(values), 3, stop - start))  # sum of y * u^q
        for k in offsets:
            if k == 0:  # the sample itself: u = 0
                m[0] += ok[start:stop]
                r[:, 0] += known[:, 0, start:stop]
                continue
            lo, hi = max(start, -k), min(stop, n - k)  # centres whose neighbour at offset k exists
            if hi <= lo:
                continue
            centre, other, local, w = slice(lo, hi), slice(lo + k, hi + k), slice(lo - start, hi - start), hi - lo
            u, use, up, ry = u_buf[:w], use_buf[:w], up_buf[:, :w], ry_buf[:, :, :w]
            np.equal(key[other], key[centre], out=use)
            np.subtract(t_s[other], t_s[centre], out=u)
            u /= half_window
            use &= np.abs(u) <= 1.0
            if not use.any():  # the block's samples are all further apart than the window: adds only zeros
                continue
            up[0] = use  # use * u^p
            for p in range(1, 5):
                np.multiply(up[p - 1], u, out=up[p])
            m[:, local] += up
            np.multiply(known[:, :, other], up[:3], out=ry)
            r[:, :, local] += ry
        _solve(m, r, half_window, first[:, start:stop], second[:, start:stop])
    return [(first[i], second[i]) for i in range(len(values))]


def _fit_key(car: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per sample an int64 that two samples share iff they are of the same car and both have every
    channel (a sample missing one gets a key of its own)."""
    car = np.asarray(car)
    codes = car.astype("int64") if car.dtype.kind in "iub" else pd.factorize(car)[0].astype("int64")
    if len(codes) == 0:
        return codes
    return np.where(ok, codes - codes.min(), -1 - np.arange(len(codes)))


def _solve(m: np.ndarray, r: np.ndarray, half_window: float, first: np.ndarray, second: np.ndarray) -> None:
    """The quadratic's b (slope) and c (curvature) from the normal equations' sums, by Cramer's rule,
    written into `first` (b / h) and `second` (2c / h^2) where the fit is good (NaN stays elsewhere)."""
    a00, a01, a02, a11, a12, a22 = m[0], m[1], m[2], m[2], m[3], m[4]
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * (a11 * a22 - a12 * a12) + a01 * c01 + a02 * c02
    good = (m[0] >= MIN_FIT_SAMPLES) & (np.abs(det) > 1e-9 * np.maximum(m[0], 1.0) ** 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(len(r)):
            b = (c01 * r[i, 0] + c11 * r[i, 1] + c12 * r[i, 2]) / det
            c = (c02 * r[i, 0] + c12 * r[i, 1] + c22 * r[i, 2]) / det
            np.copyto(first[i], b / half_window, where=good)
            np.copyto(second[i], 2.0 * c / half_window**2, where=good)


def longitudinal_g(car: np.ndarray, t_s: np.ndarray, speed_kmh: np.ndarray) -> np.ndarray:
    """dv/dt of the smoothed speed, in g (negative = braking)."""
    ((dv, _),) = local_quadratic(car, t_s, [speed_kmh / 3.6])
    return dv / G


def lateral_g(car: np.ndarray, t_s: np.ndarray, speed_kmh: np.ndarray, x: np.ndarray, y: np.ndarray
              ) -> np.ndarray:
    """|v^2 * curvature of the smoothed X,Y path|, in g; NaN where the path is too slow to bend."""
    (dx, ddx), (dy, ddy) = local_quadratic(car, t_s, [x * POSITION_UNIT_M, y * POSITION_UNIT_M])
    path_speed = np.hypot(dx, dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = np.abs(dx * ddy - dy * ddx) / path_speed**3
        v = speed_kmh / 3.6
        return np.where(path_speed >= MIN_PATH_SPEED_MS, v * v * kappa / G, np.nan)


def match_corners(x: np.ndarray, y: np.ndarray, corners: pd.DataFrame | None,
                  radius_m: float = CORNER_RADIUS_M) -> np.ndarray:
    """Per sample: the `Number` of the nearest corner marker within `radius_m`, else NaN (float)."""
    out = np.full(len(x), np.nan)
    if corners is None or len(corners) == 0 or len(x) == 0:
        return out
    best = np.full(len(x), np.inf)
    for cx, cy, number in zip(corners["X"].to_numpy(float), corners["Y"].to_numpy(float),
                              corners["Number"].to_numpy(float), strict=True):  # ~20 corners
        d = np.hypot(x - cx, y - cy) * POSITION_UNIT_M
        closer = d < best  # NaN positions never compare closer
        best = np.where(closer, d, best)
        out = np.where(closer, number, out)
    return np.where(best <= radius_m, out, np.nan)


def lap_kinematics(samples: LapSamples) -> dict[str, np.ndarray]:
    """The kinematic columns of `telemetry_features`, one value per lap of `samples` (see the module
    docstring); a lap without the channels gets NaN/NULL. Corner columns are NULL for every lap when
    the samples carry no `Corner` (no circuit info for the race), else counted (0 = no corner passed)."""
    groups, gid, starts = samples.groups, samples.gid, samples.starts
    names = samples.frame.columns
    nan = np.full(len(gid), np.nan)
    t_s = seconds(samples.frame["SessionTime"])[samples.order]
    speed = samples.channel("Speed") if "Speed" in names else nan
    x = samples.channel("X") if "X" in names else nan
    y = samples.channel("Y") if "Y" in names else nan
    car = samples.driver_number
    distance = distance_along_laps(samples.new_group, t_s, speed)
    lat = lateral_g(car, t_s, speed, x, y)
    lon = longitudinal_g(car, t_s, speed)
    has_g = samples.per_lap_sum(~np.isnan(lat) | ~np.isnan(lon)) > 0
    over = (np.abs(np.nan_to_num(lat)) > G_LIMIT) | (np.abs(np.nan_to_num(lon)) > G_LIMIT)
    with np.errstate(invalid="ignore"):
        has_speed = samples.per_lap_sum(~np.isnan(speed)) > 0
        out: dict[str, np.ndarray] = {
            "lap_distance_m": np.where(has_speed, np.fmax.reduceat(distance, starts), np.nan),
            "max_lateral_g": np.fmax.reduceat(lat, starts),
            "max_braking_g": np.fmin.reduceat(lon, starts),
            "max_accel_g": np.fmax.reduceat(lon, starts),
            "g_over_limit_samples": pd.array(np.where(has_g, samples.per_lap_sum(over), np.nan), dtype="Int64"),
        }
    corner = samples.channel("Corner") if "Corner" in names else nan
    if np.isnan(corner).all():
        out["corners_passed"] = pd.array([None] * groups, dtype="Int64")
        out["slowest_corner"] = pd.array([None] * groups, dtype="Int64")
        out["min_corner_speed_kmh"] = np.full(groups, np.nan)
        return out
    at = ~np.isnan(corner)
    pairs = np.unique(np.stack([gid[at], corner[at]]), axis=1)
    out["corners_passed"] = pd.array(np.bincount(pairs[0].astype("int64"), minlength=groups), dtype="Int64")
    corner_speed = np.where(at, speed, np.nan)
    with np.errstate(invalid="ignore"):
        out["min_corner_speed_kmh"] = np.fmin.reduceat(corner_speed, starts)
    known = np.flatnonzero(~np.isnan(corner_speed))
    slowest = np.full(groups, np.nan)
    if len(known):
        order = known[np.lexsort((corner_speed[known], gid[known]))]  # per lap, slowest corner sample first
        first = order[np.r_[True, gid[order][1:] != gid[order][:-1]]]
        slowest[gid[first]] = corner[first]
    out["slowest_corner"] = pd.array(slowest, dtype="Int64")
    return out
