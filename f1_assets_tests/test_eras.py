"""Eras (task 14-D): the era table, per-era standardisation from the train split only, circuit versions.

Pure parts on synthetic data with known answers; the assets (`era_statistics`, the view
`standardised_telemetry_features`, `circuit_versions`) on DuckDB and PostgreSQL, over the real replayed
2023 Bahrain (2023-01) and British (2023-10) GPs' lap_features. Telemetry is recorded nowhere here, so the
telemetry_features rows are synthetic; on the real data alone telemetry_features is empty.
"""

import datetime as dt
import importlib.util
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from f1_assets import migrations
from f1_assets.assets.ml import circuit_versions, era_statistics, split_views, standardised_telemetry_features
from f1_assets.assets.ml.eras import FEATURES, STANDARDISED_VIEW
from f1_assets.definitions import build_resources
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import table
from f1_assets.transforms import eras
from f1_assets_tests.helpers import check_results, metadata_of, replayed_2023_races
from f1_assets_tests.test_migrations import _columns, _structure  # the structure comparison the migration tests use

# Bahrain (2023-03-05) in train, British (2023-07-09) in test
SPLIT = {"train_end": "2023-03-31", "validation_start": "2023-04-01", "validation_end": "2023-06-30",
         "test_start": "2023-07-01"}
ERA_ASSETS = [split_views, era_statistics, standardised_telemetry_features, circuit_versions]


# ------------------------------------------------------------------------- the era table


def test_the_era_table_covers_every_season_from_1950_with_no_gap_or_overlap():
    assert eras.ERAS[0].first_season == 1950 and eras.ERAS[-1].last_season is None
    for before, after in zip(eras.ERAS, eras.ERAS[1:], strict=False):
        assert before.last_season is not None and after.first_season == before.last_season + 1, (before, after)
        assert before.first_season <= before.last_season and before.change
    assert len(set(eras.ERA_NAMES)) == len(eras.ERAS)
    this_year = dt.date.today().year
    seasons = list(range(1950, this_year + 1))
    for season in seasons:
        assert sum(e.covers(season) for e in eras.ERAS) == 1, season
    by_season = dict(zip(seasons, eras.era_of_seasons(seasons), strict=True))
    assert by_season == {s: eras.era_of(s) for s in seasons}
    assert {by_season[1955], by_season[1990], by_season[2014], by_season[2021], by_season[2022],
            by_season[2025]} == {"front_engine", "naturally_aspirated", "hybrid", "ground_effect"}
    assert by_season[2014] == by_season[2021] == "hybrid" and by_season[2022] == "ground_effect"
    assert by_season[2026] == "active_aero" and by_season[1960] == "front_engine" != by_season[1961]
    with pytest.raises(ValueError, match="before the championship"):
        eras.era_of(1949)
    with pytest.raises(ValueError, match="no era for season"):
        eras.era_of_seasons([2020, 1949])
    # the SQL CASE (the view's era) agrees with era_of season by season, and so does the migration's frozen copy
    got = duckdb.connect().execute(
        f"SELECT s, {eras.era_case_sql('s')} FROM range(1950, {this_year + 5}) t(s) ORDER BY s").fetchall()
    assert got == [(s, eras.era_of(s)) for s in range(1950, this_year + 5)]
    path = migrations.SCRIPT_LOCATION / "versions" / "0006_eras.py"
    spec = importlib.util.spec_from_file_location("m0006", path)
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    assert [(n, f, None if last == 9999 else last) for n, f, last in step.ERAS] == [
        (e.name, e.first_season, e.last_season) for e in eras.ERAS]


# ------------------------------------------------------------------------- standardisation (pure)


def _telemetry(season: int, rnd: int, values: dict[str, list[float]]) -> pd.DataFrame:
    """telemetry_features rows of one race: one lap per value, every declared column present."""
    n = len(next(iter(values.values())))
    declared = table("telemetry_features")
    frame = pd.DataFrame({c: np.nan for c in declared.column_names}, index=range(n))
    frame = frame.assign(season=season, round=rnd, race_id=f"{season}-{rnd:02d}", driver_number=1, driver_code="VER",
                         lap_number=np.arange(1, n + 1), sample_count=100, gap_samples=0, interpolated_samples=0,
                         **{"brake_events": 0, **values})
    return declared.conform(frame)


