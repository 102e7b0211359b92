"""Issue 9, the Jolpica side: a green materialization means complete, valid rows; anything less fails
visibly and the previous rows stay. Each test drives a real fault-injecting Jolpica imitation on
127.0.0.1 (`jolpica_server.Faults`) and counts the stored rows before and after.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from pathlib import Path

import dagster as dg
import pytest

from f1_assets import sensors
from f1_assets.assets import features, ingest_jolpica
from f1_assets.io_managers.warehouse import ALLOW_SHRINK_TAG
from f1_assets.resources.jolpica import JolpicaClient, JolpicaTransientError
from f1_assets.resources.rate_budget import FileLedger, RateLimiter
from f1_assets.storage.blob import LocalBlobStore
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.helpers import (
    check_results,
    materialize,
    materialize_calendar,
    metadata_of,
    resources,
    synthetic_race,
    synthetic_schedule,
)
from f1_assets_tests.jolpica_server import Dataset, JolpicaReplayServer

SEASON, ROUND, KEY = 2024, 3, "2024-03"
LAPS = f"{SEASON}/{ROUND}/laps"
PART = {"season": SEASON, "round": ROUND}
UNSETTLED = {"settle_days": 100_000}  # every race counts as recent: always asked upstream, never the archive
RACE = [*ingest_jolpica.RACE_ASSETS, features.lap_features]


def _datasets() -> dict[str, Dataset]:
    data = synthetic_race(SEASON, ROUND, laps=40)  # 120 timings: two pages, lap 34 split across them
    data.update(synthetic_schedule(SEASON, [(ROUND, dt.date(2024, 3, 29), False)]))
    return data


@pytest.fixture
def server():
    with JolpicaReplayServer(_datasets()) as srv:
        yield srv


def _run(instance, res, tags: dict[str, str] | None = None, assets=None) -> dg.ExecuteInProcessResult:
    if KEY not in instance.get_dynamic_partitions("races"):
        instance.add_dynamic_partitions("races", [KEY])
    return materialize(assets or RACE, partition_key=KEY, instance=instance, resources=res,
                       raise_on_error=False, tags=tags)


def _failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}


def _rows(url: str, table: str = "raw_laps") -> int:
    return warehouse_from_url(url).count(table, PART)


def _archived(blobs: Path, path: str = LAPS) -> list[str]:
    return sorted(p.name for p in (blobs / "jolpica" / Path(path).parent).glob(f"{Path(path).name}.json@*"))


def _loaded(instance, warehouse_url, tmp_path, server, **jolpica) -> dict:
    res = resources(warehouse_url, str(tmp_path / "blobs"), server.base_url, **jolpica)
    assert materialize_calendar(instance, SEASON, res, prefetch=False).success
    first = _run(instance, res)
    assert first.success, _failures(first)
    assert _rows(warehouse_url) == 120 and _rows(warehouse_url, "lap_features") == 120
    return res


def test_a_shrinking_upstream_never_replaces_good_rows(instance, duckdb_url, tmp_path, server):
    warehouse_url = duckdb_url  # the same refusal on PostgreSQL: test_warehouse.py
    res = _loaded(instance, warehouse_url, tmp_path, server, **UNSETTLED)
    laps = server.state.datasets[LAPS]
    full = list(laps.items)

    laps.items = full[:60]  # the upstream now answers half the race
    result = _run(instance, res)
    assert not result.success
    message = _failures(result)["raw_laps"]
    assert "60 rows, fewer than the 120 stored" in message and KEY in message
    assert _rows(warehouse_url) == 120 and _rows(warehouse_url, "lap_features") == 120
    assert "lap_features" not in {e.step_key for e in result.all_events if e.is_step_success}

    laps.items = []  # total 0, no rows
    result = _run(instance, res)
    message = _failures(result)["raw_laps"]
    assert "has_rows" in message and "(0 rows)" in message and "what is stored (120 rows) is kept" in message
    assert "the upstream answered 0 rows (http://127.0.0.1:" in message  # names the URL that answered nothing
    assert _rows(warehouse_url) == 120 and _rows(warehouse_url, "lap_features") == 120

    # an explicit run may accept it, and says so
    laps.items = full[:60]
    accepted = _run(instance, res, tags={ALLOW_SHRINK_TAG: "true"})
    assert accepted.success, _failures(accepted)
    assert metadata_of(accepted, "raw_laps")["allow_shrink"] is True
    assert _rows(warehouse_url) == 60 and _rows(warehouse_url, "lap_features") == 60

    # corrections that change rows (same count or more) still go through
    laps.items = full
    laps.items[0] = (laps.items[0][0], dict(laps.items[0][1], time="1:29.999"))
    corrected = _run(instance, res)
    assert corrected.success, _failures(corrected)
    assert _rows(warehouse_url) == 120
    lap1 = warehouse_from_url(warehouse_url).query(
        "SELECT lap_time_ms FROM raw_laps WHERE driver_id = 'alpha' AND lap_number = 1")
    assert lap1["lap_time_ms"].tolist() == [89_999]


def test_a_failing_blocking_check_writes_nothing(instance, duckdb_url, tmp_path, server):
    res = _loaded(instance, duckdb_url, tmp_path, server, **UNSETTLED)
    laps = server.state.datasets[LAPS]
    number, timing = laps.items[7]
    laps.items[7] = (number, dict(timing, driverId="zulu"))  # same row count, a driver not in the results
    result = _run(instance, res)
    message = _failures(result)["raw_laps"]
    assert "drivers_in_results" in message and "zulu" in message and "what is stored (120 rows) is kept" in message
    check = check_results(result)[("raw_laps", "drivers_in_results")]
    assert not check.passed and check.metadata["failing_keys"].value == ["zulu"]
    wh = warehouse_from_url(duckdb_url)
    assert wh.count("raw_laps", PART) == 120
    assert "zulu" not in set(wh.read_partition("raw_laps", PART)["driver_id"])  # the stored version, untouched
    assert "lap_features" not in {e.step_key for e in result.all_events if e.is_step_success}
    assert not result.asset_materializations_for_node("raw_laps")  # no green materialization either


def test_totals_that_change_between_pages(instance, duckdb_url, tmp_path, server):
    res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, **UNSETTLED)
    assert materialize_calendar(instance, SEASON, res, prefetch=False).success
    laps = server.state.datasets[LAPS]
    extra = [("41", {"driverId": d, "position": "1", "time": "1:31.000"}) for d in ("alpha", "bravo", "charlie")]
    changes = {"n": 0}

    def grow_once(endpoint, offset, state):  # a total that rises between the two pages, once
        if endpoint == LAPS and offset == 100 and changes["n"] == 0:
            changes["n"] += 1
            state.datasets[LAPS].items = laps.items + extra

    server.state.faults.before_page = grow_once
    result = _run(instance, res)
    assert result.success, _failures(result)
    # page 1 said 120, page 2 said 123: the endpoint was fetched once more (2 + 2 laps requests)
    assert len(server.requests_for("/laps.json")) == 4
    assert _rows(duckdb_url) == 123

    def keep_changing(endpoint, offset, state):  # rises and drops on every fetch: never consistent
        if endpoint == LAPS:
            items = state.datasets[LAPS].items
            state.datasets[LAPS].items = items[:-3] if offset == 0 else items + extra

    server.state.faults.before_page = keep_changing
    server.reset_counts()
    started = time.monotonic()
    result = _run(instance, res)
    message = _failures(result)["raw_laps"]
    assert "MRData.total changed between pages" in message and "on two fetches in a row" in message
    assert f"{LAPS}.json?limit=100&offset=0" in message and f"{LAPS}.json?limit=100&offset=100" in message
    assert time.monotonic() - started < 30
    assert len(server.requests_for("/laps.json")) == 4  # fetched twice, then gave up: not retried
    assert _rows(duckdb_url) == 123


def test_bad_pages_are_never_archived_and_never_served(instance, duckdb_url, tmp_path, server):
    """A settled race (served from the archive once archived): a zero lap time, then an empty answer,
    then the healthy upstream. Only the healthy pages are archived and written."""
    blobs = tmp_path / "blobs"
    res = resources(duckdb_url, str(blobs), server.base_url)
    assert materialize_calendar(instance, SEASON, res, prefetch=False).success
    laps = server.state.datasets[LAPS]
    good = list(laps.items)

    laps.items = list(good)
    laps.items[100] = (laps.items[100][0], dict(laps.items[100][1], time="0:00.000"))  # the first row of page 2
    result = _run(instance, res)
    message = _failures(result)["raw_laps"]
    assert "lap_time_ms" in message and "greater_than(0)" in message
    assert f"{LAPS}.json?limit=100&offset=100" in message  # the page the bad value is on
    assert _rows(duckdb_url) == 0 and _archived(blobs) == []

    laps.items = []  # total 0, nothing stored yet: materialized empty, but red, and not archived
    result = _run(instance, res)
    checks = check_results(result)
    assert not checks[("raw_laps", "has_rows")].passed
    assert checks[("raw_laps", "has_rows")].severity == dg.AssetCheckSeverity.ERROR
    assert "lap_features" not in {e.step_key for e in result.all_events if e.is_step_success}  # blocked
    assert _rows(duckdb_url) == 0 and _archived(blobs) == []

    laps.items = good
    server.reset_counts()
    healed = _run(instance, res)
    assert healed.success, _failures(healed)
    assert len(server.requests_for("/laps.json")) == 2  # from upstream, not an archived empty page
    assert _rows(duckdb_url) == 120 and _rows(duckdb_url, "lap_features") == 120
    assert len(_archived(blobs)) == 2


def test_refused_empty_laps_are_re_polled_by_the_corrections_sensor(instance, duckdb_url, tmp_path, server):
    res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, **UNSETTLED)
    assert materialize_calendar(instance, SEASON, res, prefetch=False).success
    laps = server.state.datasets[LAPS]
    good, laps.items = list(laps.items), []  # the Monday gap: results are out, laps are not yet
    assert not _run(instance, res).success
    assert not instance.fetch_materializations(dg.AssetKey("raw_laps"), limit=1).records

    def tick():
        with dg.build_sensor_context(instance=instance, resources=res) as context:
            return sensors.race_corrections_sensor(context)

    still_empty = tick()
    assert not still_empty.run_requests, still_empty.run_requests
    laps.items = good
    appeared = tick()
    assert [r.asset_selection for r in appeared.run_requests] == [[dg.AssetKey("raw_laps")]]
    assert appeared.run_requests[0].partition_key == KEY


@pytest.mark.parametrize("damage", ["undecodable", "schema"])
def test_a_corrupt_archive_entry_is_quarantined_and_fetched_again(instance, duckdb_url, tmp_path, server, damage):
    blobs = tmp_path / "blobs"
    res = _loaded(instance, duckdb_url, tmp_path, server)  # settled: archived, then served from the archive
    first, second = (blobs / "jolpica" / f"{LAPS}.json@limit=100@offset={o}.json.gz" for o in (0, 100))
    if damage == "undecodable":  # a truncated gzip and one that is not gzip at all
        first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
        second.write_bytes(b"not gzip at all")
    else:  # decodes, but a lap time of 0 (an archive written before pages were validated)
        page = json.loads(gzip.decompress(second.read_bytes()))
        page["MRData"]["RaceTable"]["Races"][0]["Laps"][0]["Timings"][0]["time"] = "0:00.000"
        second.write_bytes(gzip.compress(json.dumps(page).encode()))

    server.reset_counts()
    started = time.monotonic()
    result = _run(instance, res, assets=[ingest_jolpica.raw_laps])
    assert result.success, _failures(result)
    assert time.monotonic() - started < 30
    quarantined = metadata_of(result, "raw_laps")["quarantined"]
    assert len(quarantined) == 2 and all(Path(q).exists() and "jolpica-quarantine" in q for q in quarantined)
    assert len(server.requests_for("/laps.json")) == 2  # the endpoint fetched again from upstream
    assert _rows(duckdb_url) == 120
    for entry in (first, second):  # healthy again
        assert json.loads(gzip.decompress(entry.read_bytes()))["MRData"]["total"] == "120"


def test_results_with_no_rows_for_a_race_that_ran_are_red(instance, duckdb_url, tmp_path, server):
    res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url)
    assert materialize_calendar(instance, SEASON, res, prefetch=False).success
    server.state.datasets[f"{SEASON}/{ROUND}/results"].items = []
    result = _run(instance, res)
    check = check_results(result)[("raw_results", "has_rows")]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "0 rows" in check.metadata["reason"].value
    # blocking: nothing downstream of raw_results built on it in this run
    succeeded = {e.step_key for e in result.all_events if e.is_step_success}
    assert not succeeded & {"raw_laps", "raw_pit_stops", "raw_qualifying", "lap_features"}


@pytest.mark.parametrize("host", ["dns", "refused"])
def test_an_unreachable_host_fails_fast_with_a_hint(instance, duckdb_url, tmp_path, host):
    import socket

    if host == "dns":
        base = "http://f1-assets-no-such-host.invalid/ergast/f1/"
    else:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}/ergast/f1/"
    res = resources(duckdb_url, str(tmp_path / "blobs"), base)
    started = time.monotonic()
    result = materialize([ingest_jolpica.raw_races], partition_key=str(SEASON), instance=instance,
                         resources=res, raise_on_error=False)
    elapsed = time.monotonic() - started
    assert not result.success and elapsed < 30
    message = _failures(result)["raw_races"]
    assert "F1_JOLPICA_URL" in message
    assert ("does not resolve" if host == "dns" else "refuses connections") in message
    # one attempt of the step: a wrong URL is not retried by the RetryPolicy
    assert sum(1 for e in result.all_events if e.event_type_value == "STEP_START") == 1


def test_a_trickling_server_is_bounded_by_the_deadline(tmp_path, server):
    server.state.faults.trickle_seconds = 0.2  # one byte every 0.2 s: each read succeeds, the body never ends
    limiter = RateLimiter(FileLedger(tmp_path / "ledger.json"), per_second=100, per_hour=10_000)
    client = JolpicaClient(server.base_url, LocalBlobStore(tmp_path / "blobs"), limiter,
                           timeout_seconds=1.0, max_retries=5, backoff_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(JolpicaTransientError, match="deadline"):
        client.fetch(LAPS, settled=False)
    elapsed = time.monotonic() - started
    assert elapsed < 5  # two attempts of 1 s each, not 5 retries, not minutes
    assert client.stats.requests == 2



def test_a_mirror_password_never_reaches_a_url_message_or_metadata(instance, duckdb_url, tmp_path, server):
    base = server.base_url.replace("http://", "http://mirror:t0p%40secret@")
    res = resources(duckdb_url, str(tmp_path / "blobs"), base)
    calendar = materialize_calendar(instance, SEASON, res, prefetch=False)
    assert calendar.success
    shown = json.dumps({k: str(v) for k, v in metadata_of(calendar, "raw_races").items()})
    server.state.datasets.pop(LAPS)  # a 404: its message quotes the URL
    failed = _run(instance, res, assets=[ingest_jolpica.raw_results, ingest_jolpica.raw_laps])
    message = _failures(failed)["raw_laps"]
    assert "HTTP 404" in message
    for text in (shown, message):
        assert "t0p" not in text and "secret" not in text and "mirror:" not in text


def test_a_season_page_problem_never_costs_the_calendar(instance, duckdb_url, tmp_path, server):
    """Season pages are an optimisation: a 404 on one leaves the calendar green, its races registered."""
    server.state.datasets[f"{SEASON}/{ROUND}/results"].items = []  # derived season pages would be empty…
    server.state.datasets.pop(f"{SEASON}/{ROUND}/qualifying")  # …and the season qualifying 404s
    from f1_assets_tests.jolpica_server import add_season_tables

    add_season_tables(server.state.datasets)
    server.state.datasets.pop(f"{SEASON}/qualifying", None)
    res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url)
    calendar = materialize_calendar(instance, SEASON, res)
    assert calendar.success
    rejected = metadata_of(calendar, "raw_races")["season_tables_rejected"]
    assert f"{SEASON}/qualifying" in rejected and "404" in rejected[f"{SEASON}/qualifying"]
    assert KEY in instance.get_dynamic_partitions("races")



@pytest.mark.parametrize("fault", ["duplicate_result", "wrong_shape", "wrong_round"])
def test_duplicates_shapes_and_wrong_races_fail_at_once(instance, duckdb_url, tmp_path, server, fault):
    res = _loaded(instance, duckdb_url, tmp_path, server, **UNSETTLED)
    results = server.state.datasets[f"{SEASON}/{ROUND}/results"]
    if fault == "duplicate_result":
        results.items = [*results.items, dict(results.items[0], position=str(len(results.items) + 1))]
    elif fault == "wrong_shape":
        results.items = ["not a result"] * len(results.items)
    else:
        results.race = dict(results.race, round=str(ROUND + 1))
    started = time.monotonic()
    result = _run(instance, res, assets=[ingest_jolpica.raw_results])
    message = _failures(result)["raw_results"]
    assert time.monotonic() - started < 20  # not retried
    assert f"{SEASON}/{ROUND}/results.json" in message
    assert {"duplicate_result": "a driver appears twice in one car", "wrong_shape": "shape",
            "wrong_round": f"round [{ROUND + 1}], not {ROUND}"}[fault] in message
    assert _rows(duckdb_url, "raw_results") == 3


@pytest.mark.parametrize("key", ["2023-1", "1949-01", "2023-31"])
def test_an_impossible_partition_key_fails_at_once_and_is_not_retried(key, instance, duckdb_url, tmp_path, server):
    """A key registered by hand that can never be right: one attempt, the reason in the step failure (the
    RetryPolicy would otherwise retry it for ~2 minutes and report only 'Exceeded max_retries')."""
    res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, **UNSETTLED)
    instance.add_dynamic_partitions("races", [key])
    result = materialize([ingest_jolpica.raw_results], partition_key=key, instance=instance, resources=res,
                         raise_on_error=False)
    assert not result.success
    assert f"invalid race partition key {key!r}" in _failures(result)["raw_results"] or "invalid season" in \
        _failures(result)["raw_results"]
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert server.state.requests == []  # nothing was asked upstream
