"""The new-race sensor, the corrections sensor with feature automation, the calendar sensor and the
weekly schedule — on a real instance against the Jolpica replay server (real 2023 pages)."""

import copy
import datetime as dt
import json
import time

import dagster as dg
import pytest

from f1_assets import definitions, schedules, sensors
from f1_assets.assets import features, ingest_jolpica
from f1_assets_tests.helpers import materialize, materialize_calendar, resources
from f1_assets_tests.jolpica_server import JolpicaReplayServer

pytestmark = pytest.mark.shared_data
SETTLE_FOREVER = 100_000  # days: the recorded 2023 races count as recent


@pytest.fixture
def server(replay_datasets):
    datasets = dict(replay_datasets)
    datasets["current/last/results"] = copy.deepcopy(replay_datasets["2023/1/results"])
    with JolpicaReplayServer(datasets) as srv:
        yield srv


@pytest.fixture
def res(server, duckdb_url, tmp_path):
    return resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, settle_days=SETTLE_FOREVER)


def _tick(sensor, instance, res, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=res) as context:
        start = time.perf_counter()
        result = sensor(context)
        return result, time.perf_counter() - start


def _calendar_without_partitions(instance, res):
    """raw_races for 2023 in the warehouse, but no `races` partitions (as before the race ran)."""
    materialize_calendar(instance, 2023, res)
    for key in instance.get_dynamic_partitions("races"):
        instance.delete_dynamic_partition("races", key)


def test_new_race_adds_partition_and_requests_one_run(instance, res, server):
    _calendar_without_partitions(instance, res)
    server.reset_counts()
    result, seconds = _tick(sensors.new_race_sensor, instance, res)
    print(f"new_race_sensor tick: {seconds * 1000:.0f} ms")
    assert isinstance(result, dg.SensorResult)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("2023-01", "new-race:2023-01")]
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["2023-01"]]
    assert len(server.requests_for("current/last/results")) == 1 == len(server.state.requests)
    cursor = json.loads(result.cursor)
    assert cursor["requested"] == ["2023-01"]

    instance.add_dynamic_partitions("races", ["2023-01"])
    again, _ = _tick(sensors.new_race_sensor, instance, res, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason) and "already requested" in again.skip_message


def test_new_race_waits_for_the_calendar_and_calendar_sensor_requests_it(instance, res):
    result, _ = _tick(sensors.new_race_sensor, instance, res)
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    assert "waiting for raw_races" in result.skip_reason.skip_message
    instance.add_dynamic_partitions("races", ["2023-01"])  # what the daemon does with the add request

    calendar, _ = _tick(sensors.season_calendar_sensor, instance, res)
    assert [(r.partition_key, r.run_key) for r in calendar] == [("2023", "calendar:2023:2023-01")]

    materialize_calendar(instance, 2023, res)
    ready, _ = _tick(sensors.new_race_sensor, instance, res, cursor=result.cursor)
    assert [r.partition_key for r in ready.run_requests] == ["2023-01"]
    assert not ready.dynamic_partitions_requests  # the partition exists by now


def test_already_materialized_race_is_not_requested(instance, res):
    materialize_calendar(instance, 2023, res)
    materialize([ingest_jolpica.raw_results], partition_key="2023-01", instance=instance, resources=res)
    result, _ = _tick(sensors.new_race_sensor, instance, res)
    assert not result.run_requests and "already materialized" in result.skip_reason.skip_message


@pytest.mark.parametrize("trouble", ["500s", "down"])
def test_upstream_trouble_is_a_skip_reason(instance, res, server, trouble):
    if trouble == "500s":
        server.state.faults.fail_500 = 100
    else:
        server.__exit__(None, None, None)
    result, seconds = _tick(sensors.new_race_sensor, instance, res)
    assert isinstance(result, dg.SkipReason), result
    assert "upstream unavailable" in result.skip_message
    assert ("HTTP 500" if trouble == "500s" else "refuses connections") in result.skip_message
    assert seconds < 10


def test_correction_requests_exactly_the_changed_race_and_its_features(instance, res, server):
    materialize_calendar(instance, 2023, res)
    for key in ("2023-01", "2023-10"):
        materialize([*ingest_jolpica.RACE_ASSETS, features.lap_features], partition_key=key,
                    instance=instance, resources=res)
    selection = dg.AssetSelection.assets("lap_features", "telemetry_features")
    baseline = dg.evaluate_automation_conditions(defs=definitions.defs, instance=instance, asset_selection=selection)
    assert baseline.total_requested == 0

    unchanged, _ = _tick(sensors.race_corrections_sensor, instance, res)
    assert not unchanged.run_requests and "unchanged" in unchanged.skip_reason.skip_message

    server.state.datasets["2023/1/results"].items[0]["points"] = "0"  # a post-race penalty upstream
    server.reset_counts()
    result, seconds = _tick(sensors.race_corrections_sensor, instance, res, cursor=unchanged.cursor)
    print(f"race_corrections_sensor tick (2 races, {len(server.state.requests)} requests): {seconds * 1000:.0f} ms")
    assert [(r.partition_key, r.asset_selection) for r in result.run_requests] == [
        ("2023-01", [dg.AssetKey("raw_results"), dg.AssetKey("raw_driver_standings"),
                     dg.AssetKey("raw_constructor_standings")])  # the standings are the results' sum: reloaded
    ]

    # the requested run, then automation: exactly lap_features 2023-01 follows
    materialize([ingest_jolpica.raw_results], partition_key="2023-01", instance=instance, resources=res)
    after = dg.evaluate_automation_conditions(
        defs=definitions.defs, instance=instance, asset_selection=selection, cursor=baseline.cursor
    )
    assert after.get_requested_partitions(dg.AssetKey("lap_features")) == {"2023-01"}
    assert after.total_requested == 1

    settled, _ = _tick(sensors.race_corrections_sensor, instance, res, cursor=result.cursor)
    assert not settled.run_requests  # the new hash is recorded: nothing more to do


def test_weekly_schedule_requests_unsettled_races_of_the_season(instance, res):
    materialize_calendar(instance, 2023, res)  # adds every 2023 race partition; none materialized
    materialize([ingest_jolpica.raw_results], partition_key="2023-01", instance=instance,
                resources=resources(res["warehouse"].url, res["blob_store"].url,
                                    res["jolpica"].base_url, settle_days=0))  # settled
    keys = schedules.unsettled_races(instance, 2023)
    assert "2023-01" not in keys and "2023-10" in keys and len(keys) == 21

    monday = dt.datetime(2023, 11, 27, 2, tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=monday)
    requests = schedules.weekly_unsettled_races(context)
    assert len(requests) == 21 and all(r.run_key.startswith("weekly:2023-11-27:") for r in requests)
