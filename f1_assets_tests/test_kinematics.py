"""Track position, g-forces and corners (f1_assets/transforms/kinematics.py) on synthetic traces with known answers.

No telemetry (CarData.z, Position.z) is recorded anywhere here, so the traces are generated: a circle of
known radius at constant speed (lateral g = v^2 / (r * 9.80665)), straight-line braking at a constant
deceleration (longitudinal g known), a lap at constant speed (distance = v * t) and a two-corner track.
The samples come at the merged streams' irregular instants (two ~4.5 Hz streams, offset), as raw_telemetry
has them. The circuit info is a JSON synthesized here in the shape FastF1's `fastf1.mvapi` parses
(`corners: [{number, letter, angle, trackPosition: {x, y}}]`), served by a real HTTP server on 127.0.0.1 and
read through FastF1's own `Session.get_circuit_info()` on the recorded 2018 Baku session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import numpy as np
import pandas as pd
import pytest

from f1_assets.checks.rules import ALL
from f1_assets.settings import ConfigError
from f1_assets.tables import table
from f1_assets.transforms import kinematics as kin
from f1_assets.transforms.features import build_telemetry_features, lap_samples
from f1_assets.transforms.telemetry import merge_race_telemetry
from f1_assets_tests.helpers import http_server, load_baku
from f1_assets_tests.livetiming_server import refused_url

G = 9.80665


def instants(duration: float, t0: float = 0.0) -> np.ndarray:
    """The union of two ~4.5 Hz streams (0.22 s and 0.23 s apart, offset): irregular, ~9 samples/s."""
    a = np.arange(0.0, duration, 0.22)
    b = np.arange(0.07, duration, 0.23)
    return t0 + np.unique(np.concatenate([a, b]))


def trace(t: np.ndarray, speed_kmh: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, lap: int = 1) -> pd.DataFrame:
    """raw_telemetry-shaped samples of car 44 (X, Y in 1/10 m)."""
    n = len(t)
    return pd.DataFrame({
        "DriverNumber": 44, "Driver": "HAM", "LapNumber": pd.array([lap] * n, dtype="Int64"),
        "SessionTime": pd.to_timedelta(t, unit="s"), "Speed": speed_kmh, "RPM": 11000.0, "nGear": 7.0,
        "Throttle": 100.0, "Brake": 0.0, "DRS": 0.0, "X": x_m * 10, "Y": y_m * 10, "Z": 0.0, "Interpolated": False,
    })


def test_circle_at_constant_speed_gives_v2_over_r():
    """r = 120 m at 180 km/h: 2.549 g. Tolerance from the smoothing's known bias: a local quadratic over +-h
    underestimates x' by (omega*h)^2/10 and x'' by 0.071 (omega*h)^2, so kappa comes out about
    +0.13 (omega*h)^2 high: +0.56 % for omega = v/r = 0.42 rad/s, h = 0.5 s (measured +0.67 % at these
    irregular instants): interior samples within 1 %; at the trace's ends the window is one-sided (measured
    +1.34 %): the lap's maximum within 1.5 %. Constant speed: longitudinal g 0 (to 1e-9)."""
    v, r = 50.0, 120.0
    t = instants(30.0)
    w = v / r
    lap = trace(t, np.full(len(t), v * 3.6), r * np.cos(w * t), r * np.sin(w * t))
    expected = v * v / (r * G)
    car = np.full(len(t), 44)
    lat = kin.lateral_g(car, t, lap["Speed"].to_numpy(), lap["X"].to_numpy(), lap["Y"].to_numpy())
    interior = (t > t[0] + kin.HALF_WINDOW_S) & (t < t[-1] - kin.HALF_WINDOW_S)
    assert np.max(np.abs(lat[interior] / expected - 1)) < 0.01 and np.isnan(lat).sum() == 0
    row = build_telemetry_features(lap, season=2023, rnd=1).iloc[0]
    assert row["max_lateral_g"] == pytest.approx(expected, rel=0.015)
    assert abs(row["max_braking_g"]) < 1e-9 and abs(row["max_accel_g"]) < 1e-9
    assert row["g_over_limit_samples"] == 0
    # distance: FastF1's integration of the speed over the lap's time, v * (t_last - t_first)
    assert row["lap_distance_m"] == pytest.approx(v * (t[-1] - t[0]), rel=1e-12)


