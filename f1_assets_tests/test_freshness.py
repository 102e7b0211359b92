"""Freshness after each race (`f1_assets.freshness`): the pure rule, the `fresh_after_race` checks failing
then passing on a real instance and warehouse (a synthetic calendar served by the Jolpica replay server,
races placed relative to the real clock), and the sensor: one webhook alert per newly stale partition
(a real HTTP server on 127.0.0.1 counting POSTs) and a check run whenever the stale set changes."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pandas as pd
import pytest

from f1_assets import definitions, freshness
from f1_assets.assets import ingest_jolpica
from f1_assets.freshness import Race, assess
from f1_assets.resources.storage import WarehouseResource
from f1_assets_tests.helpers import (
    check_results,
    materialize,
    materialize_calendar,
    materialize_race,
    resources,
    synthetic_race,
    synthetic_schedule,
)
from f1_assets_tests.jolpica_server import JolpicaReplayServer

H = dt.timedelta(hours=1)
NOW = dt.datetime(2024, 6, 10, 12, 0, tzinfo=dt.UTC)


def _ended(key: str, ago: dt.timedelta, now: dt.datetime = NOW, sprint: bool = False) -> Race:
    return Race(key, now - ago - freshness.RACE_DURATION, sprint)


def _states(verdicts, key: str) -> dict[str, str]:
    return {v.asset: v.state for v in verdicts if v.partition == key}


# ------------------------------------------------------------------------- the pure rule


def test_bounds_24h_jolpica_6h_fastf1_and_the_features_follow():
    late = assess([_ended("2024-05", 7 * H)], {}, NOW)
    states = _states(late, "2024-05")
    assert states["fastf1_laps"] == states["raw_telemetry"] == "stale"  # 6 h bound passed
    assert states["raw_results"] == states["raw_laps"] == states["lap_features"] == "pending"  # 24 h / 25 h
    assert states["telemetry_features"] == "pending"  # 7 h: due exactly now, not past
    assert "raw_sprint_results" not in states  # no sprint that weekend: not expected
    stale = {v.asset: v.late_by for v in freshness.stale(late)}
    assert stale == {"fastf1_laps": H, "raw_telemetry": H}

    day = _states(assess([_ended("2024-05", 25 * H + dt.timedelta(minutes=1))], {}, NOW), "2024-05")
    assert {a for a, s in day.items() if s == "stale"} == set(freshness.BOUNDS) - {"raw_sprint_results"}

    sprint = _states(assess([_ended("2024-05", 25 * H, sprint=True)], {}, NOW), "2024-05")
    assert sprint["raw_sprint_results"] == "stale" and sprint["lap_features"] == "pending"


def test_materialized_after_the_end_is_fresh_before_it_is_not():
    race = _ended("2024-05", 30 * H)
    end = race.end.timestamp()
    updates = {("raw_results", "2024-05"): end + 60, ("raw_laps", "2024-05"): end - 60}
    states = _states(assess([race], updates, NOW), "2024-05")
    assert states["raw_results"] == "fresh"
    assert states["raw_laps"] == "stale"  # a version written before the race ended holds no race data


def test_window_era_and_races_not_run():
    recent = _ended("2024-05", 13 * 24 * H)
    old = _ended("2024-04", 15 * 24 * H)  # outside the 14-day window: never stale
    future = Race("2024-06", NOW + H)  # not run yet
    verdicts = assess([recent, old, future], {}, NOW)
    assert {v.partition for v in verdicts} == {"2024-05"}

    pre_fastf1 = _states(assess([_ended("2017-05", 30 * H, now=NOW)], {}, NOW), "2017-05")
    assert not {"fastf1_laps", "raw_telemetry", "telemetry_features"} & set(pre_fastf1)
    pre_pit_stops = _states(assess([_ended("2005-05", 30 * H)], {}, NOW), "2005-05")
    assert "raw_pit_stops" not in pre_pit_stops and pre_pit_stops["raw_laps"] == "stale"


def test_race_start_from_the_calendar_row():
    assert freshness.race_start(dt.date(2024, 3, 2), "15:00:00Z") == dt.datetime(2024, 3, 2, 15, tzinfo=dt.UTC)
    assert freshness.race_start(dt.date(1960, 5, 29), None) == dt.datetime(1960, 5, 29, 12, tzinfo=dt.UTC)
    # a time that cannot be read is noon too: one odd calendar row must not stop freshness for every race
    for odd in ("TBC", "25:99:00Z"):
        assert freshness.race_start(dt.date(2024, 3, 2), odd) == dt.datetime(2024, 3, 2, 12, tzinfo=dt.UTC)
    assert freshness.duration(dt.timedelta(days=1, hours=2, minutes=5, seconds=59)) == "1 d 2 h 5 min"


# ------------------------------------------------------------------------- real instance and warehouse


class Calendar:
    """A season whose rounds ended at given times before the real clock, served over HTTP."""

    def __init__(self, ended_ago: dict[int, dt.timedelta]):
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.season = (self.now - 40 * 24 * H).year
        self.starts = {rnd: self.now - ago - freshness.RACE_DURATION for rnd, ago in ended_ago.items()}
        data = synthetic_schedule(self.season, [(rnd, start.date(), False) for rnd, start in self.starts.items()])
        for race in data[str(self.season)].items:  # the start times the rounds need
            race["time"] = self.starts[int(race["round"])].strftime("%H:%M:%SZ")
        for rnd, start in self.starts.items():
            data.update(synthetic_race(self.season, rnd, laps=5, date=start.date()))
        self.datasets = data

    def key(self, rnd: int) -> str:
        return f"{self.season}-{rnd:02d}"


# round 1 ended 24.5 h ago (past the Jolpica bound, not lap_features' 25 h), round 2 ended 2 h ago, round 3
# 6.5 h ago (past the FastF1 bound, not telemetry_features' 7 h), round 4 20 days ago (out of the window);
# half-hour margins: the clock moves on while the test runs
ENDED = {1: 24.5 * H, 2: 2 * H, 3: 6.5 * H, 4: 20 * 24 * H}
CHECK_SELECTION = dg.AssetSelection.checks(freshness.race_freshness_checks)


@pytest.fixture
def calendar():
    return Calendar(ENDED)


@pytest.fixture
def setup(calendar, instance, tmp_path, duckdb_url):
    """The calendar materialized (it registers the four rounds: each started 4 h+ ago); nothing else."""
    with JolpicaReplayServer(calendar.datasets) as server:
        res = resources(duckdb_url, str(tmp_path / "blobs"), server.base_url)
        materialize_calendar(instance, calendar.season, res, prefetch=False)
        assert set(instance.get_dynamic_partitions("races")) == {calendar.key(r) for r in ENDED}
        yield res


def _check(instance, res) -> dict[str, dg.AssetCheckEvaluation]:
    result = materialize(CHECK_SELECTION, instance=instance, resources=res)
    return {asset: event for (asset, name), event in check_results(result).items() if name == freshness.CHECK_NAME}


JOLPICA = ("raw_results", "raw_qualifying", "raw_laps", "raw_pit_stops")


def _record(instance, key: str, *assets: str) -> None:
    """Materializations of `assets` for race `key` recorded now, as a run that wrote them would."""
    for asset in assets:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))


def _stale(evaluation: dg.AssetCheckEvaluation) -> set[str]:
    return set(evaluation.metadata["stale_partitions"].value)


def test_check_fails_listing_the_late_partition_then_passes(calendar, instance, setup):
    res, r1, r3 = setup, calendar.key(1), calendar.key(3)
    checks = _check(instance, res)
    assert set(checks) == set(freshness.BOUNDS)
    results = checks["raw_results"]
    assert not results.passed and results.severity == dg.AssetCheckSeverity.WARN
    assert _stale(results) == {r1}  # 24.5 h > 24 h; round 2 (2 h) and 3 (6.5 h) not due, round 4 out of window
    assert results.metadata["stale_partitions"].value[r1].startswith("30 min late")
    assert results.metadata["pending_count"].value == 2
    assert _stale(checks["fastf1_laps"]) == {r1, r3}  # the 6 h bound: round 3 (6.5 h) is late too
    assert checks["lap_features"].passed  # its 25 h bound has not passed for round 1
    assert checks["raw_sprint_results"].passed  # no sprint in this calendar: nothing expected

    materialize_race(instance, r1, res, assets=[ingest_jolpica.raw_results])  # a real run of round 1's results
    _record(instance, r1, "raw_qualifying", "raw_laps", "raw_pit_stops")  # and its other tables (recorded)
    instance.report_runless_asset_event(dg.AssetMaterialization("fastf1_laps", partition=r3))
    instance.report_runless_asset_event(  # FastF1 unreachable: recorded, but nothing landed
        dg.AssetMaterialization("raw_telemetry", partition=r3, metadata={"retryable": True}))
    after = _check(instance, res)
    assert after["raw_results"].passed and after["raw_laps"].passed and after["raw_pit_stops"].passed
    assert after["raw_results"].metadata["fresh_count"].value == 1
    assert "1 race partition(s) of the last 14 days fresh" in after["raw_results"].description
    assert _stale(after["fastf1_laps"]) == {r1}
    assert _stale(after["raw_telemetry"]) == {r1, r3}


# ------------------------------------------------------------------------- the sensor and the webhook


class Webhook:
    """A Slack-compatible webhook on 127.0.0.1 that counts and keeps the POSTed bodies, answering `status`."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 — http.server's name
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secretpath"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch):
    with Webhook() as hook:
        monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", hook.url)
        yield hook


