"""The ML layer's retraining cadence (`sensors.retraining`), evaluated by Dagster's own automation
evaluator on a real instance with real runs against the Jolpica replay server (2023 rounds 1 and 10):

- a new race's lap_features retrains the ML layer, although 20 of the season's 22 race partitions are
  missing (they are registered by the calendar and never materialized here): eager() would wait for them;
- the weekly tick (Monday 06:00 UTC) retrains with no new input;
- nothing is requested twice for the same trigger;
- a failed blocking check on `train` holds `driver_profiles` (built on train) while the splits still follow.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from f1_assets import definitions, sensors
from f1_assets.assets import features, ingest_jolpica
from f1_assets.assets.ml import driver_profiles, split_checks, split_views
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.helpers import materialize, materialize_calendar, resources

pytestmark = pytest.mark.shared_data

ML = ("train", "validation", "test", "driver_profiles")
SPLITS = {"train_end": "2023-03-31", "validation_start": "2023-04-01", "validation_end": "2023-06-30",
          "test_start": "2023-07-01"}
PROFILES = {"min_races": 1, "min_attack_laps": 5, "min_pressure_laps": 5}
TUESDAY = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
MONDAY_BEFORE = dt.datetime(2026, 11, 30, 5, 59, tzinfo=dt.UTC)
MONDAY_AFTER = dt.datetime(2026, 11, 30, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
def res(replay_server, duckdb_url, tmp_path):
    return resources(duckdb_url, str(tmp_path / "blobs"), replay_server.base_url)


class Evaluator:
    """Successive automation ticks over the ML group, as the automation sensor runs them (cursor kept)."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance, self.cursor = instance, None

    def tick(self, when: dt.datetime) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=definitions.defs, instance=self.instance, asset_selection=dg.AssetSelection.groups("ml"),
            cursor=self.cursor, evaluation_time=when,
        )
        self.cursor = result.cursor
        return {k.to_user_string() for k in _requested(result)}


def _requested(result: dg.EvaluateAutomationConditionsResult) -> set[dg.AssetKey]:
    return {dg.AssetKey(name) for name in ML if result.get_num_requested(dg.AssetKey(name))}


def _race(instance, res, key: str) -> None:
    materialize([*ingest_jolpica.RACE_ASSETS, features.lap_features], partition_key=key, instance=instance,
                resources=res)


def _ml(instance, res) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"split_views": {"config": SPLITS}, "driver_profiles": {"config": PROFILES}}}
    return materialize([split_views, driver_profiles], instance=instance, resources=res, run_config=run_config,
                       raise_on_error=False)


def test_every_ml_asset_retrains_by_the_policy() -> None:
    specs = {s.key.to_user_string(): s for s in definitions.defs.resolve_all_asset_specs()}
    for name in ML:
        assert specs[name].automation_condition.get_label() == sensors.retraining().get_label()
    assert specs["lap_features"].automation_condition.get_label() != sensors.retraining().get_label()


def test_new_race_weekly_tick_and_a_failed_blocking_check(instance, res) -> None:
    materialize_calendar(instance, 2023, res, prefetch=False)
    assert len(instance.get_dynamic_partitions("races")) == 22
    _race(instance, res, "2023-01")
    assert _ml(instance, res).success
    ticks = Evaluator(instance)
    assert ticks.tick(TUESDAY) == set()  # first evaluation: nothing new since the ML run

    # a new race lands; 20 of the season's partitions are still missing
    _race(instance, res, "2023-10")
    assert ticks.tick(TUESDAY + dt.timedelta(minutes=1)) == set(ML)
    assert ticks.tick(TUESDAY + dt.timedelta(minutes=2)) == set()  # handled: not requested twice
    assert _ml(instance, res).success

    # the weekly retraining, with no new input
    assert ticks.tick(MONDAY_BEFORE) == set()
    assert ticks.tick(MONDAY_AFTER) == set(ML)
    assert ticks.tick(MONDAY_AFTER + dt.timedelta(minutes=1)) == set()

    # train leaks (every race, past its end date): its blocking split checks fail
    warehouse_from_url(res["warehouse"].url).execute('CREATE OR REPLACE VIEW "train" AS SELECT * FROM "lap_features"')
    checks = materialize(dg.AssetSelection.checks(split_checks), instance=instance, resources=res,
                         raise_on_error=False)
    failed = {e.check_name for e in checks.get_asset_check_evaluations() if not e.passed}
    assert "train_ends_by_boundary" in failed
    # a corrected race: the splits follow (their input passed its checks); driver_profiles, built on the
    # failed train, waits
    materialize([features.lap_features], partition_key="2023-10", instance=instance, resources=res)
    assert ticks.tick(MONDAY_AFTER + dt.timedelta(minutes=2)) == {"train", "validation", "test"}

    # the splits rebuilt: train's checks pass again, and driver_profiles follows
    rebuilt = materialize([split_views], instance=instance, resources=res,
                          run_config={"ops": {"split_views": {"config": SPLITS}}})
    assert all(e.passed for e in rebuilt.get_asset_check_evaluations())
    assert ticks.tick(MONDAY_AFTER + dt.timedelta(minutes=3)) == {"driver_profiles"}