def test_straight_line_braking_at_constant_deceleration():
    """300 km/h braking at 4 g for 1.8 s on a straight: speed linear in time, which the local quadratic
    reproduces exactly (1e-9); lateral g 0 on a straight line."""
    v0, a = 300 / 3.6, 4 * G
    t = instants(1.8)
    x = v0 * t - a * t * t / 2
    lap = trace(t, (v0 - a * t) * 3.6, x, np.zeros(len(t)))
    row = build_telemetry_features(lap, season=2023, rnd=1).iloc[0]
    assert row["max_braking_g"] == pytest.approx(-4.0, abs=1e-9)
    assert row["max_accel_g"] == pytest.approx(-4.0, abs=1e-9)  # slowing all the way
    assert row["max_lateral_g"] == pytest.approx(0.0, abs=1e-9)
    # FastF1's rectangle rule (speed at the sample times its interval), the exact integral minus a*sum(dt^2)/2
    dt = np.diff(t)
    assert row["lap_distance_m"] == pytest.approx(x[-1] - x[0] - a * np.sum(dt * dt) / 2, rel=1e-9)


def test_distance_per_lap_at_constant_speed_and_beyond_six_g_is_flagged():
    """Two laps at 216 km/h: each lap's distance is v * its duration (the per-sample Distance restarts at
    every lap); a 40 m circle at that speed is 9.2 g: every sample beyond the design's 6 g is counted. There
    omega*h = 0.75, the smoothing's bias is ~ +0.13 * 0.56 = +7 % (measured +9 %): 12 % tolerance."""
    v, r = 60.0, 40.0
    t1, t2 = instants(20.0), instants(20.0, t0=20.0)
    t = np.concatenate([t1, t2])
    w = v / r
    both = pd.concat([trace(t1, np.full(len(t1), v * 3.6), r * np.cos(w * t1), r * np.sin(w * t1), lap=1),
                      trace(t2, np.full(len(t2), v * 3.6), r * np.cos(w * t2), r * np.sin(w * t2), lap=2)],
                     ignore_index=True)
    out = build_telemetry_features(both, season=2023, rnd=1)
    assert out.dtypes.astype(str).to_dict() == table("telemetry_features").dtypes()
    out = out.set_index("lap_number")
    assert out.loc[1, "lap_distance_m"] == pytest.approx(v * (t1[-1] - t1[0]), rel=1e-12)
    assert out.loc[2, "lap_distance_m"] == pytest.approx(v * (t2[-1] - t2[0]), rel=1e-12)
    assert out.loc[1, "max_lateral_g"] == pytest.approx(v * v / (r * G), rel=0.12)
    assert out["g_over_limit_samples"].tolist() == [len(t1), len(t2)]
    assert ALL["g_force_range"].severity == "WARN"  # the design's bound: flag, never drop
    d = kin.distance_along_laps(np.r_[True, np.zeros(len(t1) - 1, bool), True, np.zeros(len(t2) - 1, bool)],
                                t, np.full(len(t), v * 3.6))
    assert d[0] == 0 and d[len(t1)] == 0 and d[len(t1) - 1] == pytest.approx(v * (t1[-1] - t1[0]))


# ---------------------------------------------------------------------------------------- corners

# the track: a stadium of two straights (500 m) and two semicircles of 30 m; turn 1 (80 km/h) at the
# east end, turn 2 (120 km/h) at the west end; markers at each semicircle's apex (in 1/10 m, as FastF1's)
STRAIGHT, R = 500.0, 30.0
SPEEDS = {"straight": 250.0, "t1": 80.0, "t2": 120.0}
CIRCUIT_JSON = {
    "corners": [
        {"number": 1, "letter": "", "angle": 0.0, "trackPosition": {"x": (STRAIGHT + R) * 10, "y": R * 10}},
        {"number": 2, "letter": "", "angle": 180.0, "trackPosition": {"x": -R * 10, "y": R * 10}},
    ],
    "marshalLights": [], "marshalSectors": [], "rotation": 0.0,
}


