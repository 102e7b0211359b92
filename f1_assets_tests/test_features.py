"""Feature layer: lap_features / telemetry_features transforms, quality checks, warehouse writes, assets.

Real data: 2023 round 1 (Bahrain) replay pages from the recorded data
(the `shared_data` fixture). Telemetry is generated here in the raw
telemetry Parquet shape (the shared data has no car telemetry).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from f1_assets.assets.features import lap_features, telemetry_features
from f1_assets.checks import features as checks
from f1_assets.checks.rules import LAP_FEATURES, TELEMETRY_FEATURES
from f1_assets.definitions import build_resources
from f1_assets.io_managers import blob_key
from f1_assets.storage.blob import blob_store_from_url
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import TABLES
from f1_assets.transforms import features as feat
from f1_assets.transforms import jolpica
from f1_assets.transforms.features import build_lap_features, build_telemetry_features
from f1_assets_tests.helpers import materialize, replay_pages

BAHRAIN_LAPS = 1055
BAHRAIN_SCHEDULED = 57


@pytest.fixture(scope="module")
def bahrain(shared_data: Path) -> dict[str, pd.DataFrame]:
    replay = shared_data / "jolpica-replay"
    schedule = jolpica.parse_schedule(replay_pages(replay, "ergast@f1@2023.json"))
    return {
        "races": schedule[schedule["round"] == 1].reset_index(drop=True),
        "results": jolpica.parse_results(replay_pages(replay, "ergast@f1@2023@1@results.json")),
        "laps": jolpica.parse_laps(replay_pages(replay, "ergast@f1@2023@1@laps.json")),
        "pit_stops": jolpica.parse_pit_stops(replay_pages(replay, "ergast@f1@2023@1@pitstops.json")),
    }


def _build(b: dict[str, pd.DataFrame], fastf1: pd.DataFrame | None = None) -> pd.DataFrame:
    return build_lap_features(b["races"].iloc[0], b["results"], b["laps"], b["pit_stops"], fastf1)


@pytest.fixture(scope="module")
def features(bahrain: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return _build(bahrain)


# ------------------------------------------------------------------------- lap_features on real data


def test_one_row_per_raw_lap(features: pd.DataFrame, bahrain: dict[str, pd.DataFrame]) -> None:
    assert len(features) == BAHRAIN_LAPS == len(bahrain["laps"])
    # the frame is the declared table: its columns in order, with the declared pandas dtypes
    assert features.dtypes.astype(str).to_dict() == TABLES["lap_features"].dtypes()
    assert list(features.columns) == TABLES["lap_features"].column_names
    assert not features.duplicated(["driver_id", "lap_number"]).any()
    assert set(features["race_id"]) == {"2023-01"}
    assert set(features["circuit_id"]) == {"bahrain"}
    assert features["driver_code"].notna().all() and features["driver_number"].notna().all()
    pd.testing.assert_series_equal(
        features.set_index(["driver_id", "lap_number"])["lap_time_ms"].sort_index(),
        bahrain["laps"].set_index(["driver_id", "lap_number"])["lap_time_ms"].sort_index(),
    )


def test_tire_age_resets_exactly_after_each_logged_stop(features: pd.DataFrame,
                                                        bahrain: dict[str, pd.DataFrame]) -> None:
    stops = bahrain["pit_stops"]
    resets = features[(features["tire_age"] == 1) & (features["lap_number"] > 1)]
    got = set(zip(resets["driver_id"], resets["lap_number"] - 1, strict=True))
    # stops whose out-lap the driver completed (a stop on the retirement lap has no out-lap)
    completed = set(zip(features["driver_id"], features["lap_number"], strict=True))
    expected = {(d, lap) for d, lap in zip(stops["driver_id"], stops["lap"], strict=True)
                if (d, lap + 1) in completed}
    assert got == expected and len(expected) > 40
    # stint = 1 + stops before the lap; age increases by 1 inside a stint
    stint_last = features.groupby("driver_id")["stint"].max()
    n_stops = stops.groupby("driver_id").size().reindex(stint_last.index, fill_value=0)
    completed_stops = pd.Series([sum(1 for d, _ in expected if d == drv) for drv in stint_last.index],
                                index=stint_last.index)
    assert (stint_last == completed_stops + 1).all() and (n_stops >= completed_stops).all()
    within = features.sort_values(["driver_id", "lap_number"]).groupby(["driver_id", "stint"])["tire_age"].diff()
    assert (within.dropna() == 1).all()
    # pit_stop flags exactly the logged in-laps
    flagged = set(zip(*features.loc[features["pit_stop"], ["driver_id", "lap_number"]].to_numpy().T, strict=True))
    assert flagged == set(zip(stops["driver_id"], stops["lap"], strict=True)) & completed


def test_gaps_leader_zero_and_positions_ordered(features: pd.DataFrame) -> None:
    leader = features[features["position"] == 1]
    assert len(leader) == BAHRAIN_SCHEDULED  # one leader per lap
    assert (leader["gap_to_leader_ms"] == 0).all() and (leader["delta_to_next_ms"] == 0).all()
    assert (features["gap_to_leader_ms"] >= 0).all() and (features["delta_to_next_ms"] >= 0).all()
    # along a lap, the gap grows with the position and the deltas sum up to it
    f = features.sort_values(["lap_number", "position"])
    assert (f.groupby("lap_number")["gap_to_leader_ms"].diff().dropna() >= 0).all()
    cum_delta = f.groupby("lap_number")["delta_to_next_ms"].cumsum()
    assert (cum_delta == f["gap_to_leader_ms"]).all()


def test_laps_remaining_and_fuel(features: pd.DataFrame) -> None:
    last = features[features["lap_number"] == BAHRAIN_SCHEDULED]
    assert len(last) > 0 and (last["laps_remaining"] == 0).all()
    assert features["laps_remaining"].min() == 0
    assert (features["laps_remaining"] == BAHRAIN_SCHEDULED - features["lap_number"]).all()
    f = features.sort_values(["driver_id", "lap_number"])
    assert (f.groupby("driver_id")["fuel_remaining"].diff().dropna() < 0).all()  # strictly decreasing
    assert np.allclose(f["fuel_remaining"], 110 * (1 - f["lap_number"] / BAHRAIN_SCHEDULED))
    assert last["fuel_remaining"].abs().max() < 1e-9 and features["fuel_remaining"].max() < 110


def test_outlier_reasons(features: pd.DataFrame, bahrain: dict[str, pd.DataFrame]) -> None:
    reasons = features["outlier_reason"].fillna("")
    assert (features["is_outlier"] == (reasons != "")).all()
    first = features[features["lap_number"] == 1]
    assert first["outlier_reason"].str.contains("first_lap").all()
    assert reasons[features["pit_stop"]].str.contains("in_lap").all()
    assert (reasons.str.contains("in_lap") == features["pit_stop"]).all()
    out_laps = features[(features["tire_age"] == 1) & (features["lap_number"] > 1)]
    assert out_laps["outlier_reason"].str.contains("out_lap").all()
    # 'statistical' really is above mean + 3 sigma of the driver's clean laps
    stat = features[reasons.str.contains("statistical")]
    assert len(stat) > 0
    clean = features[~features["is_outlier"]]
    bound = clean.groupby("driver_id")["lap_time_ms"].agg(lambda s: s.mean() + 3 * s.std())
    assert (stat["lap_time_ms"].to_numpy() > bound.reindex(stat["driver_id"]).to_numpy()).all()
    # no FastF1: track status unknown, never 'safety_car'
    assert features["track_status"].isna().all() and features["safety_car"].isna().all()
    assert not reasons.str.contains("safety_car|vsc|red_flag").any()
    assert set(features["tire_compound"]) == {"UNKNOWN"}


def test_fastf1_laps_flow_through(bahrain: dict[str, pd.DataFrame]) -> None:
    """A hand-made FastF1 laps frame for VER (car 1): compound, stint, status, SC flags."""
    stops = bahrain["pit_stops"]
    ver_stops = sorted(stops.loc[stops["driver_id"] == "max_verstappen", "lap"])
    laps = np.arange(1, BAHRAIN_SCHEDULED + 1)
    stint = 1 + np.searchsorted(np.array(ver_stops), laps, side="left")  # in-lap belongs to the old stint
    compounds = np.array(["SOFT", "SOFT", "HARD", "HARD"])[stint - 1]
    status = np.full(len(laps), "1", dtype=object)
    status[[9, 10]] = "14"   # laps 10-11: safety car
    status[20] = "167"       # lap 21: VSC and its ending
    status[30] = "5"         # lap 31: red flag
    ff = pd.DataFrame({
        "season": 2023, "round": 1, "driver_number": 1, "driver_code": "VER", "driver_id": None,
        "lap_number": laps, "lap_time_ms": None, "stint": stint + 10,  # +10: must come from FastF1
        "compound": compounds, "compound_std": compounds, "fresh_tyre": True, "tyre_life": None,
        "pit_in_time_ms": None, "pit_out_time_ms": None, "track_status": status,
        "is_accurate": True, "deleted": False,
    })
    f = _build(bahrain, ff)
    assert len(f) == BAHRAIN_LAPS
    ver = f[f["driver_id"] == "max_verstappen"].set_index("lap_number")
    assert (ver["tire_compound"].to_numpy() == compounds).all()
    assert (ver["stint"].to_numpy() == stint + 10).all()
    assert ver.loc[10, "track_status"] == "14" and ver.loc[1, "track_status"] == "1"
    assert ver.loc[[10, 11, 21, 31], "safety_car"].all() and not ver.loc[2, "safety_car"]
    assert "safety_car" in ver.loc[10, "outlier_reason"] and "vsc" in ver.loc[21, "outlier_reason"]
    assert "red_flag" in ver.loc[31, "outlier_reason"]
    # tire age restarts with each FastF1 stint
    assert (ver.loc[[s + 1 for s in ver_stops], "tire_age"] == 1).all()
    others = f[f["driver_id"] != "max_verstappen"]
    assert others["track_status"].isna().all() and others["safety_car"].isna().all()
    assert set(others["tire_compound"]) == {"UNKNOWN"}
    # partial FastF1 coverage is a warning: the FastF1 columns are optional, never a reason to block
    assert checks.check_completeness(f, has_fastf1=True).passed
    coverage = checks.check_fastf1_coverage(f, has_fastf1=True)
    assert not coverage.passed and coverage.severity == "WARN"
    assert coverage.metadata["failing_rows"] == BAHRAIN_LAPS - BAHRAIN_SCHEDULED


# ------------------------------------------------------------------------- lap_features, step by step


def _keys(rows: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["driver_id", "lap_number"]).astype({"lap_number": "int64"})


def test_join_lap_inputs_orders_rows_and_adds_identity() -> None:
    race = {"season": 2023, "round": 4, "race_date": "2023-04-30", "circuit_id": "baku"}
    laps = pd.DataFrame({"driver_id": ["b", "a", "a", "c"], "lap_number": [1, 2, 1, 1],
                         "position": [2, 1, 1, 3], "lap_time_ms": [91_000, 90_000, 95_000, 99_000]})
    results = pd.DataFrame({"driver_id": ["a", "b", "a"], "driver_code": ["AAA", "BBB", "XXX"],
                            "driver_number": [1, 2, 9]})
    df = feat.join_lap_inputs(race, results, laps)
    assert list(zip(df["driver_id"], df["lap_number"], strict=True)) == [("a", 1), ("a", 2), ("b", 1), ("c", 1)]
    assert df["lap_time_ms"].tolist() == [95_000, 90_000, 91_000, 99_000]
    assert df["driver_code"].tolist()[:3] == ["AAA", "AAA", "BBB"] and pd.isna(df["driver_code"].iloc[3])
    assert set(df["race_id"]) == {"2023-04"} and df["race_date"].iloc[0] == pd.Timestamp("2023-04-30").date()
    with pytest.raises(ValueError, match="expected one raw_races row, got 2"):
        feat.join_lap_inputs(pd.DataFrame([race, race]), results, laps)


def test_pit_stop_laps_in_out_and_stops_before() -> None:
    """Stops by A on laps 2 and 4 (lap 2 logged twice, lap 4 missing from raw_laps); B never stops."""
    keys = _keys([("a", 1), ("a", 2), ("a", 3), ("a", 5), ("a", 6), ("b", 1), ("b", 2)])
    stops = pd.DataFrame({"driver_id": ["a", "a", "a"], "lap": [2, 2, 4]})
    got = feat.pit_stop_laps(keys, stops)
    assert got["pit_stop"].tolist() == [False, True, False, False, False, False, False]
    assert got["out_lap"].tolist() == [False, False, True, True, False, False, False]
    assert got["stops_before"].tolist() == [0, 0, 1, 2, 2, 0, 0]
    for nothing in (None, stops.iloc[:0]):
        none = feat.pit_stop_laps(keys, nothing)
        assert not none["pit_stop"].any() and not none["out_lap"].any() and (none["stops_before"] == 0).all()


def test_fastf1_columns_join_on_the_car_number() -> None:
    keys = _keys([("a", 1), ("a", 2), ("b", 1)])
    results = pd.DataFrame({"driver_id": ["a", "b"], "driver_number": [1, 2]})
    ff = pd.DataFrame({"driver_number": [1, 1, 2, 2, 7], "lap_number": [1, 1, 2, 1, 1], "stint": [1, 9, 2, 1, 1],
                       "compound": ["SOFT", "HARD", "HARD", "MEDIUM", "WET"],
                       "compound_std": ["SOFT", "HARD", "HARD", "MEDIUM", "WET"],
                       "track_status": ["1", "4", "1", "12", "5"]})
    got = feat.fastf1_lap_columns(keys, ff, results)
    assert got["ff_compound"].tolist()[::2] == ["SOFT", "MEDIUM"] and pd.isna(got["ff_compound"].iloc[1])
    assert got["ff_stint"].tolist()[::2] == [1, 1] and got["ff_track_status"].tolist()[::2] == ["1", "12"]
    assert feat.fastf1_lap_columns(keys, None, results).isna().all().all()


def test_stints_and_tyres_prefer_fastf1_and_age_from_the_stint_start() -> None:
    keys = _keys([("a", n) for n in range(1, 7)])
    fastf1 = pd.DataFrame({"ff_stint": [1.0, 1.0, None, None, 3.0, 3.0],
                           "ff_compound": ["SOFT", "SOFT", None, None, "HARD", "HARD"],
                           "ff_compound_std": ["SOFT", "SOFT", None, None, "HARD", "HARD"]})
    stops_before = pd.Series([0, 0, 1, 1, 1, 2])  # from the pit log: a stop on lap 2
    got = feat.stints_and_tyres(keys, fastf1, stops_before)
    assert got["stint"].tolist() == [1, 1, 2, 2, 3, 3]  # FastF1 where known, else 1 + stops before
    assert got["tire_age"].tolist() == [1, 2, 1, 2, 1, 2]
    assert got["tire_compound"].tolist() == ["SOFT", "SOFT", "UNKNOWN", "UNKNOWN", "HARD", "HARD"]


def test_fuel_and_laps_remaining() -> None:
    laps = pd.Series([1, 25, 50, 60], dtype="int64")
    got = feat.fuel_and_laps_remaining(laps, 50)
    assert np.allclose(got["fuel_remaining"], [110 * 49 / 50, 55.0, 0.0, 0.0])  # clipped at 0 past the flag
    assert got["laps_remaining"].tolist() == [49, 25, 0, -10]
    unknown = feat.fuel_and_laps_remaining(laps, None)
    assert unknown["fuel_remaining"].isna().all() and unknown["laps_remaining"].isna().all()


def test_cumulative_time_and_gaps() -> None:
    """Three cars, two laps: c has no time on lap 1, so its cumulative time and gaps are unknown."""
    driver = pd.Series(["a", "a", "b", "b", "c", "c"])
    lap = pd.Series([1, 2, 1, 2, 1, 2], dtype="int64")
    position = pd.Series([1, 2, 2, 1, 3, 3], dtype="Int64")
    lap_ms = pd.Series([90_000, 92_000, 90_500, 91_000, np.nan, 90_000])
    cum = feat.cumulative_time_ms(driver, lap_ms)
    assert cum.tolist()[:4] == [90_000, 182_000, 90_500, 181_500] and cum.iloc[4:].isna().all()
    got = feat.gaps_ms(lap, position, cum)
    assert got["gap_to_leader_ms"].tolist()[:4] == [0, 500, 500, 0]
    assert got["delta_to_next_ms"].tolist()[:4] == [0, 500, 500, 0]
    assert got.iloc[4:].isna().all().all()


def test_track_status_flags() -> None:
    got = feat.track_status_flags(pd.Series(["1", "24", "5", "67", None, "2"], dtype=object))
    assert got["sc"].tolist() == [False, True, False, False, False, False]
    assert got["red"].tolist() == [False, False, True, False, False, False]
    assert got["vsc"].tolist() == [False, False, False, True, False, False]
    assert got["safety_car"].tolist() == [False, True, True, True, pd.NA, False]
    assert got["track_status"].tolist() == ["1", "24", "5", "67", None, "2"]


def test_neutralised_laps_need_the_whole_field_slow_and_no_status() -> None:
    """Two cars, five laps of 90 s; everyone at 100 s on lap 3 (> 1.05 x 90 s); lap 1 never counts."""
    lap = pd.Series(np.tile(np.arange(1, 6), 2), dtype="int64")
    lap_ms = pd.Series(np.where(lap == 3, 100_000.0, 90_000.0))
    lap_ms[lap == 1] = 120_000.0
    unknown = np.ones(10, dtype=bool)
    pit_lane = np.zeros(10, dtype=bool)
    assert lap[feat.neutralised_laps(lap, lap_ms, unknown, pit_lane)].tolist() == [3, 3]
    unknown[lap.to_numpy() == 3] = False  # FastF1 knows the status: its flags decide instead
    assert not feat.neutralised_laps(lap, lap_ms, unknown, pit_lane).any()


def test_statistical_outliers_above_mean_plus_three_sigma_of_clean_laps() -> None:
    clean_times = [90_000, 90_200, 89_800, 90_100, 89_900, 90_000, 90_200, 89_800]
    lap_ms = pd.Series([*clean_times, 90_300, 95_000, 400_000], dtype="float64")
    clean = np.array([True] * 8 + [False] * 3)
    driver = pd.Series(["a"] * 11)
    bound = np.mean(clean_times) + 3 * np.std(clean_times, ddof=1)  # 90,481 ms
    assert 90_300 < bound < 95_000
    got = feat.statistical_outliers(driver, lap_ms, clean)
    assert got.tolist() == [False] * 9 + [True, False]  # over 300 s is 'too_slow', not statistical


def test_joined_reasons_keep_the_list_order() -> None:
    got = feat.joined_reasons([("x", np.array([True, False, True, False])),
                               ("y", np.array([True, False, False, False])),
                               ("z", np.array([False, False, True, True]))])
    assert got.tolist() == ["x,y", None, "x,z", "z"]


# ------------------------------------------------------------------------- telemetry_features


def _telemetry(speed: tuple[float, float] = (250, 280)) -> pd.DataFrame:
    """Two drivers; driver 1 lap 1 and 2 with known brake/DRS/gap patterns; rows shuffled. Speed rises
    linearly over each lap's samples (10 Hz): 250→280 km/h in 0.9 s is 0.94 g."""
    def lap(driver: int, code: str, lap_number: object, brake: list[float], drs: list[float],
            t0: int) -> pd.DataFrame:
        n = len(brake)
        return pd.DataFrame({
            "DriverNumber": driver, "Driver": code, "LapNumber": pd.array([lap_number] * n, dtype="Int64"),
            "Date": pd.Timestamp("2023-03-05 15:00") + pd.to_timedelta(np.arange(n) * 100 + t0, unit="ms"),
            "SessionTime": pd.to_timedelta(np.arange(n) * 100 + t0, unit="ms"),
            "Speed": np.linspace(*speed, n), "RPM": 10000.0, "nGear": 6.0,
            "Throttle": np.linspace(0, 100, n), "Brake": brake, "DRS": drs,
            "X": 1.0, "Y": 2.0, "Z": 3.0, "Interpolated": False,
        })

    a = lap(1, "VER", 1, [0, 1, 1, 0, 1, 0, 0, 1, 1, 1], [0, 0, 10, 12, 14, 8, 1, 0, 0, 0], 0)
    a.loc[[2, 3], "X"] = np.nan
    a.loc[[3], "Speed"] = np.nan  # same sample as an X gap: counts once
    a.loc[[0, 5, 6], "Interpolated"] = True
    b = lap(1, "VER", 2, [1, 1, 0, 1, 0, np.nan, 1, 0], [14] * 8, 1000)  # starts on: not an event; NaN→on not
    c = lap(44, "HAM", 1, [0] * 5, [np.nan, 0, 0, 10, 10], 0)
    pre = lap(1, "VER", pd.NA, [0, 1, 0], [0, 0, 0], -1000)  # before the start: no lap, not aggregated
    return pd.concat([a, b, c, pre], ignore_index=True).sample(frac=1, random_state=7)