def _tick(instance, res, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"warehouse": res["warehouse"]}) as ctx:
        return freshness.freshness_sensor(ctx)


def test_sensor_alerts_once_per_newly_stale_partition_and_requests_the_check_run(
        calendar, instance, setup, webhook, monkeypatch):
    res, r1, r2, r3 = setup, calendar.key(1), calendar.key(2), calendar.key(3)
    expected = {(v.asset, v.partition) for v in freshness.stale(freshness.evaluate(instance, res["warehouse"],
                                                                                     dt.datetime.now(dt.UTC)))}
    assert {p for _, p in expected} == {r1, r3} and ("raw_results", r1) in expected

    first = _tick(instance, res)
    assert len(first.run_requests) == 1 and first.run_requests[0].tags["f1/trigger"] == "freshness"
    assert len(webhook.bodies) == len(expected)  # one POST per stale asset+partition
    posted = {(b["text"].split()[1], b["text"].split()[2]) for b in webhook.bodies}
    assert posted == expected
    body = next(b for b in webhook.bodies if b["text"].split()[1:3] == ["raw_results", r1])
    assert "[WARNING]" in body["text"] and "rule: freshness" in body["text"] and "24 h" in body["text"]
    assert "secretpath" not in json.dumps(webhook.bodies)

    # the requested run: the job the sensor targets, with the code location's resources (from the environment)
    monkeypatch.setenv("F1_WAREHOUSE_URL", res["warehouse"].url)
    job = definitions.defs.resolve_job_def(freshness.JOB_NAME)
    run = job.execute_in_process(instance=instance, tags=first.run_requests[0].tags)
    evaluations = {e.asset_key.to_user_string(): e for e in run.get_asset_check_evaluations()}
    assert not evaluations["raw_results"].passed and _stale(evaluations["raw_results"]) == {r1}

    again = _tick(instance, res, first.cursor)
    assert not again.run_requests and "unchanged" in again.skip_reason.skip_message
    assert len(webhook.bodies) == len(expected)  # nothing new: no second alert

    _record(instance, r1, *JOLPICA)  # fewer stale partitions: a check run, no alert
    fixed = _tick(instance, res, again.cursor)
    assert len(fixed.run_requests) == 1 and fixed.run_requests[0].run_key != first.run_requests[0].run_key
    assert len(webhook.bodies) == len(expected)

    # 4.5 h later: round 2 (then 6.5 h) is past its FastF1 bound, round 3 (11 h) past telemetry_features' 7 h,
    # round 1 (29 h) past lap_features' 25 h: exactly those are new
    later = freshness.freshness_tick(instance, res["warehouse"], fixed.cursor, dt.datetime.now(dt.UTC) + 4.5 * H)
    assert len(later.run_requests) == 1
    new = [(b["text"].split()[1], b["text"].split()[2]) for b in webhook.bodies[len(expected):]]
    assert sorted(new) == sorted([("fastf1_laps", r2), ("raw_telemetry", r2), ("telemetry_features", r3),
                                  ("lap_features", r1)])