def stadium_lap(step_m: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, speed) along one lap, a point every `step_m` metres."""
    xs, ys, vs = [], [], []
    for s in np.arange(0, STRAIGHT, step_m):  # bottom straight, eastwards at y = 0
        xs.append(s), ys.append(0.0), vs.append(SPEEDS["straight"])
    for a in np.arange(-np.pi / 2, np.pi / 2, step_m / R):  # turn 1, centre (500, 30)
        xs.append(STRAIGHT + R * np.cos(a)), ys.append(R + R * np.sin(a)), vs.append(SPEEDS["t1"])
    for s in np.arange(0, STRAIGHT, step_m):  # top straight, westwards at y = 60
        xs.append(STRAIGHT - s), ys.append(2 * R), vs.append(SPEEDS["straight"])
    for a in np.arange(np.pi / 2, 3 * np.pi / 2, step_m / R):  # turn 2, centre (0, 30)
        xs.append(R * np.cos(a)), ys.append(R + R * np.sin(a)), vs.append(SPEEDS["t2"])
    return np.array(xs), np.array(ys), np.array(vs)


def generated_race(laps: int = 2) -> tuple[dict, dict, pd.DataFrame]:
    """FastF1-shaped car data / position of car 44 over `laps` stadium laps, and its laps frame."""
    x, y, v = stadium_lap()
    seg = np.full(len(v), 5.0) / (v / 3.6)  # seconds per 5 m
    t_lap = np.concatenate([[0.0], np.cumsum(seg)[:-1]])
    lap_time = seg.sum()
    t = np.concatenate([t_lap + k * lap_time for k in range(laps)])
    xs, ys, vs = np.tile(x, laps), np.tile(y, laps), np.tile(v, laps)
    date = pd.Timestamp("2018-04-29 12:10")
    car_t, pos_t = np.arange(0, t[-1], 0.22), np.arange(0.07, t[-1], 0.23)
    car = pd.DataFrame({"SessionTime": pd.to_timedelta(car_t, unit="s"), "Speed": np.interp(car_t, t, vs),
                        "RPM": 11000.0, "nGear": 7, "Throttle": 100.0, "Brake": False, "DRS": 0})
    pos = pd.DataFrame({"SessionTime": pd.to_timedelta(pos_t, unit="s"), "X": np.interp(pos_t, t, xs) * 10,
                        "Y": np.interp(pos_t, t, ys) * 10, "Z": 0.0})  # 1/10 m
    for f in (car, pos):
        f["Date"] = date + f["SessionTime"]
    lap_frame = pd.DataFrame({"DriverNumber": "44", "LapNumber": np.arange(1, laps + 1),
                              "LapStartTime": pd.to_timedelta(np.arange(laps) * lap_time, unit="s"),
                              "Time": pd.to_timedelta(np.arange(1, laps + 1) * lap_time, unit="s")})
    return {"44": car}, {"44": pos}, lap_frame


@contextmanager
def circuit_info_server(routes: dict[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 answering `routes` (path → body), 404 otherwise; (base URL, paths asked)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    with http_server(Handler) as base:
        yield f"{base}/mv/api/v1/", asked


@pytest.fixture(scope="module")
def baku(recorded_upstreams, tmp_path_factory):
    """The recorded 2018 Baku race loaded through FastF1 (laps only: no telemetry is recorded)."""
    return load_baku(recorded_upstreams, tmp_path_factory.mktemp("ff1cache"))


def test_corners_from_fastf1_circuit_info_over_http(baku):
    """FastF1 reads the synthesized circuit info of Baku (circuit key 144, 2018) from a local host; the
    two-corner track's laps pass both corners, the slowest being turn 1 at 80 km/h."""
    resource, loaded = baku
    body = json.dumps(CIRCUIT_JSON).encode()
    with circuit_info_server({"/mv/api/v1/circuits/144/2018": body}) as (base, asked):
        got = resource.model_copy(update={"circuit_info_url": base}).circuit_corners(loaded)
    assert asked == ["/mv/api/v1/circuits/144/2018"] and got.reason is None
    assert got.corners["Number"].tolist() == [1, 2] and got.corners["X"].tolist() == [5300.0, -300.0]
    assert got.metadata() == {"circuit_info_url": f"{base}circuits/144/2018", "corners": 2}

    car, pos, laps = generated_race()
    race, _ = merge_race_telemetry(car, pos, laps, {"44": "HAM"}, got.corners)
    assert set(race["Corner"].dropna().unique()) == {1, 2}
    assert list(race.columns) == table("raw_telemetry").column_names
    out = build_telemetry_features(race, season=2018, rnd=4).set_index("lap_number")
    assert out["corners_passed"].tolist() == [2, 2]
    assert out["slowest_corner"].tolist() == [1, 1]
    assert out["min_corner_speed_kmh"].tolist() == pytest.approx([80.0, 80.0], abs=0.5)
    lap_m = 2 * STRAIGHT + 2 * np.pi * R  # 1188.5 m, less the bit before the first / after the last sample
    assert out["lap_distance_m"].tolist() == pytest.approx([lap_m, lap_m], rel=0.02)
    assert out.loc[1, "max_lateral_g"] == pytest.approx((120 / 3.6) ** 2 / (R * G), rel=0.15)  # 3.78 g in turn 2


