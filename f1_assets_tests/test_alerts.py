"""Alerting (`f1_assets/alerts.py`) on real parts: a webhook server on 127.0.0.1 that records every POST, a real
Dagster instance, real failing runs evaluated by the run-failure sensor as the daemon would, and real runs left
in progress for the SLA rule (its core takes `now`, so no test waits an hour)."""

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from f1_assets import alerts

SECRET = "s3cret"
HOOK_SECRET = "XHOOKSECRETX"  # a Slack webhook's path is its credential


class Webhook:
    """A Slack-like incoming webhook on loopback: records each POST's JSON body; answers `status`."""

    def __init__(self, status: int = 200):
        self.status = status
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.raw.append(data)
                hook.bodies.append(json.loads(data))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok" if hook.status < 300 else b"boom")

            def log_message(self, *args):  # quiet test output
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/{HOOK_SECRET}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setenv("F1_DAGSTER_UI_URL", "http://dagster.internal:3000/")
    monkeypatch.setenv("F1_WAREHOUSE_URL", f"postgresql://u:{SECRET}@h/db")  # its password is masked anywhere
    yield hook
    hook.stop()


# ------------------------------------------------------------------------- repeated failures

races = dg.StaticPartitionsDefinition(["2023-01", "2023-02"])


@dg.asset(partitions_def=races)
def flaky_laps(context: dg.AssetExecutionContext) -> None:
    raise RuntimeError(f"cannot reach postgresql://u:{SECRET}@h/db for {context.partition_key}")


FLAKY = dg.Definitions(assets=[flaky_laps], jobs=[dg.define_asset_job("flaky_race", selection=[flaky_laps])])


def _fail(instance: dg.DagsterInstance, partition: str) -> str:
    result = FLAKY.resolve_job_def("flaky_race").execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False)
    assert not result.success
    return result.run_id


def _evaluate_failure(instance: dg.DagsterInstance, run_id: str):
    """The run-failure sensor on this run's failure, as the daemon calls it."""
    (entry,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        "repeated_failures_alert", entry.dagster_event, instance, instance.get_run_by_id(run_id)).for_run_failure()
    return alerts.repeated_failures_alert(context)


def test_one_alert_at_the_fourth_failure_of_a_job_and_partition(instance, webhook):
    counts, run_ids = [], []
    # 5 failures of 2023-01 interleaved with 3 of 2023-02, all within the hour
    for partition in ["2023-01", "2023-02", "2023-01", "2023-02", "2023-01", "2023-02", "2023-01", "2023-01"]:
        run_id = _fail(instance, partition)
        assert _evaluate_failure(instance, run_id) is None
        run_ids.append((partition, run_id))
        counts.append(len(webhook.bodies))
    # nothing for 3 failures (nor for 2023-02's 3); one at 2023-01's 4th; none at its 5th
    assert counts == [0, 0, 0, 0, 0, 0, 1, 1]
    fourth = [r for p, r in run_ids if p == "2023-01"][3]

    (body,) = webhook.bodies
    text = body["text"]
    assert "[CRITICAL] flaky_race for partition 2023-01: 4 failed runs within an hour" in text
    assert f"<http://dagster.internal:3000/runs/{fourth}|{fourth}>" in text
    assert "step flaky_laps: RuntimeError: cannot reach postgresql://u:***@h/db for 2023-01" in text
    fields = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1] for f in body["blocks"][1]["fields"]}
    assert fields == {"Rule": "repeated_failures", "Severity": "critical", "Job": "flaky_race",
                      "Partition": "2023-01", "Run": f"<http://dagster.internal:3000/runs/{fourth}|{fourth}>"}
    assert "cannot reach postgresql://u:***@h/db" in body["blocks"][2]["text"]["text"]
    assert SECRET not in webhook.raw[0].decode() and HOOK_SECRET not in webhook.raw[0].decode()


def test_alert_points_once_per_hour_while_failures_go_on():
    minute = 60.0
    every_10 = [(i * 10 * minute, i) for i in range(13)]  # 0..120 min: the 4th at 30 min, then an hour later
    assert alerts.alert_points(every_10) == {3, 9}
    assert alerts.alert_points(list(reversed(every_10))) == {3, 9}  # the order records come in does not matter
    assert alerts.alert_points([(i * 20 * minute, i) for i in range(10)]) == set()  # 3 an hour is not > 3
    assert alerts.alert_points([(i * 19 * minute, i) for i in range(4)]) == {3}  # 4 within 57 min
    assert alerts.alert_points([(i * 25 * minute, i) for i in range(4)]) == set()  # 4 spread over 75 min