def test_telemetry_features_exact_counts() -> None:
    out = build_telemetry_features(_telemetry(), season=2023, rnd=1)
    assert out.dtypes.astype(str).to_dict() == TABLES["telemetry_features"].dtypes()
    assert list(out.columns) == TABLES["telemetry_features"].column_names
    out = out.set_index(["driver_number", "lap_number"])
    assert len(out) == 3
    a, b, c = out.loc[(1, 1)], out.loc[(1, 2)], out.loc[(44, 1)]
    assert (a["brake_events"], b["brake_events"], c["brake_events"]) == (3, 1, 0)
    assert a["drs_open_share"] == pytest.approx(0.3) and b["drs_open_share"] == 1.0
    assert c["drs_open_share"] == pytest.approx(0.5)  # NaN DRS sample excluded from the denominator
    assert (a["sample_count"], b["sample_count"], c["sample_count"]) == (10, 8, 5)
    # gap = NaN in any channel: a has X twice (Speed on one of them), b a NaN brake, c a NaN DRS
    assert (a["gap_samples"], b["gap_samples"], c["gap_samples"]) == (2, 1, 1)
    assert (a["interpolated_samples"], b["interpolated_samples"]) == (3, 0)
    thr = np.linspace(0, 100, 10)
    assert a["throttle_mean"] == pytest.approx(thr.mean()) and a["throttle_std"] == pytest.approx(thr.std())
    spd = np.delete(np.linspace(250, 280, 10), 3)
    assert a["speed_max"] == 280 and a["speed_mean"] == pytest.approx(spd.mean())
    assert a["driver_code"] == "VER" and c["driver_code"] == "HAM" and set(out["race_id"]) == {"2023-01"}