def test_without_circuit_info_the_corners_are_null_and_the_reason_names_the_host(baku):
    resource, loaded = baku
    with circuit_info_server({}) as (base, asked):  # a host without this recording: 404
        missing = resource.model_copy(update={"circuit_info_url": base}).circuit_corners(loaded)
    assert asked == ["/mv/api/v1/circuits/144/2018"] and missing.corners is None
    assert f"no circuit info at {base}circuits/144/2018" in missing.reason and "F1_CIRCUIT_INFO_URL" in missing.reason
    unreachable = resource.model_copy(update={"circuit_info_url": refused_url("/api/v1/")}).circuit_corners(loaded)
    assert unreachable.corners is None
    assert "unreachable" in unreachable.reason and "ConnectionError" in unreachable.reason
    with pytest.raises(ConfigError, match="F1_CIRCUIT_INFO_URL"):
        resource.model_copy(update={"circuit_info_url": "http://127.0.0.1:9/circuits/"}).circuit_corners(loaded)

    car, pos, laps = generated_race(laps=1)
    race, _ = merge_race_telemetry(car, pos, laps, {"44": "HAM"}, missing.corners)
    assert race["Corner"].isna().all() and race["Distance"].notna().all()
    row = build_telemetry_features(race, season=2018, rnd=4).iloc[0]
    assert pd.isna(row["corners_passed"]) and pd.isna(row["slowest_corner"]) and np.isnan(row["min_corner_speed_kmh"])
    assert row["lap_distance_m"] > 1100 and row["max_lateral_g"] > 1.0  # the rest does not need circuit info


# ------------------------------------------------------------------------- few samples, block-wise sums


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_local_quadratic_with_fewer_samples_than_the_neighbour_offsets(n):
    """A car of 1-5 samples in all (fewer than the 2 * MAX_NEIGHBOURS + 1 offsets) used to crash with
    arrays of different lengths. Below MIN_FIT_SAMPLES: NaN; 5 samples within 0.44 s all see each other,
    and a parabola y = 3 + 2t - 1.5t^2 is reproduced exactly: y' = 2 - 3t, y'' = -3."""
    t = instants(0.5)[:n]  # 0, 0.07, 0.22, 0.30, 0.44
    assert len(t) == n
    y = 3 + 2 * t - 1.5 * t * t
    ((d1, d2),) = kin.local_quadratic(np.full(n, 44), t, [y])
    assert d1.shape == d2.shape == (n,)
    if n < kin.MIN_FIT_SAMPLES:
        assert np.isnan(d1).all() and np.isnan(d2).all()
    else:
        np.testing.assert_allclose(d1, 2 - 3 * t, rtol=0, atol=1e-9)
        np.testing.assert_allclose(d2, np.full(n, -3.0), rtol=0, atol=1e-9)
    # a sample without a value is in no fit: of 5, 4 remain (still exact), the missing one is NaN
    if n == 5:
        y_gap = y.copy()
        y_gap[2] = np.nan
        ((g1, g2),) = kin.local_quadratic(np.full(n, 44), t, [y_gap])
        assert np.isnan(g1[2]) and np.isnan(g2[2])
        keep = np.arange(n) != 2
        np.testing.assert_allclose(g1[keep], (2 - 3 * t)[keep], rtol=0, atol=1e-9)
        # two cars of 2 and 3 samples: neither has enough samples of its own
        ((c1, _),) = kin.local_quadratic(np.array([1, 1, 44, 44, 44]), t, [y])
        assert np.isnan(c1).all()