def test_standardisation_on_synthetic_eras_with_known_mean_and_std():
    train = pd.concat([
        _telemetry(2019, 1, {"throttle_mean": [40.0, 50.0, 60.0], "brake_events": [1, 3, 5]}),
        _telemetry(2021, 2, {"throttle_mean": [70.0, 80.0], "brake_events": [7, 9]}),  # hybrid: 40..80
        _telemetry(2022, 1, {"throttle_mean": [55.0, 55.0], "brake_events": [4, 6]}),  # ground effect: std 0
        _telemetry(2026, 1, {"throttle_mean": [90.0], "brake_events": [2]}),  # active aero: n = 1
    ])
    stats = eras.era_statistics(train, ["throttle_mean", "brake_events"]).set_index(["era", "feature"])
    assert len(stats) == 2 * len(eras.ERAS)  # every era has a row per feature, n = 0 where no data
    hybrid = stats.loc[("hybrid", "throttle_mean")]
    assert (hybrid["n"], hybrid["mean"], hybrid["train_races"]) == (5, 60.0, 2)
    assert hybrid["std"] == pytest.approx(np.std([40, 50, 60, 70, 80], ddof=1)) and hybrid["null_reason"] is None
    assert (hybrid["first_season"], hybrid["last_season"]) == (2019, 2021)
    assert stats.loc[("hybrid", "brake_events"), "mean"] == 5.0
    assert stats.loc[("ground_effect", "throttle_mean"), "null_reason"].startswith("std = 0")
    assert stats.loc[("ground_effect", "brake_events"), "std"] == pytest.approx(np.sqrt(2))
    assert stats.loc[("active_aero", "throttle_mean"), "null_reason"] == (
        "n = 1 < 2 train-split values: no standard deviation")
    v8 = stats.loc[("v8", "throttle_mean")]
    assert v8["n"] == 0 and pd.isna(v8["mean"]) and "telemetry exists from 2018" in v8["null_reason"]

    rows = pd.concat([_telemetry(2020, 5, {"throttle_mean": [60.0 + np.std([40, 50, 60, 70, 80], ddof=1)],
                                           "brake_events": [8]}),
                      _telemetry(2023, 3, {"throttle_mean": [70.0], "brake_events": [5]}),
                      _telemetry(2010, 1, {"throttle_mean": [50.0], "brake_events": [1]})], ignore_index=True)
    z = eras.standardise(rows, eras.era_statistics(train, ["throttle_mean", "brake_events"]),
                         ["throttle_mean", "brake_events"])
    assert z["era"].tolist() == ["hybrid", "ground_effect", "v8"]
    assert z.loc[0, "throttle_mean_z"] == pytest.approx(1.0) and z.loc[0, "null_reason"] is None
    assert z.loc[0, "brake_events_z"] == pytest.approx((8 - 5) / np.std([1, 3, 5, 7, 9], ddof=1))
    assert np.isnan(z.loc[1, "throttle_mean_z"]) and z.loc[1, "brake_events_z"] == pytest.approx(0.0)
    assert z.loc[1, "null_reason"].startswith("throttle_mean: std = 0")
    assert z.loc[2, ["throttle_mean_z", "brake_events_z"]].isna().all()
    assert "brake_events: no train-split telemetry" in z.loc[2, "null_reason"]


# ------------------------------------------------------------------------- circuit versions (pure)


def _laps(circuit: str, season: int, rnd: int, metres: float, n: int = 30, noise: float = 0.003) -> pd.DataFrame:
    rng = np.random.default_rng(season * 100 + rnd)
    return pd.DataFrame({"circuit_id": circuit, "season": season, "round": rnd,
                         "lap_distance_m": metres * (1 + rng.uniform(-noise, noise, n))})


