"""The Jolpica client against a real HTTP server on 127.0.0.1: paging, throttling, faults, archive."""

from __future__ import annotations

import datetime as dt

import pytest

from f1_assets.assets.ingest_jolpica import raw_results
from f1_assets.resources.jolpica import JolpicaClient, JolpicaResponseError, JolpicaTransientError
from f1_assets.resources.rate_budget import FileLedger, RateLimiter
from f1_assets.storage.blob import LocalBlobStore
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.transforms.jolpica import parse_laps
from f1_assets_tests.helpers import (
    materialize_calendar,
    materialize_race,
    metadata_of,
    resources,
    synthetic_race,
    synthetic_schedule,
)
from f1_assets_tests.jolpica_server import JolpicaReplayServer, add_season_tables

SEASON = 2024


def _datasets(laps: int = 40):
    data = synthetic_race(SEASON, 3, laps=laps)
    data.update(synthetic_schedule(SEASON, [(3, dt.date(2024, 3, 29), False)]))
    return data


def _client(server, tmp_path, per_second=100, per_hour=10_000, retries=4):
    limiter = RateLimiter(FileLedger(tmp_path / "ledger.json"), per_second=per_second, per_hour=per_hour)
    return JolpicaClient(server.base_url, LocalBlobStore(tmp_path / "blobs"), limiter,
                         timeout_seconds=5, max_retries=retries, backoff_seconds=0.02)


def test_pages_until_total_and_merges_split_laps(tmp_path):
    with JolpicaReplayServer(_datasets(laps=40)) as server:
        client = _client(server, tmp_path)
        fetched = client.fetch(f"{SEASON}/3/laps", settled=False)
        assert fetched.total == 120 and fetched.requests == 2  # ceil(120/100)
        assert [u.split("?")[1] for u in server.state.requests] == ["limit=100&offset=0", "limit=100&offset=100"]
        laps = parse_laps(fetched.pages)
        assert len(laps) == 120
        assert laps.groupby("driver_id").size().tolist() == [40, 40, 40]  # lap 34 straddles the pages
        assert laps[laps.lap_number == 34]["driver_id"].tolist() == ["alpha", "bravo", "charlie"]
        # nothing is archived until the caller accepts the pages; then by URL, and a settled re-fetch
        # reads only the archive
        assert client.archive.list("jolpica") == []
        assert client.archive_accepted(fetched) == 2
        server.reset_counts()
        again = client.fetch(f"{SEASON}/3/laps", settled=True)
        assert again.requests == 0 and again.archive_hits == 2 and server.state.requests == []
        assert again.payload_hash == fetched.payload_hash


def test_server_paging_semantics(tmp_path):
    import requests

    with JolpicaReplayServer(_datasets()) as server:
        base = server.base_url
        capped = requests.get(f"{base}{SEASON}/3/laps.json?limit=1200").json()["MRData"]
        assert capped["limit"] == "100" and capped["total"] == "120"
        past = requests.get(f"{base}{SEASON}/3/laps.json?limit=100&offset=500").json()["MRData"]
        assert past["RaceTable"]["Races"] == [] and past["total"] == "120"
        assert requests.get(f"{base}{SEASON}/laps.json").status_code == 400
        assert requests.get(f"{base}{SEASON}/3/laps.json?nocache=1").status_code == 403


def test_throttled_server_is_survived_without_losing_or_duplicating_rows(instance, duckdb_url, tmp_path):
    with JolpicaReplayServer(_datasets(laps=150)) as server:  # 450 timings: 5 pages of laps
        server.state.faults.burst_per_second = 4
        server.state.faults.hourly_budget = 1000
        # our limiter allows 20/s, so the server's 4/s throttle answers 429 (no Retry-After) and we back off
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, burst_per_second=20,
                        backoff_seconds=0.3, max_retries=8)
        result = materialize_race(instance, f"{SEASON}-03", res)
        assert server.state.statuses[429] > 0
        wh = warehouse_from_url(duckdb_url)
        assert wh.count("raw_laps", {"season": SEASON, "round": 3}) == 450
        dupes = wh.query("SELECT driver_id, lap_number, COUNT(*) AS n FROM raw_laps GROUP BY 1, 2 HAVING COUNT(*) > 1")
        assert dupes.empty
        assert metadata_of(result, "raw_laps")["upstream_requests"] >= 5


def test_our_limiter_keeps_a_throttling_server_quiet(instance, duckdb_url, tmp_path):
    with JolpicaReplayServer(_datasets(laps=40)) as server:
        server.state.faults.burst_per_second = 4
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, burst_per_second=3)
        materialize_race(instance, f"{SEASON}-03", res)
        assert server.state.statuses[429] == 0
        assert server.state.statuses[200] == len(server.state.requests)