def test_lap_samples_groups_in_time_order_whatever_the_row_order() -> None:
    tel = pd.DataFrame({"DriverNumber": [44, 1, 1, 1, 1], "LapNumber": pd.array([1, 2, 1, None, 1], dtype="Int64"),
                        "SessionTime": pd.to_timedelta([5, 9, 3, 0, 1], unit="s"),
                        "Brake": [0.0, 1.0, 0.0, 1.0, 1.0], "DRS": [np.nan, 14, 12, 0, 8]})
    s = feat.lap_samples(tel)
    assert s.groups == 3 and s.driver_number.tolist() == [1, 1, 1, 44] and s.lap_number.tolist() == [1, 1, 2, 1]
    assert s.channel("Brake").tolist() == [1.0, 0.0, 1.0, 0.0]  # lap 1 of car 1: t=1 s, then t=3 s
    assert s.gid.tolist() == [0, 0, 1, 2] and s.starts.tolist() == [0, 2, 3]
    assert feat.brake_events(s, s.channel("Brake")).tolist() == [0, 0, 0]  # each lap starts on or stays off
    share = feat.drs_open_share(s, s.channel("DRS"))
    assert share[:2].tolist() == [0.5, 1.0] and np.isnan(share[2])  # car 44: no known DRS code
    mean, std = feat.nan_mean_std(s, np.array([1.0, 3.0, np.nan, 2.0]))
    assert mean[0] == 2.0 and std[0] == 1.0 and np.isnan(mean[1]) and mean[2] == 2.0 and std[2] == 0.0


