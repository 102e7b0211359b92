"""The real 2018 Azerbaijan GP through FastF1's real code path, served by a local HTTP server.

The recorded live-timing streams, FastF1 schedule file and Jolpica results in the recorded data are
served by `livetiming_server` on 127.0.0.1; `FastF1Resource` points FastF1 at it. One load per module.
"""

import json

import pandas as pd
import pytest

from f1_assets.partitions import parse_race_key
from f1_assets.resources.fastf1 import FastF1NoSession, FastF1Resource
from f1_assets.tables import table
from f1_assets.transforms.fastf1_laps import laps_to_rows, stints_by_driver

pytestmark = pytest.mark.shared_data

BAKU = parse_race_key("2018-04")
SAFETY_CAR_LAPS = [*range(1, 6), *range(38, 48)]  # DESIGN.md: SC on laps 1–5 and 38–47
# the second SC came out during the leaders' lap 40 (lapped cars' 38/39): laps every runner had under SC
SC_FOR_EVERY_RUNNER = [*range(1, 6), *range(40, 48)]


def resource_for(recorded_upstreams, cache_dir) -> FastF1Resource:
    return FastF1Resource(
        livetiming_url=recorded_upstreams.livetiming_url,
        schedule_url=recorded_upstreams.schedule_url,
        jolpica_url=recorded_upstreams.jolpica_url,
        cache_dir=str(cache_dir),
    )


@pytest.fixture(scope="module")
def baku(recorded_upstreams, tmp_path_factory):
    return resource_for(recorded_upstreams, tmp_path_factory.mktemp("fastf1-cache")).load_race(BAKU)


@pytest.fixture(scope="module")
def rows(baku):
    return laps_to_rows(baku.session.laps, BAKU.season, BAKU.round, baku.session.results["DriverId"].to_dict())


@pytest.fixture(scope="module")
def jolpica_results(shared_data):
    page = json.loads((shared_data / "jolpica" / "2018@4@results.json").read_text())
    return page["MRData"]["RaceTable"]["Races"][0]["Results"]


def test_loads_through_the_local_server_only(baku, recorded_upstreams):
    assert baku.missing_streams == ()
    asked = set(recorded_upstreams.requests)
    assert "/schedule/schedule_2018.json" in asked and "/jolpica/2018/4/results.json" in asked
    assert any(p.endswith("/2018-04-29_Race/TimingData.jsonStream") for p in asked)


def test_laps_and_drivers(baku, rows, jolpica_results):
    assert len(rows) == 848 and rows["driver_number"].nunique() == 20
    assert list(rows.columns) == table("fastf1_laps").column_names
    assert not rows.duplicated(["driver_number", "lap_number"]).any()
    # every classified driver (and every starter) of Jolpica's results appears, with the same laps
    laps_per_driver = rows.groupby("driver_id")["lap_number"].max()
    for result in jolpica_results:
        driver = result["Driver"]["driverId"]
        assert driver in laps_per_driver.index, driver
        if result["positionText"].isdigit():
            assert laps_per_driver[driver] == int(result["laps"]), driver
    assert rows.loc[rows["driver_code"] == "HAM", "lap_number"].max() == 51
    assert rows["lap_time_ms"].dropna().between(100_000, 300_000).all()


def test_stints_and_compounds_as_fastf1_reports(baku, rows):
    laps = baku.session.laps
    expected = {
        code: [(int(s), c) for s, c in group.dropna(subset=["Stint"]).groupby("Stint")["Compound"].first().items()]
        for code, group in laps.groupby("Driver")
    }
    assert stints_by_driver(rows) == expected
    assert expected["ALO"] == [(1, "SUPERSOFT"), (2, "SOFT"), (3, "ULTRASOFT")]
    # Baku 2018 used three dry compounds: ultrasoft/supersoft/soft → SOFT/MEDIUM/HARD
    mapping = rows.dropna(subset=["compound"]).groupby("compound")["compound_std"].unique()
    assert {k: list(v) for k, v in mapping.items()} == {
        "ULTRASOFT": ["SOFT"], "SUPERSOFT": ["MEDIUM"], "SOFT": ["HARD"]
    }
    assert set(rows.loc[rows["compound"].isna(), "compound_std"]) <= {"UNKNOWN"}
    assert rows["tyre_life"].dropna().ge(1).all()
    assert rows["pit_in_time_ms"].notna().sum() > 0 and rows["pit_out_time_ms"].notna().sum() > 0