# ------------------------------------------------------------------------- SLA

@contextlib.contextmanager
def _run_in_progress(instance: dg.DagsterInstance, asset_name: str, tags: dict[str, str] | None = None):
    """A real run of one asset named `asset_name`, held in STARTED until the block ends; yields its run record."""
    release = threading.Event()

    @dg.asset(name=asset_name)
    def waiting() -> int:
        release.wait(120)
        return 1

    job_name = f"hold_{asset_name}"
    defs = dg.Definitions(assets=[waiting], jobs=[dg.define_asset_job(job_name, selection=[waiting])])
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, tags=tags or {})))
    thread.start()
    try:
        record = None
        for _ in range(600):  # waits for the run to start; the assertions below never depend on time
            records = [r for r in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                       if r.dagster_run.job_name == job_name]
            if records:
                record = records[0]
                break
            time.sleep(0.05)
        assert record is not None and record.start_time is not None
        yield record
    finally:
        release.set()
        thread.join()
    assert outcome["result"].success


def test_sla_alerts_once_per_run_past_its_threshold(instance, webhook):
    with _run_in_progress(instance, "raw_results") as record:
        start, run_id = record.start_time, record.dagster_run.run_id
        early = alerts.check_sla(instance, start + 30 * 60, None)
        assert webhook.bodies == [] and "1 run(s) in progress" in early.skip_reason.skip_message

        late = alerts.check_sla(instance, start + 61 * 60, early.cursor)
        assert len(webhook.bodies) == 1 and run_id in late.skip_reason.skip_message
        again = alerts.check_sla(instance, start + 90 * 60, late.cursor)
        assert len(webhook.bodies) == 1 and json.loads(again.cursor)["alerted"] == [run_id]

        # the sensor itself, at the real time (the run has just started): a result, no alert
        with dg.build_sensor_context(instance=instance) as context:
            result = alerts.run_sla_alert(context)
        assert isinstance(result, dg.SensorResult) and len(webhook.bodies) == 1

    text = webhook.bodies[0]["text"]
    assert text.startswith("[WARNING] hold_raw_results running for 1 h 01 min, past its SLA of 1 h 00 min")
    assert f"/runs/{run_id}|" in text and "(ingest run)" in text
    assert "sla_violation" in json.dumps(webhook.bodies[0]["blocks"])


def test_sla_of_a_fastf1_run_is_six_hours_and_a_tag_overrides_it(instance, webhook):
    with _run_in_progress(instance, "fastf1_laps") as record:
        start = record.start_time
        assert alerts.sla_seconds(instance, record.dagster_run) == (6 * 3600, "FastF1 run (fastf1_laps)")
        cursor = alerts.check_sla(instance, start + 61 * 60, None).cursor
        assert webhook.bodies == []
        alerts.check_sla(instance, start + 6 * 3600 + 60, cursor)
        assert len(webhook.bodies) == 1 and "past its SLA of 6 h 00 min" in webhook.bodies[0]["text"]

    with _run_in_progress(instance, "raw_laps", tags={alerts.SLA_TAG: "600"}) as record:
        alerts.check_sla(instance, record.start_time + 11 * 60, None)
        assert len(webhook.bodies) == 2 and "tag f1/sla_seconds" in webhook.bodies[1]["text"]


# ------------------------------------------------------------------------- delivery trouble

ALERT = alerts.Alert(rule="freshness", severity="warning", title="raw_laps 2023-01 is stale",
                     summary=f"last loaded from postgresql://u:{SECRET}@h/db", asset="raw_laps", partition="2023-01")


def test_webhook_down_is_logged_and_the_sensor_still_returns(instance, webhook, caplog):
    webhook.stop()  # nothing listens on its port any more
    log = logging.getLogger("test_alerts.down")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert alerts.notify(ALERT, log) is False
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "not delivered" in error.getMessage() and "raw_laps 2023-01 is stale" in error.getMessage()
    assert SECRET not in caplog.text and HOOK_SECRET not in caplog.text

    caplog.clear()
    with _run_in_progress(instance, "raw_pit_stops") as record, caplog.at_level(logging.INFO, logger=log.name):
        result = alerts.check_sla(instance, record.start_time + 2 * 3600, None, log)
    assert isinstance(result, dg.SensorResult) and json.loads(result.cursor)["alerted"] == [record.dagster_run.run_id]
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "hold_raw_pit_stops running for 2 h 00 min" in error.getMessage() and HOOK_SECRET not in caplog.text