def test_telemetry_features_empty_and_checks() -> None:
    empty = build_telemetry_features(_telemetry().iloc[:0], season=2023, rnd=1)
    assert empty.empty and list(empty.columns) == TABLES["telemetry_features"].column_names
    assert empty.dtypes.astype(str).to_dict() == TABLES["telemetry_features"].dtypes()
    good = build_telemetry_features(_telemetry(), season=2023, rnd=1)
    assert all(o.passed for o in checks.telemetry_feature_checks(good))
    # 100→300 km/h in 0.9 s is 6.3 g along the track: flagged (WARN), the rows kept
    implausible = build_telemetry_features(_telemetry(speed=(100, 300)), season=2023, rnd=1)
    flagged = {o.name: o for o in checks.telemetry_feature_checks(implausible)}["g_force_range"]
    assert not flagged.passed and flagged.severity == "WARN" and flagged.metadata["failing_rows"] == 3
    assert len(implausible) == len(good)
    bad = good.copy()
    bad.loc[bad.index[0], "throttle_mean"] = 120.0
    bad.loc[bad.index[1], "speed_max"] = 450.0
    outcome = checks.check_telemetry_ranges(bad)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.metadata["failing_rows"] == 2 and len(outcome.metadata["failing_keys"]) == 2


# ------------------------------------------------------------------------- quality checks


