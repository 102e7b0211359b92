"""ML layer: split views, split checks, driver profiles (train split only), profile plot.

Real data: the replayed 2023 Bahrain GP (round 1, 2023-03-05) and British GP (round 10, 2023-07-09)
from the recorded data (`shared_data` fixture). Boundaries are set
per test so the two races land in different splits; everything runs on DuckDB and PostgreSQL.
"""

import base64
import io
import re
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pydantic
import pytest
from PIL import Image

from f1_assets.assets.ml import (
    SplitBounds,
    driver_profiles,
    split_checks,
    split_view_sql,
    split_views,
)
from f1_assets.definitions import build_resources
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import table
from f1_assets.transforms import profiles as prof
from f1_assets.transforms.plots import lap_time_distribution_png
from f1_assets_tests.helpers import materialize, replayed_2023_races

BAHRAIN, BRITISH = "2023-01", "2023-10"
ROWS = {BAHRAIN: 1055, BRITISH: 970}
# Bahrain in train, British in test
SPLIT_A = {"train_end": "2023-03-31", "validation_start": "2023-04-01", "validation_end": "2023-06-30",
           "test_start": "2023-07-01"}
# British moved into train
SPLIT_B = {"train_end": "2023-07-31", "validation_start": "2023-08-01", "validation_end": "2023-09-30",
           "test_start": "2023-10-01"}
# a gap: British (2023-07-09) falls in no split
SPLIT_GAP = {"train_end": "2023-03-31", "validation_start": "2023-04-01", "validation_end": "2023-06-30",
             "test_start": "2023-08-01"}
# low thresholds: with one or two races in train every driver gets the scores the data allows
PROFILE_CFG = {"min_races": 1, "min_attack_laps": 5, "min_pressure_laps": 5}
PARAMS = prof.ProfileParams(**PROFILE_CFG)


@pytest.fixture(scope="module")
def races(shared_data: Path) -> dict[str, dict[str, pd.DataFrame]]:
    out = {f"2023-{rnd:02d}": {k: race[k] for k in ("races", "results", "features")}
           for rnd, race in replayed_2023_races(shared_data).items()}
    assert {k: len(v["features"]) for k, v in out.items()} == ROWS
    return out


def _load(url: str, races: dict[str, dict[str, pd.DataFrame]]) -> None:
    wh = warehouse_from_url(url)
    for data in races.values():
        part = {"season": 2023, "round": int(data["races"]["round"].iloc[0])}
        wh.replace_partitions("raw_races", data["races"], [part])
        wh.replace_partitions("raw_results", data["results"], [part])
        wh.replace_partitions("lap_features", data["features"], [part])


def _run(url: str, instance: dg.DagsterInstance, split: dict | None, selection=None) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"driver_profiles": {"config": PROFILE_CFG}}}
    if split is not None:
        run_config["ops"]["split_views"] = {"config": split}
    return materialize(selection or [split_views, driver_profiles], resources=build_resources(warehouse_url=url),
                       instance=instance, run_config=run_config if selection is None else {}, raise_on_error=False)