def test_webhook_500_is_retried_once_then_logged(webhook, caplog):
    webhook.status = 500
    log = logging.getLogger("test_alerts.500")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert alerts.notify(ALERT, log) is False
    assert len(webhook.bodies) == 2  # one retry
    assert "HTTP 500" in caplog.text and HOOK_SECRET not in caplog.text

    webhook.status = 400  # a refusal is not retried
    assert alerts.notify(ALERT, log) is False and len(webhook.bodies) == 3
    webhook.status = 204
    assert alerts.notify(ALERT, log) is True and len(webhook.bodies) == 4


def test_unset_url_logs_only(webhook, monkeypatch, caplog):
    monkeypatch.delenv("F1_ALERT_WEBHOOK_URL")
    log = logging.getLogger("test_alerts.unset")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert alerts.notify(ALERT, log) is False
    assert webhook.bodies == []
    assert "log only" in caplog.text and "raw_laps 2023-01 is stale" in caplog.text
    assert "postgresql://u:***@h/db" in caplog.text and SECRET not in caplog.text


def test_malformed_url_is_logged_without_its_value(webhook, monkeypatch, caplog):
    monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", f"hooks.slack.example/services/{HOOK_SECRET}")
    log = logging.getLogger("test_alerts.malformed")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert alerts.notify(ALERT, log) is False
    assert "F1_ALERT_WEBHOOK_URL is not an http(s) URL" in caplog.text and HOOK_SECRET not in caplog.text
    assert webhook.bodies == []


# ------------------------------------------------------------------------- data quality

@dg.asset(partitions_def=races, check_specs=[
    dg.AssetCheckSpec("quality_score", asset="thin_results"), dg.AssetCheckSpec("has_rows", asset="thin_results")])
def thin_results(context: dg.AssetExecutionContext):
    yield dg.Output(None)
    # the quality rule's WARN (score < 95), as checks/rules.py reports it; another check failing is not an alert
    yield dg.AssetCheckResult(check_name="quality_score", passed=False, severity=dg.AssetCheckSeverity.WARN,
                              description=f"score 66.7 < 95: q1_ms 66.7% ({context.partition_key})")
    yield dg.AssetCheckResult(check_name="has_rows", passed=False, severity=dg.AssetCheckSeverity.WARN)


def test_a_quality_score_below_95_alerts_once_per_run(instance, webhook):
    result = dg.materialize([thin_results], instance=instance, partition_key="2023-02")
    assert result.success  # a WARN never fails the run
    (entry,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        "data_quality_alert", entry.dagster_event, instance, instance.get_run_by_id(result.run_id))
    alerts.data_quality_alert(context)
    assert len(webhook.bodies) == 1
    text = json.dumps(webhook.bodies[0])
    assert "data_quality" in text and "thin_results" in text and "2023-02" in text
    assert "q1_ms 66.7%" in text and result.run_id in text and HOOK_SECRET not in text

    clean = dg.materialize([clean_results], instance=instance)
    (entry,) = instance.all_logs(clean.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    alerts.data_quality_alert(dg.build_run_status_sensor_context(
        "data_quality_alert", entry.dagster_event, instance, instance.get_run_by_id(clean.run_id)))
    assert len(webhook.bodies) == 1  # a run whose quality checks pass: no message


@dg.asset(check_specs=[dg.AssetCheckSpec("quality_score", asset="clean_results")])
def clean_results():
    yield dg.Output(None)
    yield dg.AssetCheckResult(check_name="quality_score", passed=True, metadata={"quality_score": 100.0})


def test_the_daemon_tick_sees_runs_launched_in_process(instance, webhook):
    """`f1-assets` and `dagster asset materialize` run in process: their runs carry no code-location origin. The
    sensor's real tick (as the daemon evaluates it, cursor and run matching included) still alerts on them."""
    defs = dg.Definitions(assets=[flaky_laps], sensors=[alerts.repeated_failures_alert])
    sensor = defs.get_sensor_def("repeated_failures_alert")

    def tick(cursor):
        # the daemon's context names the sensor's repository (a test context without one would match any run)
        with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                     repository_name="__repository__") as context:
            result = sensor.evaluate_tick(context)
            return result.cursor

    cursor = tick(None)  # the first tick starts from now
    run_ids = [_fail(instance, "2023-01") for _ in range(4)]
    assert all(instance.get_run_by_id(r).remote_job_origin is None for r in run_ids)
    tick(cursor)
    assert len(webhook.bodies) == 1 and run_ids[-1] in json.dumps(webhook.bodies[0])