def test_checks_pass_on_clean_bahrain(features: pd.DataFrame, bahrain: dict[str, pd.DataFrame]) -> None:
    outcomes = {o.name: o for o in checks.lap_feature_checks(
        features, bahrain["results"], bahrain["pit_stops"], bahrain["races"], has_fastf1=False)}
    assert set(outcomes) == set(LAP_FEATURES)
    for name, o in outcomes.items():
        assert o.severity == LAP_FEATURES[name].severity
        if name != "pit_stops_per_result":
            assert o.passed, (name, o.metadata)
    # real: Norris stopped 6 times in Bahrain 2023 (pneumatic problem) — a warning, not an error
    pits = outcomes["pit_stops_per_result"]
    assert not pits.passed and pits.severity == "WARN" and pits.metadata["failing_keys"] == ["norris/6"]
    assert outcomes["position_range"].metadata["starters"] == 20
    assert outcomes["feature_completeness"].metadata["excluded_columns"] == [
        "air_temp_c", "humidity_pct", "outlier_reason", "rainfall", "safety_car", "sector1_ms", "sector2_ms",
        "sector3_ms", "track_status", "track_temp_c"]


@pytest.mark.parametrize(
    ("check", "column", "value"),
    [
        ("fuel_range", "fuel_remaining", 200.0),
        ("fuel_range", "fuel_remaining", -1.0),
        ("position_range", "position", 21),
        ("position_range", "position", 0),
        ("lap_time_range", "lap_time_ms", 400_000),
        ("lap_time_range", "lap_time_ms", 12_000),
        ("rows_join_race", "race_id", "2023-02"),
        ("lap_features_schema", "tire_compound_std", "PURPLE"),
    ],
)
def test_checks_fail_on_corruption(features: pd.DataFrame, bahrain: dict[str, pd.DataFrame], check: str,
                                   column: str, value: object) -> None:
    bad = features.copy()
    rows = bad.index[[3, 500]]
    bad.loc[rows, column] = value
    outcome = {o.name: o for o in checks.lap_feature_checks(
        bad, bahrain["results"], bahrain["pit_stops"], bahrain["races"], has_fastf1=False)}[check]
    assert not outcome.passed
    assert outcome.severity == LAP_FEATURES[check].severity
    assert outcome.metadata["failing_rows"] == 2
    if check != "lap_features_schema":
        keys = {f"2023/1/{d}/{n}" for d, n in bad.loc[rows, ["driver_id", "lap_number"]].to_numpy()}
        assert set(outcome.metadata["failing_keys"]) == keys