def _write_calendar(url: str, season: int, rows: list[tuple[int, dt.date, str | None, bool]]) -> WarehouseResource:
    """raw_races rows (round, date, time, sprint) written the way the warehouse IO manager writes them."""
    frame = pd.DataFrame([{"season": season, "round": rnd, "race_name": f"Test Grand Prix {rnd}",
                           "circuit_id": f"circuit_{rnd}", "circuit_name": None, "locality": None, "country": None,
                           "lat": None, "lng": None, "race_date": day, "race_time": time, "has_sprint": sprint,
                           "url": None}
                          for rnd, day, time, sprint in rows])
    warehouse = WarehouseResource(url=url)
    warehouse.get().replace_partitions("raw_races", frame, [{"season": season}])
    return warehouse


def test_recent_races_reads_the_calendar_on_both_engines(warehouse_url, instance):
    now = dt.datetime(2024, 6, 10, 12, tzinfo=dt.UTC)
    warehouse = _write_calendar(warehouse_url, 2024, [
        (5, dt.date(2024, 5, 30), None, False),  # no time published: noon UTC
        (6, dt.date(2024, 6, 2), "13:00:00Z", True),
        (7, dt.date(2024, 6, 9), "05:00:00Z", False),  # not a registered partition: ignored
        (3, dt.date(2024, 4, 1), "15:00:00Z", False),  # long before the window
    ])
    races = freshness.recent_races(warehouse, ["2024-03", "2024-05", "2024-06"], now)
    assert races == [Race("2024-05", dt.datetime(2024, 5, 30, 12, tzinfo=dt.UTC), False),
                     Race("2024-06", dt.datetime(2024, 6, 2, 13, tzinfo=dt.UTC), True)]
    states = _states(assess(races, {}, now), "2024-06")
    assert states["raw_sprint_results"] == "stale" and states["raw_results"] == "stale"