def _meta(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {m.asset_key.path[-1]: {k: v.value for k, v in m.materialization.metadata.items()}
            for m in result.get_asset_materialization_events()}


def _checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def _profiles(url: str) -> pd.DataFrame:
    cols = ", ".join(prof.PROFILE_COLUMNS)
    return warehouse_from_url(url).query(f"SELECT {cols} FROM driver_profiles ORDER BY driver_id")


def _assert_same_profiles(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = got.sort_values("driver_id").reset_index(drop=True)
    expected = expected.sort_values("driver_id").reset_index(drop=True)
    assert got["driver_id"].tolist() == expected["driver_id"].tolist()
    for col in ("career_races", "laps_used", "races_used"):
        assert got[col].astype(int).tolist() == expected[col].astype(int).tolist(), col
    for col in prof.SCORES:
        np.testing.assert_allclose(pd.to_numeric(got[col]).astype(float), expected[col].astype(float),
                                   rtol=1e-9, equal_nan=True, err_msg=col)
    assert got["null_reason"].fillna("").tolist() == expected["null_reason"].fillna("").tolist()


# ---------------------------------------------------------------------------------- pure parts


def test_bounds_and_view_sql() -> None:
    b = SplitBounds.from_values(SPLIT_A)
    assert b.ranges()["validation"][0].isoformat() == "2023-04-01"
    text = split_view_sql("duckdb", "validation", *b.ranges()["validation"])
    assert text == ('CREATE OR REPLACE VIEW "validation" AS SELECT * FROM "lap_features" WHERE '
                    "\"race_date\" >= DATE '2023-04-01' AND \"race_date\" <= DATE '2023-06-30'")
    for bad in ({**SPLIT_A, "train_end": "2023-01-01'; DROP TABLE lap_features; --"},
                {**SPLIT_A, "train_end": "2023-02-30"}, {**SPLIT_A, "train_end": "20230101"},
                {**SPLIT_A, "validation_start": "2023-03-31"},  # overlaps train
                {**SPLIT_A, "test_start": "2023-06-01"}):
        with pytest.raises(ValueError):
            SplitBounds.from_values(bad)
    with pytest.raises(ValueError):
        split_view_sql("duckdb", "train; DROP", None, b.train_end)


def test_profile_formulas_on_real_races(races: dict[str, dict[str, pd.DataFrame]]) -> None:
    laps = pd.concat([r["features"] for r in races.values()])
    results = pd.concat([r["results"] for r in races.values()])
    p = prof.driver_profiles(laps, results, PARAMS)
    assert len(p) == 20 and list(p.columns) == prof.PROFILE_COLUMNS
    # relative to the race field: the field's typical driver sits near 1 (consistency), 0 (pressure)
    assert 0.8 < p["consistency"].median() < 1.2 and p["consistency"].notna().all()
    assert abs(p["pressure_response"].median()) < 0.1
    # team-mate relative: in a race, a two-car team's relative degradations cancel
    di = prof.degradation_inputs(prof._prep_laps(laps, PARAMS), results, PARAMS)
    pair_sum = di.groupby(["race_id", "constructor_id"])["rel"].sum()
    assert np.allclose(pair_sum, 0.0)
    assert ((p["data_quality"] > 0.5) & (p["data_quality"] <= 1.0)).all()
    # the British GP safety car (laps 33-38, no FastF1 status) is inferred and not used as clean laps
    prepped = prof._prep_laps(races[BRITISH]["features"], PARAMS)
    assert prepped.loc[prepped["lap_number"].between(33, 38), "neutral"].all()
    assert not prepped.loc[prepped["lap_number"].between(3, 30), "neutral"].any()
    # default thresholds: two races are too few for the per-race scores, with the reason
    strict = prof.driver_profiles(laps, results)
    assert strict["consistency"].isna().all() and strict["tire_management"].isna().all()
    assert strict["null_reason"].str.contains("consistency: 2 race").all()
    assert strict["data_quality"].notna().all()


def _clean_laps(driver: str, times: list[float], race: str = "2023-01", stint: int = 1) -> pd.DataFrame:
    """Prepared-lap rows (the shape `_prep_laps` returns) of consecutive clean laps."""
    n = len(times)
    return pd.DataFrame({"race_id": race, "season": 2023.0, "round": float(race[-2:]), "driver_id": driver,
                         "lap_number": np.arange(2.0, n + 2), "lap_time_ms": np.array(times, dtype=float),
                         "stint": float(stint), "tire_age": np.arange(1.0, n + 1), "clean": True})


def test_consistency_score_is_the_field_spread_over_the_driver_spread() -> None:
    """A's lap-to-lap spread is 100 ms, B's 200 ms: field (median) 150 ms → A 1.5, B 0.75."""
    df = pd.concat([_clean_laps("a", [90_000, 90_100] * 4), _clean_laps("b", [90_000, 90_200] * 4)])
    params = prof.ProfileParams(min_races=1, min_clean_pairs=5)
    drivers = pd.Index(["a", "b", "c"], name="driver_id")
    score, reason = prof.consistency_score(df, params, drivers)
    assert score["a"] == pytest.approx(1.5) and score["b"] == pytest.approx(0.75) and np.isnan(score["c"])
    assert reason["a"] is None and reason["c"].startswith("consistency: 0 race(s) with >= 5 consecutive")
    strict, _ = prof.consistency_score(df, prof.ProfileParams(min_races=1, min_clean_pairs=8), drivers)
    assert strict.isna().all()  # 7 pairs each: below the minimum


def _duels(rows: list[tuple[str, bool, int, bool, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["driver_id", "attack", "passes_made", "pressure", "held"]).assign(
        race_id="2023-01")


def test_aggression_and_pressure_response_against_the_field_rate() -> None:
    """Four attack laps each: A passes twice, B never (field rate 2/8 per lap, 1 pass expected each);
    four pressure laps each: A holds all, B two (field 6/8, 3 expected each)."""
    duels = _duels([("a", True, i % 2, True, True) for i in range(4)]
                   + [("b", True, 0, True, i < 2) for i in range(4)])
    drivers = pd.Index(["a", "b"], name="driver_id")
    params = prof.ProfileParams(min_attack_laps=4, min_pressure_laps=4)
    aggression, why = prof.aggression_score(duels, params, drivers)
    assert aggression.tolist() == [2.0, 0.0] and why.isna().all()
    pressure, why = prof.pressure_response_score(duels, params, drivers)
    assert pressure.tolist() == [0.25, -0.25] and why.isna().all()
    few = prof.ProfileParams(min_attack_laps=5, min_pressure_laps=5)
    aggression, why = prof.aggression_score(duels, few, drivers)
    assert aggression.isna().all()
    assert why["a"] == "aggression: 4 attack lap(s) within 1000 ms of the car ahead, need 5"
    no_pass = duels.assign(passes_made=0)
    _, why = prof.aggression_score(no_pass, params, drivers)
    assert why["a"] == "aggression: the field made no on-track pass in the driver's races"


def test_lap_duels_count_an_on_track_pass_and_the_pressure_before_it() -> None:
    """Lap 1: A leads B by 0.5 s, C 3 s further back; lap 2: B ahead of A."""
    df = pd.DataFrame({"race_id": "2023-01", "driver_id": ["a", "b", "c"] * 2,
                       "lap_number": [1.0] * 3 + [2.0] * 3, "position": [1.0, 2.0, 3.0, 2.0, 1.0, 3.0],
                       "delta_to_next_ms": [0.0, 500.0, 3_000.0, 400.0, 0.0, 3_100.0],
                       "pit_lap": False, "neutral": False})
    duels = prof.lap_duels(df, prof.ProfileParams()).set_index("driver_id")
    assert duels["passes_made"].to_dict() == {"a": 0, "b": 1, "c": 0}
    assert duels["passes_lost"].to_dict() == {"a": 1, "b": 0, "c": 0}
    assert duels["attack"].to_dict() == {"a": False, "b": True, "c": False}  # C was 3 s behind
    assert duels["pressure"].to_dict() == {"a": True, "b": False, "c": False}  # B within 1 s behind A
    assert not duels.loc["a", "held"] and duels.loc["b", "held"]
    neutral = prof.lap_duels(df.assign(neutral=df["lap_number"] == 2), prof.ProfileParams())
    assert neutral.empty  # a neutralised lap is no racing lap for anyone


def test_tire_management_score_relative_to_the_team_mate() -> None:
    """Team-mates: A loses 100 ms per lap of tyre age, B 50 ms → A -50, B +50 (ms per lap)."""
    df = pd.concat([_clean_laps("a", [90_000 + 100 * k for k in range(6)]),
                    _clean_laps("b", [91_000 + 50 * k for k in range(6)]),
                    _clean_laps("c", [92_000 + 70 * k for k in range(6)])])  # no team-mate
    results = pd.DataFrame({"season": 2023, "round": 1, "driver_id": ["a", "b", "c"],
                            "constructor_id": ["red", "red", "blue"]})
    drivers = pd.Index(["a", "b", "c"], name="driver_id")
    score, why = prof.tire_management_score(df, results, prof.ProfileParams(min_races=1), drivers)
    assert score["a"] == pytest.approx(-50.0) and score["b"] == pytest.approx(50.0) and np.isnan(score["c"])
    assert why["c"].startswith("tire_management: 0 race(s) with a team-mate stint comparison")
    short, _ = prof.tire_management_score(df, results, prof.ProfileParams(min_races=1, min_stint_laps=7), drivers)
    assert short.isna().all()  # stints of 6 clean laps are too short


def test_data_quality_score_is_clean_over_completed_laps() -> None:
    results = pd.DataFrame({"season": 2023, "round": [1, 1, 1, 2], "driver_id": ["a", "a", "b", "b"],
                            "laps": [57.0, 57.0, 0.0, 10.0]})  # a's row twice: counted once
    drivers = pd.Index(["a", "b", "c"], name="driver_id")
    score, why = prof.data_quality_score(pd.Series([50, 12, 0], index=drivers), results, drivers)
    assert score["a"] == pytest.approx(50 / 57) and score["b"] == 1.0 and np.isnan(score["c"])  # clipped at 1
    assert why.tolist() == [None, None, "data_quality: no completed lap in raw_results"]


def test_param_fields_build_the_run_config() -> None:
    """The thresholds are listed once (ProfileParams); a Dagster config class built from them takes the
    same run config as before and yields the same params."""
    assert prof.param_fields()["min_races"] == (int, 3) and prof.param_fields()["slow_lap_factor"] == (float, 1.07)
    config_class = pydantic.create_model("ProfileConfig", __base__=dg.Config, **prof.param_fields())
    assert prof.ProfileParams(**config_class(**PROFILE_CFG).model_dump()) == PARAMS
    assert prof.ProfileParams(**config_class().model_dump()) == prof.ProfileParams()
    with pytest.raises(pydantic.ValidationError):
        config_class(min_races="three")


def test_profiles_have_the_declared_columns_and_dtypes(races: dict[str, dict[str, pd.DataFrame]]) -> None:
    p = prof.driver_profiles(races[BAHRAIN]["features"], races[BAHRAIN]["results"], PARAMS)
    declared = table("driver_profiles").dtypes()
    assert "updated_at" in declared and prof.PROFILE_COLUMNS == [c for c in declared if c != "updated_at"]
    assert p.dtypes.astype(str).to_dict() == {c: declared[c] for c in prof.PROFILE_COLUMNS}


def test_lap_time_distribution_png(races: dict[str, dict[str, pd.DataFrame]]) -> None:
    png = lap_time_distribution_png(races[BAHRAIN]["features"])
    width, height = Image.open(io.BytesIO(png)).size
    assert len(png) > 5_000 and width >= 480 and height == 360


# ----------------------------------------------------------------------------------- assets


def test_splits_and_profiles_follow_the_boundaries(warehouse_url: str, races, instance) -> None:
    _load(warehouse_url, races)
    result = _run(warehouse_url, instance, SPLIT_A)
    assert result.success
    meta = _meta(result)
    assert meta["train"]["dagster/row_count"] == ROWS[BAHRAIN] and meta["train"]["race_ids"] == [BAHRAIN]
    assert meta["validation"]["dagster/row_count"] == 0 and meta["validation"]["races"] == 0
    view_columns = [c.name for c in meta["test"]["dagster/column_schema"].columns]
    assert view_columns == warehouse_from_url(warehouse_url).columns("lap_features")
    assert meta["test"]["dagster/row_count"] == ROWS[BRITISH] and meta["test"]["race_ids"] == [BRITISH]
    assert meta["test"]["upper_bound"] == "open" and meta["train"]["upper_bound"] == "2023-03-31"
    checks = _checks(result)
    split_rules = [k for k in checks if k[1] not in ("quality_score", "column_schema_change")]
    assert len(split_rules) == 7
    assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items()}

    # profiles: Bahrain only, identical to the transform on the Bahrain frame alone
    p = meta["driver_profiles"]
    assert p["dagster/row_count"] == 20 and p["train_races"] == 1 and p["train_last_race_date"] == "2023-03-05"
    got = _profiles(warehouse_url)
    assert set(got["last_race_id"]) == {BAHRAIN} and (got["career_races"] == 1).all()
    bahrain_only = prof.driver_profiles(races[BAHRAIN]["features"], races[BAHRAIN]["results"], PARAMS)
    _assert_same_profiles(got, bahrain_only)

    # the plot renders: a PNG of the configured size inside the markdown metadata
    md = p["consistency_vs_aggression"]
    data = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", md).group(1))
    assert len(data) == p["plot_png_bytes"] > 5_000 and Image.open(io.BytesIO(data)).size == (560, 400)

    # move the British GP into train: the profile inputs grow by exactly that race
    result = _run(warehouse_url, instance, SPLIT_B)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    meta = _meta(result)
    assert meta["train"]["race_ids"] == [BAHRAIN, BRITISH] and meta["test"]["dagster/row_count"] == 0
    assert meta["driver_profiles"]["train_rows"] == ROWS[BAHRAIN] + ROWS[BRITISH]
    both = _profiles(warehouse_url)
    assert (both["career_races"] == 2).all() and set(both["last_race_id"]) == {BRITISH}
    assert (both.set_index("driver_id")["laps_used"] > got.set_index("driver_id")["laps_used"]).all()
    all_laps = pd.concat([r["features"] for r in races.values()])
    all_results = pd.concat([r["results"] for r in races.values()])
    _assert_same_profiles(both, prof.driver_profiles(all_laps, all_results, PARAMS))

    # a gap leaves the British GP outside all splits: reported as a WARN with its key, not an error
    result = _run(warehouse_url, instance, SPLIT_GAP)
    checks = _checks(result)
    cover = checks[("train", "every_row_in_one_split")]
    assert not cover.passed and cover.severity == dg.AssetCheckSeverity.WARN
    assert cover.metadata["rows_outside_splits"].value == ROWS[BRITISH]
    assert cover.metadata["races_outside_splits"].value == [BRITISH]
    assert all(e.passed for k, e in checks.items() if k[1] != "every_row_in_one_split")
    assert set(_profiles(warehouse_url)["last_race_id"]) == {BAHRAIN}


def test_checks_fail_when_a_view_leaks(warehouse_url: str, races, instance) -> None:
    _load(warehouse_url, races)
    assert _run(warehouse_url, instance, SPLIT_A).success
    wh = warehouse_from_url(warehouse_url)
    checks_only = dg.AssetSelection.checks(split_checks)

    # train widened to everything: it passes its end, shares a race with test, rows in two splits
    wh.execute('CREATE OR REPLACE VIEW "train" AS SELECT * FROM "lap_features"')
    result = _run(warehouse_url, instance, None, selection=checks_only)
    assert not result.get_asset_materialization_events()  # only the checks ran
    checks = _checks(result)
    failed = {k for k, e in checks.items() if not e.passed}
    assert failed == {("train", "train_ends_by_boundary"), ("train", "no_race_in_another_split"),
                      ("test", "no_race_in_another_split"), ("train", "every_row_in_one_split")}
    end = checks[("train", "train_ends_by_boundary")]
    assert end.severity == dg.AssetCheckSeverity.ERROR and end.metadata["failing_keys"].value == [BRITISH]
    assert end.metadata["failing_rows"].value == ROWS[BRITISH]
    assert checks[("test", "no_race_in_another_split")].metadata["failing_keys"].value == [BRITISH]
    cover = checks[("train", "every_row_in_one_split")]
    assert cover.severity == dg.AssetCheckSeverity.ERROR
    assert cover.metadata["rows_in_several_splits"].value == ROWS[BRITISH]

    # validation starting early (takes the Bahrain race) fails its own check and the overlap check
    wh.execute('CREATE OR REPLACE VIEW "train" AS SELECT * FROM "lap_features" WHERE race_date <= DATE \'2023-03-31\'')
    wh.execute('CREATE OR REPLACE VIEW "validation" AS SELECT * FROM "lap_features" '
               "WHERE race_date >= DATE '2023-03-01' AND race_date <= DATE '2023-06-30'")
    checks = _checks(_run(warehouse_url, instance, None, selection=checks_only))
    failed = {k for k, e in checks.items() if not e.passed}
    assert ("validation", "validation_within_boundaries") in failed
    assert checks[("validation", "validation_within_boundaries")].metadata["failing_keys"].value == [BAHRAIN]
    assert ("train", "no_race_in_another_split") in failed and ("test", "test_starts_at_boundary") not in failed

    # re-materializing the splits repairs the views
    result = _run(warehouse_url, instance, SPLIT_A)
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_a_failing_split_check_blocks_driver_profiles(warehouse_url: str, races, instance) -> None:
    """A race whose rows straddle two splits (a race_date that differs inside one race) fails the blocking
    no_race_in_another_split: driver_profiles is not built on it in that run and keeps its rows."""
    assert all(s.blocking for s in split_checks.check_specs)
    _load(warehouse_url, races)
    assert _run(warehouse_url, instance, SPLIT_A).success
    before = _profiles(warehouse_url)
    assert len(before) == 20

    wh = warehouse_from_url(warehouse_url)
    bahrain = races[BAHRAIN]["features"].copy()
    late = bahrain["lap_number"] > 50  # these rows claim a date inside the test split
    bahrain["race_date"] = bahrain["race_date"].astype("object")
    bahrain.loc[late, "race_date"] = pd.Timestamp("2023-07-09").date()
    wh.replace_partitions("lap_features", bahrain, [{"season": 2023, "round": 1}])

    result = _run(warehouse_url, instance, SPLIT_A)
    assert not result.success
    checks = _checks(result)
    assert not checks[("train", "no_race_in_another_split")].passed
    assert checks[("train", "no_race_in_another_split")].metadata["failing_keys"].value == [BAHRAIN]
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "split_checks" and "blocking" in failure.step_failure_data.error.message
    assert "driver_profiles" not in {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    _assert_same_profiles(_profiles(warehouse_url), before)