def test_completeness_and_join_failures(features: pd.DataFrame, bahrain: dict[str, pd.DataFrame]) -> None:
    bad = features.copy()
    bad.loc[bad.index[:60], "gap_to_leader_ms"] = pd.NA  # 94.3 % complete
    outcome = checks.check_completeness(bad, has_fastf1=False)
    assert not outcome.passed and outcome.metadata["failing_keys"] == ["gap_to_leader_ms"]
    assert outcome.metadata["completeness"]["gap_to_leader_ms"] == pytest.approx(1 - 60 / BAHRAIN_LAPS, abs=1e-4)
    assert checks.check_completeness(features, has_fastf1=True).passed  # FastF1 columns: coverage, a WARN
    assert not checks.check_fastf1_coverage(features, has_fastf1=True).passed
    assert checks.check_fastf1_coverage(features, has_fastf1=False).passed
    other = bahrain["races"].assign(round=2)
    joined = checks.check_rows_join_race(features, other)
    assert not joined.passed and joined.metadata["failing_rows"] == BAHRAIN_LAPS
    assert len(joined.metadata["failing_keys"]) == checks.MAX_KEYS


def test_starters_excludes_non_starters(bahrain: dict[str, pd.DataFrame]) -> None:
    res = bahrain["results"].copy()
    res.loc[res.index[-1], ["status", "position_text"]] = ["Did not start", "W"]
    res.loc[res.index[-2], "grid"] = pd.NA
    assert checks.starters(res) == 18


