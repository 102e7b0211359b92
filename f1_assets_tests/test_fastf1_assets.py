"""Materialize `fastf1_laps` and `raw_telemetry` for 2018-04 on DuckDB and PostgreSQL, and bad input.

FastF1 reads the real Baku 2018 race from the local recorded-recorded_upstreams server; the warehouse is a
temp DuckDB file or a throw-away schema on the local PostgreSQL; the blob store a temp directory.
Bad input (a missing stream, an empty session, a malformed jsonStream line) fails with a clear
message and leaves the previous Parquet and warehouse rows as they were.
"""

import io
import json
import types

import dagster as dg
import pandas as pd
import pytest

from f1_assets.assets.ingest_fastf1 import ASSETS, CHECKS, TELEMETRY_PREFIX
from f1_assets.definitions import build_resources
from f1_assets.io_managers import blob_key
from f1_assets.partitions import parse_race_key
from f1_assets.resources.fastf1 import FastF1Resource, LoadedRace
from f1_assets.resources.storage import WarehouseResource
from f1_assets_tests import helpers
from f1_assets_tests.test_telemetry import make_fastf1_telemetry

pytestmark = pytest.mark.shared_data

BAKU = parse_race_key("2018-04")
RACE_DIR = "/livetiming/static/2018/2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race/"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fastf1-cache")


def fastf1_resource(recorded_upstreams, cache_dir) -> FastF1Resource:
    return FastF1Resource(livetiming_url=recorded_upstreams.livetiming_url,
                          schedule_url=recorded_upstreams.schedule_url,
                          jolpica_url=recorded_upstreams.jolpica_url, cache_dir=str(cache_dir))


def jolpica_results(shared_data) -> pd.DataFrame:
    """raw_results rows for 2018-04 from the recorded Jolpica response (what the Jolpica asset writes)."""
    page = json.loads((shared_data / "jolpica" / "2018@4@results.json").read_text())
    rows = []
    for order, r in enumerate(page["MRData"]["RaceTable"]["Races"][0]["Results"], start=1):
        rows.append({
            "season": 2018, "round": 4, "position_order": order, "driver_id": r["Driver"]["driverId"],
            "driver_code": r["Driver"].get("code"), "driver_number": int(r["number"]),
            "given_name": r["Driver"]["givenName"], "family_name": r["Driver"]["familyName"],
            "constructor_id": r["Constructor"]["constructorId"], "grid": int(r["grid"]),
            "position": int(r["position"]) if r["positionText"].isdigit() else None,
            "position_text": r["positionText"], "points": float(r["points"]), "laps": int(r["laps"]),
            "status": r["status"], "time_ms": int(r["Time"]["millis"]) if "Time" in r else None,
            "fastest_lap": None, "fastest_lap_rank": None, "fastest_lap_time_ms": None,
        })
    return pd.DataFrame(rows).astype({"position": "Int64", "time_ms": "Int64", "fastest_lap": "Int64",
                                      "fastest_lap_rank": "Int64", "fastest_lap_time_ms": "Int64"})


def race_resources(fastf1: FastF1Resource, warehouse_url: str, blob_dir) -> dict:
    return {**build_resources(warehouse_url=warehouse_url, blob_url=str(blob_dir)), "fastf1": fastf1}