def test_a_change_of_lap_distance_beyond_the_threshold_starts_a_circuit_version():
    laps = pd.concat([
        # Yas Marina's 2021 re-profiling: 5,554 m → 5,281 m (-4.9 %)
        *(_laps("yas_marina", s, 22, 5554) for s in (2018, 2019, 2020)),
        *(_laps("yas_marina", s, 22, 5281) for s in (2021, 2022, 2023)),
        # same layout, 0.3 % noise and a 0.5 % drift: one version
        *(_laps("monza", s, 14, 5793 * (1 + 0.001 * (s - 2018))) for s in range(2018, 2024)),
        # Sakhir 2020 on Bahrain's outer loop (same circuitId), then back
        _laps("bahrain", 2019, 2, 5412), _laps("bahrain", 2020, 15, 5412), _laps("bahrain", 2020, 16, 3543),
        _laps("bahrain", 2021, 1, 5412),
        _laps("bahrain", 2022, 1, 4000, n=5),  # too few laps: says nothing
    ])
    v = eras.circuit_versions(laps).set_index("version_id")
    assert sorted(v.index) == ["bahrain@2019", "bahrain@2020", "bahrain@2021", "monza@2018", "yas_marina@2018",
                               "yas_marina@2021"]
    assert v.loc["yas_marina@2021", "change_pct"] == pytest.approx(-4.9, abs=0.2)
    assert (v.loc["yas_marina@2018", "first_season"], v.loc["yas_marina@2018", "last_season"]) == (2018, 2020)
    assert v.loc["yas_marina@2021", "median_lap_distance_m"] == pytest.approx(5281, rel=0.003)
    assert v.loc["yas_marina@2021", ["races", "laps"]].tolist() == [3, 90]
    assert pd.isna(v.loc["monza@2018", "change_pct"]) and v.loc["monza@2018", "races"] == 6
    assert (v.loc["bahrain@2020", "first_round"], v.loc["bahrain@2020", "last_round"]) == (16, 16)
    assert (v.loc["bahrain@2019", "last_season"], v.loc["bahrain@2019", "last_round"]) == (2020, 15)
    assert v.loc["bahrain@2021", "last_season"] == 2021  # the 5-lap 2022 race is ignored
    # a stricter threshold splits Monza's 0.5 % drift; the pure function is the one the asset runs
    assert len(eras.circuit_versions(laps[laps["circuit_id"] == "monza"], threshold_pct=0.2)) > 1
    assert eras.circuit_versions(laps.iloc[:0]).empty


# ------------------------------------------------------------------------- the assets


@pytest.fixture(scope="module")
def real_lap_features(shared_data: Path) -> dict[int, tuple[pd.DataFrame, pd.DataFrame]]:
    """(raw_races row, lap_features) of the replayed 2023 rounds 1 and 10."""
    return {rnd: (race["races"], race["features"]) for rnd, race in replayed_2023_races(shared_data).items()}


def _load_real(url: str, real: dict[int, tuple[pd.DataFrame, pd.DataFrame]]) -> None:
    wh = warehouse_from_url(url)
    wh.replace_partitions("raw_races", pd.concat([race for race, _ in real.values()]), [{"season": 2023}])
    for rnd, (_, features) in real.items():
        wh.replace_partitions("lap_features", features, [{"season": 2023, "round": rnd}])


def _run(url: str, instance: dg.DagsterInstance, selection) -> dg.ExecuteInProcessResult:
    config = {"ops": {"split_views": {"config": SPLIT}}} if split_views in selection else {}
    # only these assets (their upstream are deps, not inputs: nothing to load): much faster than the whole graph
    return dg.materialize(selection, resources=build_resources(warehouse_url=url), instance=instance,
                          run_config=config, raise_on_error=False)


def _stats(url: str) -> pd.DataFrame:
    cols = ", ".join(eras.STATISTICS_COLUMNS)
    return warehouse_from_url(url).query(f"SELECT {cols} FROM era_statistics ORDER BY era, feature")


def test_the_assets_on_the_real_2023_races_without_telemetry(warehouse_url, instance, real_lap_features):
    """telemetry_features is empty for the replayed races: statistics of n = 0 with their reason, an
    empty view, no circuit version — and lap_features carries the era."""
    for _, features in real_lap_features.values():
        assert features["era"].eq("ground_effect").all() and features["era"].notna().all()
    _load_real(warehouse_url, real_lap_features)
    result = _run(warehouse_url, instance, ERA_ASSETS)
    assert result.success
    stats = metadata_of(result, "era_statistics")
    assert stats["dagster/row_count"] == len(eras.ERAS) * len(FEATURES)
    assert (stats["train_telemetry_rows"], stats["usable_pairs"], stats["eras_with_statistics"]) == (0, 0, [])
    assert stats["train_rows_beyond_3_sigma"] == {}
    checks = check_results(result)
    usable = checks[("era_statistics", "era_statistics_usable")]
    assert not usable.passed and usable.description.startswith("no era has train-split telemetry")
    assert checks[("era_statistics", "era_statistics_train_only")].passed
    stored = _stats(warehouse_url)
    assert (stored["n"] == 0).all() and stored["null_reason"].str.contains("from 2018").all()
    view = metadata_of(result, STANDARDISED_VIEW)
    assert view["dagster/row_count"] == 0 and view["empty_reason"] == "telemetry_features has no rows"
    versions = metadata_of(result, "circuit_versions")
    assert versions["dagster/row_count"] == 0 and versions["empty_reason"].startswith("no telemetry lap")
    wh = warehouse_from_url(warehouse_url)
    assert wh.query("SELECT DISTINCT era FROM lap_features")["era"].tolist() == ["ground_effect"]