# ------------------------------------------------------------------------- warehouse + assets


def test_write_twice_no_duplicates(features: pd.DataFrame, warehouse_url: str) -> None:
    wh = warehouse_from_url(warehouse_url)
    part = {"season": 2023, "round": 1}
    for _ in range(2):
        assert wh.replace_partitions("lap_features", features, [part]) == BAHRAIN_LAPS
        assert wh.count("lap_features", part) == BAHRAIN_LAPS
    back = wh.read_partition("lap_features", part)
    assert list(back.columns) == TABLES["lap_features"].column_names
    back = back.set_index(["driver_id", "lap_number"]).sort_index()
    mine = features.set_index(["driver_id", "lap_number"]).sort_index()
    assert (back["gap_to_leader_ms"].astype("int64") == mine["gap_to_leader_ms"].astype("int64")).all()
    assert back["outlier_reason"].fillna("").tolist() == mine["outlier_reason"].fillna("").tolist()
    tel = build_telemetry_features(_telemetry(), season=2023, rnd=1)
    for _ in range(2):
        wh.replace_partitions("telemetry_features", tel, [part])
    assert wh.count("telemetry_features", part) == 3


def _stored_raw_tables(url: str, bahrain: dict[str, pd.DataFrame]):
    """A warehouse at `url` holding the race's raw tables (the lap_features inputs)."""
    wh = warehouse_from_url(url)
    for name, key in (("raw_races", "races"), ("raw_results", "results"), ("raw_laps", "laps"),
                      ("raw_pit_stops", "pit_stops")):
        wh.replace_partitions(name, bahrain[key], [{"season": 2023, "round": 1}])
    return wh