def test_500s_are_retried_then_fail_clearly(tmp_path):
    with JolpicaReplayServer(_datasets()) as server:
        server.state.faults.fail_500 = 2
        fetched = _client(server, tmp_path).fetch(f"{SEASON}/3/results", settled=False)
        assert fetched.total == 3 and server.state.statuses[500] == 2

        server.state.faults.fail_500 = 100
        with pytest.raises(JolpicaTransientError, match=r"results\.json.*giving up after 5 attempts, last HTTP 500"):
            _client(server, tmp_path / "b").fetch(f"{SEASON}/3/results", settled=False)


@pytest.mark.parametrize(
    "fault,message",
    [("truncate", "not valid JSON"), ("html", "HTML page")],
)
def test_bad_bodies_fail_at_once_naming_the_url(tmp_path, fault, message):
    with JolpicaReplayServer(_datasets()) as server:
        setattr(server.state.faults, fault, 1)
        with pytest.raises(JolpicaResponseError, match=message) as info:
            _client(server, tmp_path).fetch(f"{SEASON}/3/results", settled=False)
        assert f"{SEASON}/3/results.json?limit=100&offset=0" in str(info.value)
        assert len(server.state.requests) == 1  # no retry


def test_not_found_is_not_retried(tmp_path):
    with JolpicaReplayServer(_datasets()) as server:
        with pytest.raises(JolpicaResponseError, match=r"1999/9/results\.json.*HTTP 404"):
            _client(server, tmp_path).fetch("1999/9/results", settled=False)
        assert len(server.state.requests) == 1


def test_failed_fetch_keeps_the_previous_rows(instance, warehouse_url, tmp_path):
    with JolpicaReplayServer(_datasets()) as server:
        res = resources(warehouse_url, str(tmp_path / "blobs"), server.base_url, settle_days=100_000)
        materialize_race(instance, f"{SEASON}-03", res)
        server.state.faults.truncate = 100
        result = materialize_race(instance, f"{SEASON}-03", res, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "not valid JSON" in str(failure.step_failure_data.error)
        wh = warehouse_from_url(warehouse_url)
        assert wh.count("raw_results", {"season": SEASON, "round": 3}) == 3
        assert wh.count("raw_laps", {"season": SEASON, "round": 3}) == 120


def test_schema_violation_names_url_and_field(instance, duckdb_url, tmp_path):
    data = _datasets()
    data[f"{SEASON}/3/results"].items[1]["points"] = "-4"
    with JolpicaReplayServer(data) as server:
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url)
        result = materialize_race(instance, f"{SEASON}-03", res, assets=[raw_results], raise_on_error=False)
        failure = next(e for e in result.all_events if e.is_step_failure)
        text = str(failure.step_failure_data.error)
        assert f"{SEASON}/3/results.json" in text and "field points" in text
        assert warehouse_from_url(duckdb_url).count("raw_results") == 0


def test_sprint_round_fetches_sprint(instance, duckdb_url, tmp_path):
    data = synthetic_race(SEASON, 5, sprint=True)
    data.update(synthetic_schedule(SEASON, [(5, dt.date(2024, 4, 21), True)]))
    add_season_tables(data)
    with JolpicaReplayServer(data) as server:
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url)
        materialize_calendar(instance, SEASON, res)
        assert f"{SEASON}-05" in instance.get_dynamic_partitions("races")
        materialize_race(instance, f"{SEASON}-05", res)
        assert warehouse_from_url(duckdb_url).count("raw_sprint_results", {"season": SEASON, "round": 5}) == 3
        # the settled season's sprint came in one season page; the race needed no sprint request
        assert [r.split("?")[0] for r in server.requests_for("/sprint.json")] == [f"/ergast/f1/{SEASON}/sprint.json"]


def test_unsettled_sprint_round_fetches_its_own_sprint(instance, duckdb_url, tmp_path):
    data = synthetic_race(SEASON, 5, sprint=True)
    data.update(synthetic_schedule(SEASON, [(5, dt.date(2024, 4, 21), True)]))
    with JolpicaReplayServer(data) as server:
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url, settle_days=100_000)
        materialize_calendar(instance, SEASON, res)
        materialize_race(instance, f"{SEASON}-05", res)
        assert warehouse_from_url(duckdb_url).count("raw_sprint_results", {"season": SEASON, "round": 5}) == 3
        assert [r.split("?")[0] for r in server.requests_for("/sprint.json")] == [f"/ergast/f1/{SEASON}/5/sprint.json"]