def test_a_refused_alert_is_sent_at_the_next_tick_and_log_only_counts_as_sent(duckdb_url, instance, webhook,
                                                                             monkeypatch):
    now = dt.datetime.now(dt.UTC)
    start = now - 30 * H
    warehouse = _write_calendar(duckdb_url, start.year, [(1, start.date(), start.strftime("%H:%M:%SZ"), False)])
    instance.add_dynamic_partitions("races", [f"{start.year}-01"])
    webhook.status = 404  # Slack's answer for a removed webhook (a 4xx: notify does not retry at once)
    refused = freshness.freshness_tick(instance, warehouse, None, now)
    state = json.loads(refused.cursor)
    assert state["alerted"] == [] and len(webhook.bodies) == len(state["stale"]) == len(freshness.BOUNDS) - 1
    webhook.status = 200
    sent = freshness.freshness_tick(instance, warehouse, refused.cursor, now)
    assert json.loads(sent.cursor)["alerted"] == state["stale"] and not sent.run_requests  # same stale set
    assert len(webhook.bodies) == 2 * len(state["stale"])

    monkeypatch.delenv("F1_ALERT_WEBHOOK_URL")  # log only: alerted once, in the log
    logged = freshness.freshness_tick(instance, warehouse, refused.cursor, now)
    assert json.loads(logged.cursor)["alerted"] == state["stale"]
    assert len(webhook.bodies) == 2 * len(state["stale"])


def test_unreachable_warehouse_is_a_skip_reason(instance):
    warehouse = WarehouseResource(url="postgresql://f1:hunter2@127.0.0.1:9/f1")
    instance.add_dynamic_partitions("races", ["2024-05"])
    result = freshness.freshness_tick(instance, warehouse, None, dt.datetime.now(dt.UTC))
    assert isinstance(result, dg.SkipReason), result
    assert "warehouse unavailable" in result.skip_message and "hunter2" not in result.skip_message


def test_alerts_past_the_tick_budget_wait_for_the_next_tick(duckdb_url, instance, webhook, monkeypatch):
    """A slow webhook must not hold the tick past the daemon's 60 s: after ALERT_BUDGET_SECONDS the remaining
    alerts are left for the next tick (here a budget already spent: none is sent, then all)."""
    now = dt.datetime.now(dt.UTC)
    start = now - 30 * H
    warehouse = _write_calendar(duckdb_url, start.year, [(1, start.date(), start.strftime("%H:%M:%SZ"), False)])
    instance.add_dynamic_partitions("races", [f"{start.year}-01"])
    monkeypatch.setattr(freshness, "ALERT_BUDGET_SECONDS", -1.0)
    first = freshness.freshness_tick(instance, warehouse, None, now)
    state = json.loads(first.cursor)
    assert state["stale"] and state["alerted"] == [] and webhook.bodies == [] and first.run_requests
    monkeypatch.setattr(freshness, "ALERT_BUDGET_SECONDS", 25.0)
    second = freshness.freshness_tick(instance, warehouse, first.cursor, now)
    assert json.loads(second.cursor)["alerted"] == state["stale"] and len(webhook.bodies) == len(state["stale"])