def test_assets_materialize(bahrain: dict[str, pd.DataFrame], features: pd.DataFrame, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = _stored_raw_tables(url, bahrain)
    part = {"season": 2023, "round": 1}
    blobs = blob_store_from_url(str(tmp_path / "blobs"))
    buf = _telemetry().to_parquet(index=False)
    blobs.put(blob_key("telemetry", "2023-01"), buf)
    resources = build_resources(warehouse_url=url, blob_url=str(tmp_path / "blobs"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("races", ["2023-01", "2023-02"])
        result = materialize([lap_features, telemetry_features], partition_key="2023-01",
                             resources=resources, instance=instance)
        assert result.success
        evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
        # the rules of both families, plus each asset's quality score, schema drift and freshness checks
        assert set(evals) == {*LAP_FEATURES, *TELEMETRY_FEATURES, "quality_score", "column_schema_change",
                              "fresh_after_race"}
        assert not evals["pit_stops_per_result"].passed and evals["fuel_range"].passed
        mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
        meta = mats["lap_features"].materialization.metadata
        assert meta["dagster/row_count"].value == BAHRAIN_LAPS
        # the per-race lap-time distribution renders in the UI as a PNG inside markdown
        png = base64.b64decode(meta["lap_time_distribution"].value.split("base64,", 1)[1].split(")", 1)[0])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and min(Image.open(io.BytesIO(png)).size) >= 200
        assert mats["telemetry_features"].materialization.metadata["dagster/row_count"].value == 3
        assert wh.count("lap_features", part) == BAHRAIN_LAPS

        # a 2018+ race without raw telemetry: telemetry_features waits (no materialization, an observation)
        waiting = materialize([telemetry_features], partition_key="2023-02", resources=resources,
                              instance=instance)
        assert waiting.success and not waiting.get_asset_materialization_events()
        observed = [e for e in waiting.all_events if e.event_type_value == "ASSET_OBSERVATION"]
        assert "no raw telemetry" in observed[0].asset_observation_data.asset_observation.metadata["reason"].value
        assert "2023-02" not in instance.get_materialized_partitions(dg.AssetKey("telemetry_features"))

        # before 2018 there is no telemetry to wait for: empty, with the reason
        instance.add_dynamic_partitions("races", ["2017-04"])
        empty = materialize([telemetry_features], partition_key="2017-04", resources=resources,
                            instance=instance)
        meta = empty.get_asset_materialization_events()[0].materialization.metadata
        assert meta["dagster/row_count"].value == 0 and "before 2018" in meta["empty_reason"].value


def test_a_failing_error_rule_blocks_and_keeps_the_stored_rows(bahrain: dict[str, pd.DataFrame],
                                                                tmp_path: Path) -> None:
    """position_range (ERROR, blocking) fails on the new input: nothing written, the step fails naming the
    rule and its keys, no materialization, and a downstream asset in the same run is not built."""
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = _stored_raw_tables(url, bahrain)
    part = {"season": 2023, "round": 1}
    resources = build_resources(warehouse_url=url, blob_url=str(tmp_path / "b"))

    @dg.asset(partitions_def=lap_features.partitions_def, deps=[lap_features])
    def downstream() -> None:
        pass

    assert [s.blocking for s in lap_features.check_specs] == [
        r.severity == "ERROR" for r in LAP_FEATURES.values()] + [False]  # + quality_score (WARN)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("races", ["2023-01"])
        assert materialize([lap_features, downstream], extra_assets=[downstream], partition_key="2023-01",
                           resources=resources, instance=instance).success
        before = wh.read_partition("lap_features", part)
        assert len(before) == BAHRAIN_LAPS

        laps = bahrain["laps"].copy()
        laps.loc[laps.index[[10, 20]], "position"] = 99  # more than the 20 starters
        wh.replace_partitions("raw_laps", laps, [part])
        result = materialize([lap_features, downstream], extra_assets=[downstream], partition_key="2023-01",
                             resources=resources, instance=instance, raise_on_error=False)
        assert not result.success and not result.get_asset_materialization_events()
        failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "lap_features")
        message = failure.step_failure_data.error.message
        bad = laps.loc[laps.index[[10, 20]]]
        assert "position_range (2 failing" in message and "(1055 rows) is kept" in message
        assert f"2023/1/{bad['driver_id'].iloc[0]}/{bad['lap_number'].iloc[0]}" in message
        evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not evals["position_range"].passed and evals["fuel_range"].passed
        assert "downstream" not in {e.step_key for e in result.all_events if e.is_step_success}
        after = wh.read_partition("lap_features", part)
        pd.testing.assert_frame_equal(after, before)


def test_neutralised_laps_are_seen_in_the_timing_without_fastf1(shared_data: Path, features: pd.DataFrame) -> None:
    """British GP 2023: the safety car after Magnussen's stop (laps 33-38) slows the whole field."""
    replay = shared_data / "jolpica-replay"
    schedule = jolpica.parse_schedule(replay_pages(replay, "ergast@f1@2023.json"))

    def pages(endpoint: str) -> list:
        return replay_pages(replay, f"ergast@f1@2023@10@{endpoint}.json")

    british = build_lap_features(schedule[schedule["round"] == 10].iloc[0], jolpica.parse_results(pages("results")),
                                 jolpica.parse_laps(pages("laps")), jolpica.parse_pit_stops(pages("pitstops")), None)
    flagged = british["outlier_reason"].fillna("").str.contains("neutralised")
    laps = set(british.loc[flagged, "lap_number"])
    assert set(range(33, 39)) <= laps and len(laps) <= 8
    # every car on those laps, not just some
    assert flagged[british["lap_number"].between(34, 37)].all()
    # Bahrain: green racing apart from the brief neutralisation when Leclerc stopped (lap 41)
    bahrain_laps = set(features.loc[features["outlier_reason"].fillna("").str.contains("neutralised"), "lap_number"])
    assert bahrain_laps <= {41, 42}