def test_lap_of_two_samples_through_telemetry_features():
    """A race whose only lap has 2 samples: a row, no g (NULL count), the distance integrated; next to it,
    a car whose lap of 2 samples sits beside a braking lap of another car that keeps its exact answer."""
    t = np.array([0.0, 0.22])
    two = trace(t, np.array([180.0, 180.0]), np.array([0.0, 11.0]), np.array([0.0, 0.0]))
    row = build_telemetry_features(two, season=2023, rnd=1).iloc[0]
    assert np.isnan(row["max_lateral_g"]) and np.isnan(row["max_braking_g"]) and np.isnan(row["max_accel_g"])
    assert pd.isna(row["g_over_limit_samples"])
    assert row["lap_distance_m"] == pytest.approx(50.0 * 0.22, rel=1e-12)
    kin_only = kin.lap_kinematics(lap_samples(two))  # the function telemetry_features calls
    assert np.isnan(kin_only["max_lateral_g"]).all()

    v0, a = 300 / 3.6, 4 * G
    tb = instants(1.8)
    braking = trace(tb, (v0 - a * tb) * 3.6, v0 * tb - a * tb * tb / 2, np.zeros(len(tb)))
    other = two.assign(DriverNumber=1, Driver="ALO")
    out = build_telemetry_features(pd.concat([other, braking], ignore_index=True), season=2023, rnd=1)
    out = out.set_index("driver_number")
    assert np.isnan(out.loc[1, "max_braking_g"]) and pd.isna(out.loc[1, "g_over_limit_samples"])
    assert out.loc[44, "max_braking_g"] == pytest.approx(-4.0, abs=1e-9)


def reference_local_quadratic(car: np.ndarray, t_s: np.ndarray, values: list[np.ndarray],
                              half_window: float = kin.HALF_WINDOW_S) -> list[tuple[np.ndarray, np.ndarray]]:
    """The implementation before the block-wise sums (one pass over all samples per offset), kept verbatim
    as the reference: the new one must agree to 1e-9 relative (it does bit for bit: same sums, same order).
    It needs more samples than offsets (the defect fixed since)."""
    n = len(t_s)
    ok = np.ones(n, dtype=bool)
    for y in values:
        ok &= ~np.isnan(y)
    m = np.zeros((5, n))
    r = np.zeros((len(values), 3, n))
    for k in range(-kin.MAX_NEIGHBOURS, kin.MAX_NEIGHBOURS + 1):
        centre, other = (slice(0, n - k), slice(k, n)) if k >= 0 else (slice(-k, n), slice(0, n + k))
        u = (t_s[other] - t_s[centre]) / half_window
        use = ok[other] & ok[centre] & (car[other] == car[centre]) & (np.abs(u) <= 1.0)
        up = use.astype("float64")
        for p in range(5):
            m[p, centre] += up
            if p < 3:
                for i, y in enumerate(values):
                    r[i, p, centre] += np.where(use, y[other], 0.0) * up
            up *= u
    a00, a01, a02, a11, a12, a22 = m[0], m[1], m[2], m[2], m[3], m[4]
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * (a11 * a22 - a12 * a12) + a01 * c01 + a02 * c02
    good = (m[0] >= kin.MIN_FIT_SAMPLES) & (np.abs(det) > 1e-9 * np.maximum(m[0], 1.0) ** 3)
    out = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(len(values)):
            b = (c01 * r[i, 0] + c11 * r[i, 1] + c12 * r[i, 2]) / det
            c = (c02 * r[i, 0] + c12 * r[i, 1] + c22 * r[i, 2]) / det
            out.append((np.where(good, b / half_window, np.nan), np.where(good, 2.0 * c / half_window**2, np.nan)))
    return out