def test_statistics_come_from_the_train_split_only_and_the_view_standardises_with_them(
        warehouse_url, instance, real_lap_features):
    """Synthetic telemetry for Bahrain 2023 (train), a hybrid-era copy of it as 2021-01 (train) and
    British 2023 (test). Changing a test row leaves era_statistics identical; changing a train row
    does not. The view's z-scores equal `eras.standardise` with the stored statistics."""
    _load_real(warehouse_url, real_lap_features)
    wh = warehouse_from_url(warehouse_url)
    race_2021 = real_lap_features[1][0].assign(season=2021, race_date=dt.date(2021, 3, 28))
    laps_2021 = real_lap_features[1][1].assign(season=2021, race_id="2021-01", race_date=dt.date(2021, 3, 28),
                                                era="hybrid")
    wh.replace_partitions("raw_races", race_2021, [{"season": 2021}])
    wh.replace_partitions("lap_features", laps_2021, [{"season": 2021, "round": 1}])
    rng = np.random.default_rng(14)

    def telemetry(season: int, rnd: int, shift: float, metres: float) -> pd.DataFrame:
        n = 40
        return _telemetry(season, rnd, {
            "throttle_mean": 55 + shift + rng.normal(0, 5, n), "throttle_std": 30 + rng.normal(0, 2, n),
            "brake_events": rng.integers(5, 12, n), "speed_max": 320 + rng.normal(0, 4, n),
            "speed_mean": 210 + shift + rng.normal(0, 3, n), "drs_open_share": rng.uniform(0, 0.3, n),
            "lap_distance_m": metres * (1 + rng.uniform(-0.002, 0.002, n))})

    parts = {(2021, 1): telemetry(2021, 1, 0, 5412), (2023, 1): telemetry(2023, 1, 10, 5412),
             (2023, 10): telemetry(2023, 10, 20, 5891)}
    for (season, rnd), frame in parts.items():
        wh.replace_partitions("telemetry_features", frame, [{"season": season, "round": rnd}])
    result = _run(warehouse_url, instance, ERA_ASSETS)
    assert result.success
    meta = metadata_of(result, "era_statistics")
    assert meta["eras_with_statistics"] == ["ground_effect", "hybrid"] and meta["train_races"] == 2
    assert sorted(meta["train_rows_beyond_3_sigma"]) == sorted(FEATURES[:6])  # the features filled here
    checks = check_results(result)
    assert checks[("era_statistics", "era_statistics_train_only")].passed
    # g-force and corner columns are not filled in this synthetic telemetry: 4 features x 2 eras cannot standardise
    usable = checks[("era_statistics", "era_statistics_usable")]
    assert not usable.passed and usable.metadata["failing_pairs"].value == 8
    before = _stats(warehouse_url)
    hybrid = before[(before["era"] == "hybrid") & (before["feature"] == "throttle_mean")].iloc[0]
    assert hybrid["n"] == 40 and hybrid["mean"] == pytest.approx(parts[(2021, 1)]["throttle_mean"].mean())
    assert hybrid["std"] == pytest.approx(parts[(2021, 1)]["throttle_mean"].std(ddof=1))
    # features declared but not filled here (g-forces, corners) have n = 0 and a reason
    assert set(before.loc[before["null_reason"].isna(), "feature"]) == {
        "throttle_mean", "throttle_std", "brake_events", "speed_max", "speed_mean", "drs_open_share"}

    # the view against the pure standardisation with the stored statistics
    view = wh.query(f"SELECT * FROM {STANDARDISED_VIEW} ORDER BY season, round, lap_number")
    assert len(view) == 120 and view["era"].tolist() == ["hybrid"] * 40 + ["ground_effect"] * 80
    expected = eras.standardise(pd.concat(parts.values(), ignore_index=True), before, FEATURES)
    for feature in FEATURES:
        np.testing.assert_allclose(pd.to_numeric(view[f"{feature}_z"]).astype(float),
                                   expected[f"{feature}_z"].astype(float), rtol=1e-9, atol=1e-12, equal_nan=True)
    assert view["null_reason"].isna().all()  # only undeclared-by-data features are NULL: their values are NULL
    assert abs(pd.to_numeric(view["throttle_mean_z"]).iloc[:40].mean()) < 1e-9  # train rows centre on 0

    # no leakage: a test-split (British GP) row changed wildly leaves the statistics identical...
    changed = parts[(2023, 10)].assign(throttle_mean=99.0, speed_mean=1.0)
    wh.replace_partitions("telemetry_features", changed, [{"season": 2023, "round": 10}])
    assert _run(warehouse_url, instance, [era_statistics]).success
    after = _stats(warehouse_url)
    pd.testing.assert_frame_equal(after, before)
    # ...while a changed train row moves them (the comparison above can fail)
    wh.replace_partitions("telemetry_features", parts[(2023, 1)].assign(throttle_mean=99.0),
                          [{"season": 2023, "round": 1}])
    assert _run(warehouse_url, instance, [era_statistics]).success
    moved = _stats(warehouse_url)
    ge = (moved["era"] == "ground_effect") & (moved["feature"] == "throttle_mean")
    assert moved.loc[ge, "mean"].iloc[0] == 99.0 and moved.loc[ge, "null_reason"].iloc[0].startswith("std = 0")

    # the train view moved (train_end 2021-12-31) after the statistics: the view refuses them and is kept
    view_before = wh.query(f"SELECT * FROM {STANDARDISED_VIEW} ORDER BY season, round, lap_number")
    narrower = {**SPLIT, "train_end": "2021-12-31"}
    assert dg.materialize([split_views], resources=build_resources(warehouse_url=warehouse_url), instance=instance,
                          run_config={"ops": {"split_views": {"config": narrower}}}).success
    refused = _run(warehouse_url, instance, [standardised_telemetry_features])
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure).step_failure_data.error.message
    assert "era_statistics were computed with train_end " + SPLIT["train_end"] in failure
    assert "the train view now ends 2021-12-31" in failure
    pd.testing.assert_frame_equal(wh.query(f"SELECT * FROM {STANDARDISED_VIEW} ORDER BY season, round, lap_number"),
                                  view_before)
    # statistics and view together, as automation runs them: consistent again (only 2021-01 in train now)
    assert _run(warehouse_url, instance, [era_statistics, standardised_telemetry_features]).success
    assert _stats(warehouse_url).groupby("era")["n"].max().to_dict()["ground_effect"] == 0
    assert _run(warehouse_url, instance, [split_views]).success  # back to the test's boundaries

    # circuit versions from the lap distances (Bahrain 2021 and 2023: one version; Silverstone 2023)
    versions = wh.query("SELECT version_id, races, laps, median_lap_distance_m FROM circuit_versions "
                        "ORDER BY version_id")
    assert versions["version_id"].tolist() == ["bahrain@2021", "silverstone@2023"]
    assert versions["races"].astype(int).tolist() == [2, 1]
    assert float(versions["median_lap_distance_m"].iloc[0]) == pytest.approx(5412, rel=0.002)


