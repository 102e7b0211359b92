"""A calendar correction reaches the races it changes: raw_races records a hash per race row, and
`calendar_corrections_sensor` requests raw_sprint_results and lap_features of exactly the races whose
row changed (real 2023 schedule pages on the Jolpica replay server, a real instance)."""

import copy
import shutil

import dagster as dg
import pytest

from f1_assets import sensors
from f1_assets_tests.helpers import materialize_calendar, metadata_of, resources
from f1_assets_tests.jolpica_server import JolpicaReplayServer

pytestmark = pytest.mark.shared_data


def test_calendar_changes_is_pure():
    assert sensors.calendar_changes({"2023-01": "a", "2023-02": "b"}, None) == []
    assert sensors.calendar_changes({"2023-01": "a", "2023-02": "b"}, {"2023-01": "a", "2023-02": "x"}) == ["2023-02"]
    # a new race is not a change
    assert sensors.calendar_changes({"2023-01": "a", "2023-03": "c"}, {"2023-01": "a"}) == []


def _tick(instance, res):
    """The sensor on the latest raw_races materialization (what the daemon passes it)."""
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_races"))
    return sensors.calendar_run_requests(instance, event)


def test_a_moved_race_requests_its_calendar_dependent_assets(replay_datasets, duckdb_url, tmp_path, instance):
    datasets = copy.deepcopy(dict(replay_datasets))
    with JolpicaReplayServer(datasets) as server:
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, settle_days=36_500)
        materialize_calendar(instance, 2023, res, prefetch=False)
        first = metadata_of(materialize_calendar(instance, 2023, res, prefetch=False), "raw_races")["race_rows"]
        assert len(first) == 22

        instance.add_dynamic_partitions("races", ["2023-01", "2023-10"])
        # the first materializations change nothing stored: no request
        assert _tick(instance, res) == []

        schedule = server.state.datasets["2023"]
        moved = next(r for r in schedule.items if r["round"] == "10")
        moved["time"] = "15:00:00Z"  # the upstream corrects round 10's start time
        shutil.rmtree(tmp_path / "blobs")  # a past season's schedule is served from the archive: fetch it anew
        again = metadata_of(materialize_calendar(instance, 2023, res, prefetch=False), "raw_races")["race_rows"]
        assert {k for k in again if again[k] != first[k]} == {"2023-10"}

        assert [(r.partition_key, sorted(k.to_user_string() for k in r.asset_selection))
                for r in _tick(instance, res)] == [("2023-10", ["lap_features", "raw_constructor_standings",
                                                                "raw_driver_standings", "raw_sprint_results"])]