def materialize(assets, fastf1, warehouse_url, blob_dir, raise_on_error=True, partition_key=BAKU.key):
    """`assets` of one race within the whole graph (raw_results loads from the warehouse)."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("races", [partition_key])
    return helpers.materialize(assets, partition_key=partition_key, instance=instance, raise_on_error=raise_on_error,
                               resources=race_resources(fastf1, warehouse_url, blob_dir))


def materialization(result, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(key)]
    assert len(events) == 1
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_materialize_baku(backend, recorded_upstreams, shared_cache, shared_data, tmp_path, request):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}" if backend == "duckdb" else request.getfixturevalue("module_pg_url")
    wh = WarehouseResource(url=url).get()
    wh.replace_partitions("raw_results", jolpica_results(shared_data), [{"season": 2018, "round": 4}])
    assert CHECKS == [] and len(ASSETS) == 2

    result = materialize(ASSETS, fastf1_resource(recorded_upstreams, shared_cache), url, tmp_path / "blobs")
    assert result.success
    laps_md = materialization(result, "fastf1_laps")
    assert laps_md["dagster/row_count"] == 848 and laps_md["drivers"] == 20
    assert laps_md["missing_streams"] == "none"
    assert [c.name for c in laps_md["dagster/column_schema"].columns][:3] == ["season", "round", "driver_number"]
    assert laps_md["safety_car_laps"] == [*range(1, 6), *range(38, 48)]

    assert wh.count("fastf1_laps", {"season": 2018, "round": 4}) == 848
    stored = wh.read_partition("fastf1_laps", {"season": 2018, "round": 4})
    assert stored["driver_id"].notna().all() and set(stored["compound_std"]) <= {"SOFT", "MEDIUM", "HARD", "UNKNOWN"}
    assert not (tmp_path / "blobs" / "fastf1").exists()  # laps live in the warehouse only (one owner per output)

    # no CarData.z/Position.z recorded for this held 2018 race: empty, and the ERROR check says why
    tel_md = materialization(result, "raw_telemetry")
    assert tel_md["dagster/row_count"] == 0
    assert "CarData.z" in tel_md["empty_reason"] and "Position.z" in tel_md["empty_reason"]
    assert tel_md["live_timing"] == "missing_streams" and tel_md["retryable"] is False
    assert not (tmp_path / "blobs" / blob_key(TELEMETRY_PREFIX, BAKU.key)).exists()

    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    for name in ("lap_numbers_within_race", "drivers_in_results", "live_timing_available"):
        assert checks[("fastf1_laps", name)].passed, name
    # no WeatherData stream is recorded for Baku 2018: optional, so the check passes, and says it
    optional = checks[("fastf1_laps", "live_timing_available")].metadata["optional_missing"].value
    assert optional.startswith("WeatherData: no weather stream recorded"), optional
    live = checks[("raw_telemetry", "live_timing_available")]
    assert not live.passed and live.severity == dg.AssetCheckSeverity.ERROR
    assert live.metadata["missing_streams"].value == "CarData.z, Position.z"
    assert all(e.passed for k, e in checks.items() if k != ("raw_telemetry", "live_timing_available"))
    # 11 rules (weather_ranges on fastf1_laps) + quality_score, column_schema_change, fresh_after_race on both
    assert len(checks) == 17

    # a re-run leaves the same rows
    again = materialize(ASSETS[:1], fastf1_resource(recorded_upstreams, shared_cache), url, tmp_path / "blobs")
    assert again.success and wh.count("fastf1_laps", {"season": 2018, "round": 4}) == 848


BAD_INPUTS = {
    "missing stream": ({RACE_DIR + "TrackStatus.jsonStream": None}, "not served: TrackStatus"),
    "empty timing data": ({RACE_DIR + "TimingData.jsonStream": b""}, "no usable TimingData, TimingAppData"),
    "empty session": ({RACE_DIR + f"{name}.jsonStream": b"" for name in ("DriverList", "TimingData", "TimingAppData")}
                      | {"/jolpica/2018/4/results.json": json.dumps(
                          {"MRData": {"RaceTable": {"season": "2018", "round": "4", "Races": []}}}).encode()},
                      "no usable DriverList"),
    "malformed line": (None, "TimingAppData: 1 of"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_keeps_what_is_stored(case, recorded_upstreams, shared_cache, shared_data, tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    blobs = tmp_path / "blobs"
    assert materialize(ASSETS[:1], fastf1_resource(recorded_upstreams, shared_cache), url, blobs).success
    before = WarehouseResource(url=url).get().read_partition("fastf1_laps", {"season": 2018, "round": 4})

    overrides, message = BAD_INPUTS[case]
    if overrides is None:  # corrupt one line in the middle of TimingAppData
        lines = (shared_data / "livetiming" / RACE_DIR.removeprefix("/livetiming/static/")
                 / "TimingAppData.jsonStream").read_bytes().split(b"\r\n")
        lines[5] = lines[5][:12] + b'{"Lines": {"44": {"Stints"'
        overrides = {RACE_DIR + "TimingAppData.jsonStream": b"\r\n".join(lines)}
    recorded_upstreams.overrides.update(overrides)
    try:  # a fresh cache: the shared one would answer from the good responses
        result = materialize(ASSETS[:1], fastf1_resource(recorded_upstreams, tmp_path / "cache"), url, blobs,
                             raise_on_error=False)
    finally:
        recorded_upstreams.overrides.clear()
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    text = failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)
    assert message in text, text
    assert "nothing was written" in text
    assert WarehouseResource(url=url).get().count("fastf1_laps", {"season": 2018, "round": 4}) == 848
    pd.testing.assert_frame_equal(
        WarehouseResource(url=url).get().read_partition("fastf1_laps", {"season": 2018, "round": 4}), before)
    assert not result.get_asset_materialization_events()
    if case != "malformed line":  # the check names the missing streams (malformed data fails before any check)
        assert "(848 rows) is kept" in text
        live = {e.check_name: e for e in result.get_asset_check_evaluations()}["live_timing_available"]
        assert not live.passed and message.split(": ")[-1].split("no usable ")[-1] in live.metadata[
            "missing_streams"].value


def test_before_2018_materializes_empty(tmp_path):
    nowhere = FastF1Resource(livetiming_url="http://127.0.0.1:9/", schedule_url="http://127.0.0.1:9/",
                             jolpica_url="http://127.0.0.1:9/", cache_dir=str(tmp_path / "c"))
    result = materialize(ASSETS, nowhere, f"duckdb:///{tmp_path / 'w.duckdb'}", tmp_path / "blobs",
                         partition_key="2017-04")
    for key in ("fastf1_laps", "raw_telemetry"):
        md = materialization(result, key)
        assert md["dagster/row_count"] == 0 and md["empty_reason"] == "no FastF1 data before 2018"
        assert md["live_timing"] == "not_applicable"
    assert not list((tmp_path / "blobs").rglob("*.parquet"))
    live = [e for e in result.get_asset_check_evaluations() if e.check_name == "live_timing_available"]
    assert len(live) == 2 and all(e.passed and "not applicable" in e.description for e in live)


class GeneratedTelemetry(FastF1Resource):
    """FastF1 stand-in whose race carries generated car data/position (none is recorded for real)."""

    def load_race(self, race, *, laps=True, telemetry=False):
        car, pos, lap_frame = make_fastf1_telemetry({"44": "HAM", "5": "VET"}, laps=3)
        results = pd.DataFrame({"Abbreviation": ["HAM", "VET"], "DriverId": ["hamilton", "vettel"]},
                               index=["44", "5"])
        session = types.SimpleNamespace(car_data=car, pos_data=pos, laps=lap_frame, results=results,
                                        drivers=["44", "5"], api_path="/generated/", total_laps=3)
        return LoadedRace(race=race, session=session)


def test_raw_telemetry_with_generated_data(tmp_path, shared_data):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    WarehouseResource(url=url).get().replace_partitions("raw_results", jolpica_results(shared_data),
                                                        [{"season": 2018, "round": 4}])
    result = materialize(ASSETS[1:], GeneratedTelemetry(), url, tmp_path / "blobs")
    md = materialization(result, "raw_telemetry")
    frame = pd.read_parquet(io.BytesIO((tmp_path / "blobs" / blob_key(TELEMETRY_PREFIX, BAKU.key)).read_bytes()))
    assert md["dagster/row_count"] == md["rows"] == len(frame) > 0
    assert md["drivers"] == 2 and md["samples"] == len(frame) and md["bytes"] > 0
    assert md["interpolated"] > 0 and md["gap_samples"] >= 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"throttle_range": True, "speed_range": True, "gear_range": True,
                      "lap_numbers_within_race": True, "completeness": True, "drivers_in_results": True,
                      "live_timing_available": True, "quality_score": True, "column_schema_change": True,
                      "fresh_after_race": True}