# ------------------------------------------------------------------------- webhooks that misbehave (breaker's)

class Trickle:
    """A webhook that answers one byte every `gap` seconds: each socket read succeeds, the answer never ends."""

    def __init__(self, gap: float = 0.5):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                with contextlib.suppress(OSError):
                    for _ in range(1000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(gap)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_trickling_webhook_is_abandoned_at_the_deadline(monkeypatch, caplog):
    hook = Trickle()
    monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", hook.url)
    monkeypatch.setattr(alerts, "DELIVERY_DEADLINE_SECONDS", 1.5)
    with caplog.at_level(logging.ERROR):
        assert alerts.notify(alerts.Alert(rule="sla_violation", severity="warning", title="t", summary="s")) is False
    assert "no complete answer within 2 s" in caplog.text  # abandoned, not sent twice
    hook.server.shutdown()


def test_a_redirect_is_not_followed_and_not_delivered(monkeypatch, caplog):
    target = Webhook()  # where a redirect would lead: must receive nothing

    class Moved(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(301)
            self.send_header("Location", target.url)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/old")
    with caplog.at_level(logging.ERROR):
        assert alerts.notify(alerts.Alert(rule="freshness", severity="warning", title="t", summary="s")) is False
    assert "HTTP 301" in caplog.text and target.bodies == []
    server.shutdown()
    target.stop()


def test_a_requoted_webhook_path_is_masked_too(monkeypatch, caplog):
    monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", "http://127.0.0.1:1/hook/TOK EN|SECRET")  # a closed port
    with caplog.at_level(logging.ERROR):
        alerts.notify(alerts.Alert(rule="freshness", severity="warning", title="t", summary="s"))
    assert "not delivered" in caplog.text
    for shown in ("TOK EN", "TOK%20EN", "SECRET"):
        assert shown not in caplog.text


def test_ad_hoc_runs_of_different_assets_do_not_add_up(instance, webhook):
    """UI materializations are all job __ASSET_JOB: 2 failures of one asset and 2 of another on the same
    partition are no repeated failure; a 3rd and 4th of the first are, and the alert names the asset."""

    @dg.asset(partitions_def=races)
    def other_laps() -> None:
        raise RuntimeError("down")

    def fail(asset) -> str:
        result = dg.materialize([asset], instance=instance, partition_key="2023-01", raise_on_error=False)
        assert not result.success and result.dagster_run.job_name.startswith("__")  # Dagster's implicit job
        return result.run_id

    for asset in (flaky_laps, flaky_laps, other_laps, other_laps, flaky_laps):
        _evaluate_failure(instance, fail(asset))
    assert webhook.bodies == []
    _evaluate_failure(instance, fail(flaky_laps))
    assert len(webhook.bodies) == 1 and "flaky_laps" in json.dumps(webhook.bodies[0])


def test_an_odd_sla_tag_or_cursor_does_not_stop_sla_alerts(instance, webhook):
    with _run_in_progress(instance, "slow_a", tags={"f1/sla_seconds": "²"}) as record:  # isdigit, yet no int
        for cursor in ("not json", "[]", '{"alerted": null}'):
            result = alerts.check_sla(instance, record.start_time + 3700, cursor)  # past the default 1 h
            assert record.dagster_run.run_id in result.skip_reason.skip_message
    assert len(webhook.bodies) == 3  # each tick started afresh from an unreadable cursor: alerted again


def test_image_digest_fits_the_audit_column(monkeypatch):
    from f1_assets import settings

    monkeypatch.delenv("F1_IMAGE_DIGEST", raising=False)
    monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", "europe-docker.pkg.dev/p/f1/f1-assets@sha256:" + "ab" * 32)
    assert settings.image_digest() == "sha256:" + "ab" * 32
    monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", "europe-docker.pkg.dev/" + "x" * 150 + ":1.2.3")
    assert len(settings.image_digest()) == 128
    monkeypatch.setenv("F1_IMAGE_DIGEST", "robot:PW@reg/f1:1")
    assert settings.image_digest() == "reg/f1:1"


def test_a_webhook_url_with_a_bad_port_is_refused_up_front(monkeypatch):
    from f1_assets import settings

    for bad in ("http://h:abc/x", "http://u:pw@h:99999/x"):
        monkeypatch.setenv("F1_ALERT_WEBHOOK_URL", bad)
        with pytest.raises(settings.ConfigError, match="F1_ALERT_WEBHOOK_URL"):
            settings.alert_webhook_url()