# ------------------------------------------------------------------------- the migration


def test_migration_0006_gives_existing_rows_their_era_and_matches_a_fresh_warehouse(warehouse_url,
                                                                                     real_lap_features):
    """A warehouse at 0005 holding lap_features rows (2023 and a 2010 copy) upgraded by 0006: every row
    gets its era, the column is NOT NULL, and the structure equals that of a warehouse created at head."""
    wh = warehouse_from_url(warehouse_url)
    assert wh.apply_schema().action == "created"
    at_head = _structure(warehouse_url)
    bahrain = real_lap_features[1][1]
    wh.replace_partitions("lap_features", bahrain, [{"season": 2023, "round": 1}])
    wh.replace_partitions("lap_features", bahrain.assign(season=2010, race_id="2010-01", era="v8"),
                          [{"season": 2010, "round": 1}])
    indexes = [("lap_features_race_date", "race_date"), ("lap_features_driver_id", "driver_id")]
    duck = warehouse_url.startswith("duckdb://")  # DuckDB alters no column of an indexed table
    wh.execute_all([
        *(f"DROP INDEX {name}" for name, _ in indexes if duck),
        "ALTER TABLE lap_features DROP COLUMN era",
        *(f"CREATE INDEX {name} ON lap_features ({col})" for name, col in indexes if duck),
        "DROP TABLE era_statistics", "DROP TABLE circuit_versions", "UPDATE alembic_version SET version_num = '0005'",
    ])
    assert "era" not in _columns(warehouse_url)["lap_features"] and wh.schema_version() == "0005"
    outcome = migrations.upgrade(warehouse_from_url(warehouse_url))
    assert (outcome.action, outcome.from_version, outcome.steps) == ("upgraded", "0005", ("0006_eras",))
    eras_now = wh.query("SELECT season, era, COUNT(*) AS n FROM lap_features GROUP BY season, era ORDER BY season")
    assert eras_now.astype({"season": int, "n": int}).values.tolist() == [
        [2010, "v8", len(bahrain)], [2023, "ground_effect", len(bahrain)]]
    got = _structure(warehouse_url)
    assert got == at_head  # column order aside (PostgreSQL appends a re-added column): asserted next
    assert _columns(warehouse_url)["lap_features"] == table("lap_features").column_names  # era where declared
