"""Telemetry merge (`f1_assets.transforms.telemetry`) on telemetry generated in FastF1's shape.

There is no real car telemetry in the shared data, so `make_fastf1_telemetry` builds what FastF1's
`session.car_data` / `session.pos_data` / `session.laps` look like (also used by bench/bench_telemetry.py).
"""

import io

import numpy as np
import pandas as pd
import pytest

from f1_assets.assets.ingest_fastf1 import telemetry_checks
from f1_assets.storage.blob import LocalBlobStore, blob_store_from_url
from f1_assets.tables import table
from f1_assets.transforms.telemetry import empty_telemetry, merge_driver, merge_race_telemetry, tag_laps
from f1_assets_tests.gcs_emulator import BUCKET, gcs_emulator

SESSION_START = pd.Timestamp("2018-04-29 12:05:00")


def speed_at(t: np.ndarray) -> np.ndarray:
    return 100.0 + 0.5 * t  # linear in session seconds: interpolation is exact


def make_fastf1_telemetry(
    drivers: dict[str, str],
    laps: int = 5,
    lap_seconds: float = 100.0,
    car_hz: float = 4.0,
    pos_hz: float = 4.4,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """(car_data, pos_data, laps) as FastF1 returns them; session time starts 10 s before lap 1."""
    rng = np.random.default_rng(seed)
    start = 10.0
    end = start + laps * lap_seconds
    car_data, pos_data, lap_rows = {}, {}, []
    for number, code in drivers.items():
        t_car = np.arange(start, end, 1 / car_hz) + rng.uniform(0, 0.01)
        t_pos = np.arange(start + 0.1, end - 0.1, 1 / pos_hz)
        car_data[number] = pd.DataFrame(
            {
                "Date": SESSION_START + pd.to_timedelta(t_car, unit="s"),
                "SessionTime": pd.to_timedelta(t_car, unit="s"),
                "Time": pd.to_timedelta(t_car - start, unit="s"),
                "RPM": 10000 + 10 * t_car,
                "Speed": speed_at(t_car),
                "nGear": (np.floor(t_car) % 8 + 1).astype(int),
                "Throttle": np.clip(rng.normal(70, 20, len(t_car)), 0, 100),
                "Brake": (np.floor(t_car) % 7 == 0),
                "DRS": np.where(np.floor(t_car) % 11 == 0, 12, 0),
                "Source": "car",
            }
        )
        pos_data[number] = pd.DataFrame(
            {
                "Date": SESSION_START + pd.to_timedelta(t_pos, unit="s"),
                "SessionTime": pd.to_timedelta(t_pos, unit="s"),
                "Time": pd.to_timedelta(t_pos - start, unit="s"),
                "X": 2.0 * t_pos,
                "Y": -3.0 * t_pos,
                "Z": np.full(len(t_pos), 5.0),
                "Status": "OnTrack",
                "Source": "pos",
            }
        )
        for lap in range(1, laps + 1):
            lap_rows.append(
                {
                    "Driver": code,
                    "DriverNumber": number,
                    "LapNumber": float(lap),
                    "LapStartTime": pd.Timedelta(seconds=start + (lap - 1) * lap_seconds),
                    "Time": pd.Timedelta(seconds=start + lap * lap_seconds),
                }
            )
    return car_data, pos_data, pd.DataFrame(lap_rows)


DRIVERS = {"44": "HAM", "5": "VET", "77": "BOT"}


@pytest.fixture(scope="module")
def generated():
    return make_fastf1_telemetry(DRIVERS)


def test_columns_and_dtypes(generated):
    car, pos, laps = generated
    race, stats = merge_race_telemetry(car, pos, laps, DRIVERS)
    assert list(race.columns) == table("raw_telemetry").column_names
    dtypes = race.dtypes.astype(str).to_dict()
    assert dtypes == table("raw_telemetry").dtypes()
    assert empty_telemetry().dtypes.astype(str).to_dict() == dtypes  # a race without samples: the same shape
    assert dtypes["DriverNumber"] == "int64" and dtypes["LapNumber"] == "Int64"
    assert dtypes["Date"] == "datetime64[ns]" and dtypes["SessionTime"] == "timedelta64[ns]"
    assert all(dtypes[c] == "float64" for c in ["Speed", "RPM", "nGear", "Throttle", "Brake", "DRS", "X", "Y", "Z"])
    assert dtypes["Interpolated"] == "bool"
    assert set(race["Brake"].dropna().unique()) <= {0.0, 1.0}
    assert stats.drivers == 3 and stats.samples == sum(len(f) for f in [*car.values(), *pos.values()])
    assert stats.rows == len(race) == stats.samples  # instants never coincide in this data
    assert sorted(race["Driver"].unique()) == ["BOT", "HAM", "VET"]


def test_short_gaps_are_interpolated_linearly(generated):
    car, pos, laps = generated
    frame, gaps = merge_driver(car["44"], pos["44"])
    t = frame["SessionTime"].dt.total_seconds().to_numpy()
    inside = (t > t.min() + 0.3) & (t < t.max() - 0.3)
    np.testing.assert_allclose(frame.loc[inside, "Speed"], speed_at(t[inside]), rtol=1e-9)
    np.testing.assert_allclose(frame.loc[inside, "X"], 2.0 * t[inside], rtol=1e-9)
    assert frame.loc[inside, "Interpolated"].all()
    # discrete channels take the previous sample's value, never a blend
    assert set(frame["nGear"].dropna().unique()) <= set(range(1, 9))
    assert gaps <= 2  # only the very first/last instants lack a neighbour of the other stream


def test_long_gaps_stay_null_and_are_counted(generated):
    car, pos, laps = generated
    hole = car["5"][(car["5"]["SessionTime"] > pd.Timedelta(seconds=50))
                    & (car["5"]["SessionTime"] < pd.Timedelta(seconds=53))].index
    car_gap = dict(car, **{"5": car["5"].drop(hole)})
    race, stats = merge_race_telemetry(car_gap, pos, laps, DRIVERS)
    vet = race[race["Driver"] == "VET"]
    t = vet["SessionTime"].dt.total_seconds()
    in_hole = vet[(t > 50.0) & (t < 53.0)]
    assert len(in_hole) > 0 and len(in_hole) == int(((t > 50.0) & (t < 53.0)).sum())
    assert in_hole[["Speed", "RPM", "nGear", "Throttle", "Brake", "DRS"]].isna().all().all()
    assert in_hole[["X", "Y", "Z"]].notna().all().all()  # position had no gap
    _, baseline = merge_race_telemetry(car, pos, laps, DRIVERS)
    kept = car_gap["5"]["SessionTime"].dt.total_seconds()
    before, after = kept[kept < 50.0].max(), kept[kept > 53.0].min()  # the gap is (before, after)
    assert stats.gap_samples - baseline.gap_samples == int(((t > before) & (t < after)).sum())
    # a gap just under 1 s is bridged
    short = car["5"][(car["5"]["SessionTime"] > pd.Timedelta(seconds=80))
                     & (car["5"]["SessionTime"] < pd.Timedelta(seconds=80.4))].index
    bridged, _ = merge_driver(car["5"].drop(short), pos["5"])
    bt = bridged["SessionTime"].dt.total_seconds()
    window = bridged[(bt > 80.0) & (bt < 80.4)]  # car gap ≈ 0.75 s
    assert len(window) and window["Speed"].notna().all() and window["Interpolated"].all()


def test_missing_stream_for_a_driver_leaves_channels_null(generated):
    car, pos, laps = generated
    race, stats = merge_race_telemetry(car, {k: v for k, v in pos.items() if k != "77"}, laps, DRIVERS)
    bot = race[race["Driver"] == "BOT"]
    assert len(bot) == len(car["77"]) and bot[["X", "Y", "Z"]].isna().all().all()
    assert stats.gap_samples >= len(bot)


def test_lap_tagging(generated):
    car, pos, laps = generated
    race, _ = merge_race_telemetry(car, pos, laps, DRIVERS)
    t = race["SessionTime"].dt.total_seconds()
    expected = np.floor((t - 10.0) / 100.0) + 1
    tagged = race["LapNumber"]
    assert tagged.notna().all()
    assert (tagged.astype(int).to_numpy() == expected.astype(int).to_numpy()).all()
    # outside every lap (before lap 1 of that driver) → NA
    sample = pd.DataFrame({"DriverNumber": [44, 44, 5], "SessionTime": pd.to_timedelta([5.0, 150.0, 1000.0], unit="s")})
    assert tag_laps(sample, laps).tolist() == [pd.NA, 2, pd.NA]


def test_telemetry_checks(generated):
    car, pos, laps = generated
    car_bad = dict(car, **{"44": car["44"].assign(Throttle=car["44"]["Throttle"].where(car["44"].index != 3, 120.0))})
    race, _ = merge_race_telemetry(car_bad, {k: v for k, v in pos.items() if k != "77"}, laps, DRIVERS)
    results = pd.DataFrame({"driver_number": [44, 5], "driver_code": ["HAM", "VET"],
                            "driver_id": ["hamilton", "vettel"], "laps": [5, 5]})
    checks = {c.check_name: c for c in telemetry_checks(race, results)}
    assert not checks["throttle_range"].passed
    # the bad sample, and a position instant interpolated next to it
    assert 1 <= checks["throttle_range"].metadata["failing_count"].value <= 2
    assert all(k.startswith("HAM@") for k in checks["throttle_range"].metadata["failing_keys"].value)
    assert checks["speed_range"].passed and checks["gear_range"].passed
    assert checks["lap_numbers_within_race"].passed
    assert not checks["completeness"].passed and checks["completeness"].severity.value == "WARN"
    assert checks["completeness"].metadata["failing_keys"].value[0].startswith("BOT:")
    assert not checks["drivers_in_results"].passed
    assert checks["drivers_in_results"].metadata["failing_keys"].value == [77]


@pytest.fixture(scope="module")
def emulator():
    with gcs_emulator() as host:
        yield host


@pytest.mark.parametrize("backend", ["local", "gcs"])
def test_parquet_round_trip_through_blob_stores(backend, generated, tmp_path, request):
    car, pos, laps = generated
    race, _ = merge_race_telemetry(car, pos, laps, DRIVERS)
    if backend == "gcs":
        request.getfixturevalue("emulator")
        store = blob_store_from_url(f"gs://{BUCKET}/telemetry-{tmp_path.name}")
    else:
        store = LocalBlobStore(tmp_path)
    key = "telemetry/season=2018/round=04/telemetry.parquet"
    buffer = io.BytesIO()
    race.to_parquet(buffer, index=False)
    store.put(key, buffer.getvalue())
    back = pd.read_parquet(io.BytesIO(store.get(key)))
    pd.testing.assert_frame_equal(back, race)