def realistic_race(cars: int = 20, samples_per_car: int = 3000, seed: int = 0) -> pd.DataFrame:
    """raw_telemetry-shaped samples (DriverNumber, LapNumber, SessionTime, Speed, X, Y) of `cars` cars on
    a 90 s lap of varying curvature, sorted by (driver, time): the merged streams' irregular instants
    (two jittered ~4.5 Hz streams), Speed quantised to 1 km/h, X/Y to 1/10 m, ~1 % of Speed and of X/Y
    missing (X/Y in short runs), and one car of 3 samples between the others (bench/bench_telemetry.py
    uses it for ≈1 M samples)."""
    rng = np.random.default_rng(seed)
    frames = []
    for car in range(1, cars + 1):
        n = 3 if car == cars // 2 else samples_per_car
        span = n * 0.12 + 1.0
        a = np.arange(0.0, span, 0.22) + rng.uniform(-0.01, 0.01, len(np.arange(0.0, span, 0.22)))
        b = np.arange(0.07, span, 0.23) + rng.uniform(-0.01, 0.01, len(np.arange(0.07, span, 0.23)))
        t = np.unique(np.concatenate([a, b]))[:n] + 10.0 + car * 0.37
        phase = 2 * np.pi * t / 90.0 + 0.3 * np.sin(6 * np.pi * t / 90.0)
        speed = np.round(200 + 110 * np.sin(8 * np.pi * t / 90.0 + car) + rng.normal(0, 0.4, n))
        x, y = np.round((3000 * np.cos(phase) + 400 * np.cos(3 * phase)) * 10), np.round(1800 * np.sin(phase) * 10)
        speed[rng.random(n) < 0.01] = np.nan
        gaps = np.flatnonzero(rng.random(n) < 0.004)
        for g in gaps:  # runs of 1-3 missing positions
            x[g:g + 3], y[g:g + 3] = np.nan, np.nan
        frames.append(pd.DataFrame({"DriverNumber": car, "LapNumber": pd.array(t // 90 + 1, dtype="Int64"),
                                    "SessionTime": pd.to_timedelta(t, unit="s"), "Speed": speed, "X": x, "Y": y}))
    return pd.concat(frames, ignore_index=True)


def test_block_wise_sums_agree_with_the_reference_on_a_realistic_trace():
    """20 cars x 3000 samples (60 k: several blocks of kin.BLOCK, boundaries inside cars), NaN gaps and a car
    of 3 samples: every derivative of speed and of the X,Y path agrees with the reference to 1e-9 relative,
    NaN in the same places; lateral / longitudinal g follow."""
    race = realistic_race()
    assert len(race) > 3 * kin.BLOCK
    car = race["DriverNumber"].to_numpy()
    t = kin.seconds(race["SessionTime"])
    speed, x, y = (race[c].to_numpy(float) for c in ("Speed", "X", "Y"))
    for values in ([speed / 3.6], [x * kin.POSITION_UNIT_M, y * kin.POSITION_UNIT_M]):
        got, ref = kin.local_quadratic(car, t, values), reference_local_quadratic(car, t, values)
        for (g1, g2), (r1, r2) in zip(got, ref, strict=True):
            for g, r in ((g1, r1), (g2, r2)):
                assert np.array_equal(np.isnan(g), np.isnan(r))
                assert np.isnan(r).mean() < 0.1  # most samples are fitted: the comparison is not vacuous
                np.testing.assert_allclose(g, r, rtol=1e-9, atol=0)
    lon = kin.longitudinal_g(car, t, speed)
    assert np.nanmax(np.abs(lon)) > 0.5 and np.isnan(lon[car == 10]).all()  # the car of 3 samples: no fit