def test_safety_car_laps_carry_track_status_4(rows):
    has_sc = rows["track_status"].fillna("").str.contains("4")
    assert sorted(rows.loc[has_sc, "lap_number"].unique()) == SAFETY_CAR_LAPS
    sc = rows[rows["lap_number"].isin(SC_FOR_EVERY_RUNNER)]
    assert len(sc) and sc["track_status"].str.contains("4").all()
    green = rows[rows["lap_number"].isin([10, 20, 30])]
    assert not green["track_status"].str.contains("4").any()


def test_before_2018_no_request(recorded_upstreams, tmp_path):
    before = len(recorded_upstreams.requests)
    with pytest.raises(FastF1NoSession, match="no FastF1 data before 2018"):
        resource_for(recorded_upstreams, tmp_path).load_race(parse_race_key("2017-04"))
    assert len(recorded_upstreams.requests) == before
    assert not any(tmp_path.iterdir())  # not even the cache was touched


def test_cache_lives_where_configured(baku, tmp_path_factory):
    assert isinstance(baku.session.laps, pd.DataFrame)
    import fastf1

    assert "fastf1-cache" in str(fastf1.Cache._CACHE_DIR)  # never ~/.cache/fastf1


def test_lap_features_carry_fastf1_compounds_and_safety_cars(rows, shared_data):
    """lap_features for real Baku 2018: compounds as FastF1 reports them, safety-car laps flagged.

    Jolpica's Baku laps are not recorded (only lap 1), so raw_laps are the same timings in Jolpica's
    shape: driver, lap, lap time, running position from cumulative time."""
    from f1_assets.transforms import jolpica
    from f1_assets.transforms.features import build_lap_features

    path = shared_data / "jolpica" / "2018@4@results.json"
    results = jolpica.parse_results([(str(path), json.loads(path.read_text()))])
    laps = rows[["season", "round", "driver_id", "lap_number", "lap_time_ms"]].copy()
    laps["lap_time_ms"] = laps["lap_time_ms"].fillna(0)
    cumulative = laps.sort_values("lap_number").groupby("driver_id")["lap_time_ms"].cumsum()
    laps["position"] = cumulative.groupby(laps["lap_number"]).rank(method="first").astype("Int64")
    laps["lap_time_ms"] = rows["lap_time_ms"]
    race = {"season": 2018, "round": 4, "race_date": "2018-04-29", "circuit_id": "baku"}
    features = build_lap_features(race, results, laps, jolpica.parse_pit_stops([]), rows)

    assert len(features) == len(rows) == 848
    merged = features.merge(rows, on=["driver_id", "lap_number"], suffixes=("", "_ff1"))
    assert len(merged) == 848
    reported = merged["compound"].fillna("UNKNOWN")
    assert (merged["tire_compound"] == reported).all()
    assert {"ULTRASOFT", "SUPERSOFT", "SOFT"} <= set(merged["tire_compound"])
    assert (merged["stint"] == merged["stint_ff1"]).all()
    sc_laps = set(merged.loc[merged["safety_car"].fillna(False).astype(bool), "lap_number"])
    assert set(range(1, 6)) | set(range(40, 48)) <= sc_laps <= set(range(1, 6)) | set(range(38, 48))
    flagged = merged["outlier_reason"].fillna("").str.contains("safety_car")
    assert (flagged == merged["safety_car"].fillna(False).astype(bool)).all()
