"""The data quality score (f1_assets/transforms/quality.py), its `quality_score` check and metadata, the
tables' `expected` attribute, and the schema-drift checks.

Pure tests of the formula on small frames; then real runs on a real Dagster instance and DuckDB: the
recorded 2023 Bahrain race through the replay server (known NULLs, all in sparse columns: score 100),
a synthetic race with a pit stop without duration and lap times over 300 s (WARN, naming them), the
same races as one batch (minimum and worst partitions), the raw telemetry Parquet, and a column added
between two materializations of a table (the column-schema-change check fails, WARN).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from f1_assets.assets import features, ingest_fastf1, ingest_jolpica
from f1_assets.checks import rules
from f1_assets.definitions import defs
from f1_assets.io_managers import blob_key
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import Column, Table, table
from f1_assets.transforms import quality
from f1_assets.transforms.quality import quality_report
from f1_assets_tests.helpers import (
    check_results,
    materialize,
    materialize_calendar,
    metadata_of,
    resources,
    synthetic_race,
    synthetic_schedule,
)
from f1_assets_tests.jolpica_server import JolpicaReplayServer

TABLE_ASSETS = ["raw_races", "raw_results", "raw_qualifying", "raw_sprint_results", "raw_laps", "raw_pit_stops",
                "raw_driver_standings", "raw_constructor_standings", "fastf1_laps", "raw_telemetry", "lap_features",
                "telemetry_features", "driver_profiles", "era_statistics", "circuit_versions"]
VIEWS = ["train", "validation", "test", "standardised_telemetry_features"]  # drift checked, no score of their own


def _pit_stops(n: int, season: int = 2023, missing_duration: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "season": season, "round": 1, "driver_id": [f"d{i}" for i in range(n)], "stop": 1, "lap": 10,
        "time_of_day": "14:00:00",
        "duration_ms": pd.array([None] * missing_duration + [22_000] * (n - missing_duration), dtype="Int64"),
    })


def _laps(n: int, slow: int = 0, no_position: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "season": 2023, "round": 1, "driver_id": "d", "lap_number": range(1, n + 1),
        "position": pd.array([None] * no_position + [1] * (n - no_position), dtype="Int64"),
        "lap_time_ms": [310_000] * slow + [90_000] * (n - slow),
    })


# ------------------------------------------------------------------------------- the formula


def test_a_complete_clean_partition_scores_100():
    report = quality_report(_pit_stops(20), table("raw_pit_stops"), 2023, "2023-01")
    assert report.score == 100.0 and report.passed and report.low_columns == {}
    assert report.expected == ("time_of_day", "duration_ms")  # NOT NULL columns are not counted
    assert set(report.completeness.values()) == {1.0} and set(report.null_counts.values()) == {0}
    empty = quality_report(_pit_stops(0), table("raw_pit_stops"), 2023)
    assert empty.score == 100.0 and empty.rows == 0  # no rows: nothing missing (has_rows judges emptiness)


def test_known_nulls_and_outliers_give_the_score_of_the_formula():
    # 3 of 20 durations NULL: 100 x 17/20
    report = quality_report(_pit_stops(20, missing_duration=3), table("raw_pit_stops"), 2023)
    assert report.null_counts["duration_ms"] == 3 and report.completeness["duration_ms"] == 0.85
    assert report.score == 85.0 and not report.passed
    assert report.low_columns == {"duration_ms": 0.85} and report.pulled_down_by() == ["duration_ms 85.0%"]
    # the threshold: 19/20 filled is 95 % (passes), 18/20 is not
    assert quality_report(_pit_stops(20, missing_duration=1), table("raw_pit_stops"), 2023).score == 95.0
    assert quality_report(_pit_stops(20, missing_duration=2), table("raw_pit_stops"), 2023).score == 90.0
    # 1 of 100 positions NULL and 2 lap times over 300 s: 100 x 0.99 x (1 - 0.02)
    laps = quality_report(_laps(100, slow=2, no_position=1), table("raw_laps"), 2023)
    assert laps.outlier_rows == 2 and laps.score == round(100 * 0.99 * 0.98, 2) == 97.02 and laps.passed
    # a 6 % outlier share alone pulls it under 95, and says so
    slow = quality_report(_laps(100, slow=6), table("raw_laps"), 2023)
    assert slow.score == 94.0 and slow.low_columns == {}
    assert slow.pulled_down_by() == [f"outliers 6.0% ({quality.OUTLIER_RULE})"]


def test_an_era_column_before_its_since_season_is_not_counted():
    durations_missing = _pit_stops(20, missing_duration=20)
    assert quality_report(durations_missing, table("raw_pit_stops"), 2010).score == 100.0  # since: 2011
    assert quality_report(durations_missing, table("raw_pit_stops"), 2011).score == 0.0
    races = pd.DataFrame({"season": [1990, 1990], "round": [1, 2], "race_name": "GP", "circuit_id": "c",
                          "circuit_name": "C", "locality": "L", "country": "X", "lat": 1.0, "lng": 2.0,
                          "race_date": dt.date(1990, 3, 1), "race_time": None, "has_sprint": False, "url": "u"})
    assert "race_time" not in quality_report(races, table("raw_races"), 1990).expected  # since: 2005
    later = quality_report(races.assign(season=2005), table("raw_races"), 2005)
    assert later.score == 0.0 and later.low_columns == {"race_time": 0.0}


def test_sparse_columns_are_reported_not_judged():
    results = table("raw_results").empty_frame()
    row = {c: 1 for c in results.columns} | {"driver_id": "d", "driver_code": "DDD", "given_name": "G",
                                              "family_name": "F", "constructor_id": "t", "position_text": "R",
                                              "status": "Engine", "points": 0.0}
    frame = pd.DataFrame([row, row]).assign(position=None, time_ms=None, position_order=[1, 2])
    report = quality_report(frame, table("raw_results"), 2023)
    assert report.null_counts["position"] == 2 and report.completeness["time_ms"] == 0.0
    assert "position" not in report.expected and report.score == 100.0


def test_the_expected_attribute_is_declared_and_validated():
    assert table("raw_pit_stops").column("duration_ms").expected.since == 2011
    assert "lead-lap" in table("raw_results").column("time_ms").expected.sparse
    assert table("raw_laps").column("lap_time_ms").expected_filled(1996)  # absent: always expected
    spec = {"primary_key": ["season"], "columns": [{"name": "season", "type": "int32", "nullable": False},
                                                   {"name": "x", "type": "text", "expected": {"since": 2011}}]}
    assert Table.from_spec("t", spec, "raw.yaml").column("x").expected_filled(2010) is False
    for bad, message in (({"since": "2011"}, "must be a season"), ({"sparse": ""}, "needs the reason"),
                         ({"until": 2011}, r"must be \{since: YYYY\}"), (False, r"must be \{since: YYYY\}")):
        with pytest.raises(ValueError, match=message):
            Column("x", "text", expected=bad)
    with pytest.raises(ValueError, match="is NOT NULL"):
        Column("x", "text", nullable=False, expected={"since": 2011})


def test_check_outcome_and_metadata_of_one_partition_and_of_a_batch():
    good = quality_report(_pit_stops(20), table("raw_pit_stops"), 2023, "2023-01")
    bad = quality_report(_pit_stops(20, missing_duration=3), table("raw_pit_stops"), 2023, "2023-02")
    passed = rules.quality_check("raw_pit_stops", [good])
    assert passed.passed and passed.severity == dg.AssetCheckSeverity.WARN
    assert passed.metadata["quality_score"].value == 100.0 and "100 >= 95" in passed.description
    warned = rules.quality_check("raw_pit_stops", [bad])
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert "85 < 95: pulled down by duration_ms 85.0%" in warned.description
    assert warned.metadata["failing_keys"].value == ["duration_ms 85.0%"]
    md = rules.quality_metadata([bad])
    assert isinstance(md["quality_score"], dg.FloatMetadataValue) and md["quality_score"].value == 85.0
    assert md["completeness_below_95"].value == {"duration_ms": 0.85} and md["null_counts"].value["duration_ms"] == 3
    # a batch: the minimum, the partitions below 95, the worst first; null counts summed
    batch = rules.quality_check("raw_pit_stops", [good, bad])
    assert not batch.passed and batch.metadata["quality_score"].value == 85.0
    assert batch.metadata["failing_partitions"].value == 1 and batch.metadata["failing_keys"].value == ["2023-02"]
    assert batch.metadata["worst_partitions"].value == ["2023-02 85: duration_ms 85.0%", "2023-01 100"]
    md = rules.quality_metadata([good, bad])
    assert md["quality_score"].value == 85.0 and md["quality_partitions_below_95"] == 1
    assert md["null_counts"].value["duration_ms"] == 3
    many = [quality_report(_pit_stops(20, missing_duration=i % 4), table("raw_pit_stops"), 2023, f"2023-{i:02d}")
            for i in range(1, 23)]
    assert len(rules.quality_metadata(many)["quality_worst_partitions"].value) == quality.WORST_PARTITIONS


def test_every_table_asset_has_a_quality_check_and_a_schema_drift_check():
    keys = {(k.asset_key.to_user_string(), k.name) for c in defs.asset_checks for k in c.check_keys}
    for a in defs.assets:
        keys |= {(k.asset_key.to_user_string(), k.name) for k in a.check_keys}
    assert {a for a, name in keys if name == "quality_score"} == set(TABLE_ASSETS)
    assert {a for a, name in keys if name == "column_schema_change"} == set(TABLE_ASSETS + VIEWS)
    quality_specs = [s for a in defs.assets for s in a.check_specs if s.name == "quality_score"]
    assert quality_specs and not any(s.blocking for s in quality_specs)


# ------------------------------------------------------------------------------- real runs


def _independent_score(frame: pd.DataFrame, name: str, season: int) -> float:
    """The score recomputed from the stored rows without quality.py: worst share of the expected columns."""
    declared = table(name)
    expected = [c.name for c in declared.columns if c.nullable and c.expected_filled(season)]
    worst = min((frame[c].notna().mean() for c in expected), default=1.0) if len(frame) else 1.0
    t = frame["lap_time_ms"] if "lap_time_ms" in frame else pd.Series(dtype=float)
    outliers = ((t < 30_000) | (t > 300_000)).sum() / len(frame) if len(frame) else 0.0
    return round(100 * worst * (1 - outliers), 2)


def test_bahrain_2023_scores_100_with_its_known_nulls(instance, duckdb_url, replay_server, tmp_path):
    res = resources(duckdb_url, str(tmp_path / "blobs"), replay_server.base_url)
    materialize_calendar(instance, 2023, res, prefetch=False)
    result = materialize([*ingest_jolpica.RACE_ASSETS, features.lap_features], partition_key="2023-01",
                         instance=instance, resources=res)
    wh = warehouse_from_url(duckdb_url)
    checks = check_results(result)
    for name in ("raw_results", "raw_qualifying", "raw_laps", "raw_pit_stops", "lap_features"):
        stored = wh.read_partition(name, {"season": 2023, "round": 1})
        md = metadata_of(result, name)
        assert md["quality_score"] == _independent_score(stored, name, 2023) == 100.0, name
        assert md["null_counts"] == {c: int(n) for c, n in stored.isna().sum().items()}, name
        assert checks[(name, "quality_score")].passed, name
        assert md["dagster/column_schema"].columns  # what the schema-drift check reads
        assert checks[(name, "column_schema_change")].passed  # the first materialization: nothing to compare
    # the known NULLs of Bahrain 2023: 3 unclassified, 3 off the lead lap, 6 without Q2, 11 without Q3
    assert metadata_of(result, "raw_results")["null_counts"]["position"] == 3
    assert metadata_of(result, "raw_results")["null_counts"]["time_ms"] == 3
    assert (metadata_of(result, "raw_qualifying")["null_counts"]["q2_ms"],
            metadata_of(result, "raw_qualifying")["null_counts"]["q3_ms"]) == (6, 11)
    # lap_features: is_outlier (race events included) is reported, not scored
    lap_md = metadata_of(result, "lap_features")
    assert lap_md["is_outlier_share"] == round(lap_md["outlier_rows"] / 1055, 4) > 0.1
    assert lap_md["outlier_share"] == 0.0 and lap_md["completeness_below_95"] == {}


def _degraded_race(season: int, rnd: int, date: dt.date) -> dict:
    """A synthetic race whose pole sitter has no Q1 time, whose first pit stop has no duration and whose 7
    first timings take 310 s."""
    data = synthetic_race(season, rnd, laps=40, date=date)
    del data[f"{season}/{rnd}/qualifying"].items[0]["Q1"]
    del data[f"{season}/{rnd}/pitstops"].items[0]["duration"]
    for _, timing in data[f"{season}/{rnd}/laps"].items[:7]:
        timing["time"] = "5:10.000"
    return data


def test_a_degraded_race_warns_a_batch_keeps_the_worst_and_a_new_column_is_schema_drift(instance, duckdb_url,
                                                                                           tmp_path):
    datasets = {**synthetic_race(2024, 1, laps=40, date=dt.date(2024, 3, 2)),
                **_degraded_race(2024, 2, dt.date(2024, 3, 9)),
                **synthetic_schedule(2024, [(1, dt.date(2024, 3, 2), False), (2, dt.date(2024, 3, 9), False)])}
    with JolpicaReplayServer(datasets) as server:
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url)
        assert materialize_calendar(instance, 2024, res, prefetch=False).success
        assets = [*ingest_jolpica.RACE_ASSETS, features.lap_features]
        one = materialize(assets, partition_key="2024-02", instance=instance, resources=res)
        # a batch of two races in one step (a backfill's run: `RaceBatch`, `land`)
        both = materialize([ingest_jolpica.raw_results, ingest_jolpica.raw_qualifying], instance=instance,
                           resources=res, tags={"dagster/asset_partition_range_start": "2024-01",
                                                "dagster/asset_partition_range_end": "2024-02"})
    wh = warehouse_from_url(duckdb_url)
    expected = {name: _independent_score(wh.read_partition(name, {"season": 2024, "round": 2}), name, 2024)
                for name in ("raw_qualifying", "raw_pit_stops", "raw_laps")}
    assert expected == {"raw_qualifying": round(100 * 2 / 3, 2), "raw_pit_stops": round(100 * 2 / 3, 2),
                        "raw_laps": round(100 * (1 - 7 / 120), 2)}

    # one race: the score in the metadata, the WARN naming what pulls it down
    checks = check_results(one)
    for name, score in expected.items():
        assert metadata_of(one, name)["quality_score"] == score
        check = checks[(name, "quality_score")]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["quality_score"].value == score
    assert checks[("raw_pit_stops", "quality_score")].metadata["failing_keys"].value == ["duration_ms 66.7%"]
    assert checks[("raw_qualifying", "quality_score")].metadata["failing_keys"].value == ["q1_ms 66.7%"]
    assert checks[("raw_results", "quality_score")].passed
    assert "outliers 5.8%" in checks[("raw_laps", "quality_score")].description
    assert metadata_of(one, "raw_pit_stops")["null_counts"]["duration_ms"] == 1
    assert metadata_of(one, "lap_features")["quality_score"] == expected["raw_laps"]  # the same 7 slow laps
    assert one.success  # WARN never blocks: the rows are written and lap_features built

    # the two races in one run: the batch's minimum and its worst race, on each race's materialization
    assert both.success
    assert metadata_of(both, "raw_results")["quality_score"] == 100.0
    for name in ("raw_qualifying",):
        score = expected[name]
        mats = both.asset_materializations_for_node(name)
        assert sorted(m.partition for m in mats) == ["2024-01", "2024-02"]
        md = metadata_of(both, name)
        assert md["quality_score"] == score and md["quality_partitions_below_95"] == 1
        assert md["quality_worst_partitions"][0].startswith(f"2024-02 {score:g}: ")
        assert md["quality_worst_partitions"][1] == "2024-01 100"
        check = check_results(both)[(name, "quality_score")]
        assert not check.passed and check.metadata["failing_keys"].value == ["2024-02"]

    # schema drift: same columns in every run so far; then a materialization with one column more
    drift = dg.AssetCheckKey(dg.AssetKey("raw_qualifying"), "column_schema_change")
    assert check_results(both)[("raw_qualifying", "column_schema_change")].passed
    assert "No changes" in check_results(both)[("raw_qualifying", "column_schema_change")].description
    schema = table("raw_qualifying").table_schema()
    wider = dg.TableSchema(columns=[*schema.columns, dg.TableColumn("q4_ms", "int64")])
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "raw_qualifying", partition="2024-02", metadata={"dagster/column_schema": wider}))
    result = materialize(dg.AssetSelection.checks(drift), instance=instance, resources=res)
    assert not result.get_asset_materialization_events()  # only the check ran
    check = check_results(result)[("raw_qualifying", "column_schema_change")]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "Added columns: q4_ms" in check.description


def test_raw_telemetry_reports_its_column_schema_and_score(tmp_path, shared_data):
    from f1_assets_tests.test_fastf1_assets import GeneratedTelemetry, jolpica_results
    from f1_assets_tests.test_fastf1_assets import materialize as materialize_race_assets

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    warehouse_from_url(url).replace_partitions("raw_results", jolpica_results(shared_data),
                                               [{"season": 2018, "round": 4}])
    result = materialize_race_assets([ingest_fastf1.raw_telemetry], GeneratedTelemetry(), url, tmp_path / "blobs")
    md = metadata_of(result, "raw_telemetry")
    assert [c.name for c in md["dagster/column_schema"].columns] == table("raw_telemetry").column_names
    frame = pd.read_parquet(tmp_path / "blobs" / blob_key(ingest_fastf1.TELEMETRY_PREFIX, "2018-04"))
    assert md["quality_score"] == _independent_score(frame, "raw_telemetry", 2018)
    assert md["null_counts"] == {c: int(n) for c, n in frame.isna().sum().items()}
    check = check_results(result)[("raw_telemetry", "quality_score")]
    assert check.passed == (md["quality_score"] >= 95)
