"""Alerting: the `Alert` every rule raises, `notify` (one Slack-compatible webhook, F1_ALERT_WEBHOOK_URL; unset =
log only) and the two run alerts of the design's "Alerting Rules", as Dagster sensors:

- `repeated_failures_alert` (a run-failure sensor on every job of this code location, ad-hoc asset runs included):
  more than 3 failed runs of the same job and partition within an hour → ONE critical alert. Stateless (the
  run-failure sensor's cursor belongs to Dagster): each failure replays the last 24 h of failures of its job and
  partition through `alert_points`, which alerts at the 4th failure inside a trailing hour and then stays quiet for
  an hour (the 5th, 6th … failure of that hour add nothing; failures that go on past the hour alert once more,
  a reminder per hour at most). Every evaluation of the same history agrees, so no alert is sent twice.
- `run_sla_alert` (every 5 min): a run in progress longer than its SLA → one warning alert per run (its cursor
  holds the run ids it alerted, bounded). The SLA is the run's `f1/sla_seconds` tag when set (a job tag, or one a
  launcher adds), else 6 h for a run that materializes a FastF1 asset (`FASTF1_ASSETS`; what it plans, from its
  `ASSET_MATERIALIZATION_PLANNED` events, so job runs, ad-hoc runs and backfill runs alike) and 1 h for any other
  (the design's `ingest_fastf1: 21600s`, `ingest_jolpica: 3600s`).

Other rules (freshness, data quality) import `Alert` and `notify` to reach the same channel. Each message names
the rule, severity, job, partition, asset, a link to the run in the UI (F1_DAGSTER_UI_URL) and the error summary,
every string passed through `settings.redact`. A webhook that is down is logged as an error; no sensor ever
crashes on it (their own errors become a logged SkipReason). Loaded by `f1_assets.definitions` (`SENSORS`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import dagster as dg
import requests

from f1_assets import settings
from f1_assets.audit import failure_message, partition_of_run
from f1_assets.sensors import load_cursor

LOG = logging.getLogger(__name__)

CRITICAL, WARNING = "critical", "warning"
HTTP_TIMEOUT_SECONDS = 10  # per socket operation
DELIVERY_DEADLINE_SECONDS = 12  # per attempt, the whole exchange: two attempts stay well inside a 60 s tick
RETRY_PAUSE_SECONDS = 1.0

# repeated failures: the design's "> 3 in 1 hour for same task"
FAILURE_WINDOW_SECONDS = 3600
MAX_FAILURES_IN_WINDOW = 3
FAILURE_LOOKBACK_SECONDS = 24 * 3600  # the history `alert_points` replays; enough for its hourly reminders
FAILURE_LOOKBACK_LIMIT = 1000

# SLA: the design's `ingest_jolpica: 3600s`, `ingest_fastf1: 21600s`
SLA_TAG = "f1/sla_seconds"
DEFAULT_SLA_SECONDS = 3600
FASTF1_SLA_SECONDS = 6 * 3600
FASTF1_ASSETS = frozenset({"fastf1_laps", "raw_telemetry", "telemetry_features"})
SLA_INTERVAL_SECONDS = 5 * 60
SLA_CURSOR_LIMIT = 500  # alerted run ids kept in the cursor; far more than runs in progress at once

_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@dataclass(frozen=True)
class Alert:
    rule: str  # "repeated_failures" | "sla_violation" | "freshness" | "data_quality"
    severity: str  # "critical" | "warning"
    title: str  # one line
    summary: str  # the reason / error summary (redacted before sending)
    job: str | None = None
    partition: str | None = None
    run_id: str | None = None
    asset: str | None = None


# ------------------------------------------------------------------------- delivery

def _known_secrets() -> tuple[str, ...]:
    """Secrets that may be quoted back outside any URL form: the warehouse password, the webhook's own path
    and query (a Slack webhook's path is its credential)."""
    found = list(settings.url_password(os.environ.get(settings.WAREHOUSE_URL, "")))
    hook = os.environ.get(settings.ALERT_WEBHOOK_URL, "").strip()
    if hook:
        found.append(hook)
        try:
            parts = urlsplit(hook)
            for part in (parts.path, parts.query):
                if len(part) > 1:  # as written, and as requests re-encodes it in its error messages
                    found.extend({part, requests.utils.requote_uri(part), quote(part, safe="/%"),
                                  quote(part, safe="/%").replace("%7C", "%7c")})
        except ValueError:
            pass
    return tuple(sorted(set(found), key=len, reverse=True))


def _redacted(value: Any, secrets: tuple[str, ...]) -> Any:
    """Every string of a JSON-able body through `settings.redact` (strings one by one: the JSON stays valid)."""
    if isinstance(value, str):
        return settings.redact(value, secrets=secrets)
    if isinstance(value, Mapping):
        return {k: _redacted(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, secrets) for v in value]
    return value


def _escape(text: str) -> str:
    """Slack mrkdwn: `&`, `<`, `>` are control characters (links), so literal ones are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_link(run_id: str) -> str:
    return f"{settings.dagster_ui_url()}/runs/{run_id}"


def message(alert: Alert) -> dict[str, Any]:
    """The Slack-compatible body (`text` for notifications and plain webhooks, `blocks` for Slack), redacted."""
    link = run_link(alert.run_id) if alert.run_id else None
    fields = [("Rule", alert.rule), ("Severity", alert.severity), ("Job", alert.job),
              ("Partition", alert.partition), ("Asset", alert.asset)]
    facts = [(name, _escape(value)) for name, value in fields if value]
    if link:
        facts.append(("Run", f"<{link}|{_escape(alert.run_id or '')}>"))
    summary = _escape(alert.summary.strip())[:2800] or "(no details)"  # a section's text holds 3000 characters
    text = "\n".join([f"[{alert.severity.upper()}] {_escape(alert.title)}",
                      " · ".join(f"{name.lower()}: {value}" for name, value in facts), summary])
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"[{alert.severity.upper()}] {alert.title}"[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in facts]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{summary}```"}},
    ]
    return _redacted({"text": text, "blocks": blocks}, _known_secrets())


def notify(alert: Alert, log: logging.Logger | None = None) -> bool:
    """Deliver to F1_ALERT_WEBHOOK_URL as Slack-compatible JSON; unset = log only (returns False).
    Never raises (a webhook that is down is logged as an error); returns True when the webhook answered 2xx."""
    log = log or LOG
    try:
        return _deliver(alert, log)
    except Exception as exc:  # an alert path must never take its caller (a sensor, a check) down with it
        log.error(settings.redact(f"alert {alert.rule!r} not delivered ({type(exc).__name__}: {exc}): "
                                  f"{alert.title}", secrets=_known_secrets()))
        return False


def _deliver(alert: Alert, log: logging.Logger) -> bool:
    body = message(alert)
    url = settings.alert_webhook_url()
    if url is None:
        log.warning(f"alert (F1_ALERT_WEBHOOK_URL unset, log only): {body['text']}")
        return False
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"  # never the path
    secrets = _known_secrets()
    problem = ""
    for attempt in (1, 2):  # one retry: on a refused/reset connection or a 5xx, never on a 4xx (it would repeat)
        try:
            response = _post_within(url, json.dumps(body), DELIVERY_DEADLINE_SECONDS)
        except TimeoutError as exc:  # the webhook trickles its answer: it may have the alert; not sent twice
            problem = str(exc)
            break
        except requests.ConnectionError as exc:
            problem = f"connection failed ({type(exc).__name__}: {exc})"
        except requests.RequestException as exc:  # a read timeout: the webhook may have it; not sent twice
            problem = f"{type(exc).__name__}: {exc}"
            break
        else:
            if 200 <= response.status_code < 300:
                log.info(f"alert sent to the webhook at {where}: {alert.title}")
                return True
            # a redirect is not followed (requests would turn the POST into a GET without the alert, or send the
            # alert to another host): not delivered
            problem = f"HTTP {response.status_code} {response.text[:200]!r}"
            if response.status_code < 500:
                break
        if attempt == 1:
            time.sleep(RETRY_PAUSE_SECONDS)
    log.error(settings.redact(f"alert not delivered to the webhook at {where}: {problem}; the alert: {body['text']}",
                              secrets=secrets))
    return False


def _post_within(url: str, data: str, deadline: float) -> requests.Response:
    """POST with a deadline on the whole exchange (requests' timeout bounds each socket read, so a webhook that
    trickles its answer could hold a sensor tick past the daemon's 60 s). The request runs in a daemon thread;
    past the deadline it is abandoned and TimeoutError raised."""
    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            outcome["response"] = requests.post(url, data=data, timeout=HTTP_TIMEOUT_SECONDS, allow_redirects=False,
                                                headers={"Content-Type": "application/json"})
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=post, name="alert-webhook", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise TimeoutError(f"no complete answer within {deadline:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]


# ------------------------------------------------------------------------- repeated failures

def alert_points(failures: Iterable[tuple[float, int]]) -> set[int]:
    """Of `failures` ((end time, storage id) of the failed runs of one job and partition), those that raise an
    alert: a failure alerts when the trailing hour ending at it holds more than 3 failures and no failure of
    that hour alerted already. Pure and order-independent, so every evaluation of the same history agrees."""
    window: deque[float] = deque()
    last_alert: float | None = None
    alerting: set[int] = set()
    for ended, ident in sorted(failures):
        window.append(ended)
        while window[0] <= ended - FAILURE_WINDOW_SECONDS:
            window.popleft()
        if len(window) > MAX_FAILURES_IN_WINDOW and (last_alert is None
                                                     or ended - last_alert >= FAILURE_WINDOW_SECONDS):
            alerting.add(ident)
            last_alert = ended
    return alerting


def _ended(record) -> float:
    return record.end_time if record.end_time is not None else record.update_timestamp.timestamp()


def _partition_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags that select the same partition (or range) in a RunsFilter; none for an unpartitioned run."""
    if tags.get("dagster/partition"):
        return {"dagster/partition": tags["dagster/partition"]}
    return {t: tags[t] for t in _RANGE_TAGS if tags.get(t)}


def repeated_failure_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, error: str) -> Alert | None:
    """The critical alert for failed `run` when it is an alert point of its job and partition, else None."""
    partition = partition_of_run(run.tags)
    (this,) = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
    ended = _ended(this)
    since = dt.datetime.fromtimestamp(ended - FAILURE_LOOKBACK_SECONDS, dt.UTC)
    records = instance.get_run_records(
        dg.RunsFilter(job_name=run.job_name, statuses=[dg.DagsterRunStatus.FAILURE],
                      tags=_partition_tags(run.tags), updated_after=since),
        limit=FAILURE_LOOKBACK_LIMIT,
    )
    # same partition exactly (an unpartitioned run's filter has no tag); nothing after this failure counts
    # an ad-hoc run (UI "Materialize", `dagster asset materialize`, `dg.materialize`) runs Dagster's implicit job
    # (`__ASSET_JOB`, `__ephemeral_asset_job__`) whatever it selects: its "task" is its asset selection, so
    # failures of other assets do not add up with its own
    adhoc = run.job_name.startswith("__")
    selection = frozenset(_planned_assets(instance, run)) if adhoc else frozenset()
    history = [(_ended(r), r.storage_id) for r in records
               if partition_of_run(r.dagster_run.tags) == partition and _ended(r) <= ended
               and (not adhoc or frozenset(_planned_assets(instance, r.dagster_run)) == selection)]
    if this.storage_id not in alert_points(history):
        return None
    count = sum(1 for t, _ in history if t > ended - FAILURE_WINDOW_SECONDS)
    assets = ", ".join(sorted(selection)) if adhoc else None
    where = (f" ({assets})" if assets else "") + (f" for partition {partition}" if partition else "")
    return Alert(
        rule="repeated_failures", severity=CRITICAL,
        title=f"{run.job_name}{where}: {count} failed runs within an hour",
        summary=f"{count} runs of {run.job_name}{where} failed in the hour to "
                f"{dt.datetime.fromtimestamp(ended, dt.UTC):%Y-%m-%d %H:%M} UTC. Latest error: {error}",
        job=run.job_name, partition=partition, run_id=run.run_id, asset=assets,
    )


def _error_summary(context: dg.RunFailureSensorContext) -> str:
    """The failed step's own message (`audit.failure_message`), else the run failure's."""
    steps = context.get_step_failure_events()
    if steps:
        more = f" (and {len(steps) - 1} more failed step(s))" if len(steps) > 1 else ""
        return f"step {steps[0].step_key}: {failure_message(steps[0])}{more}"
    return failure_message(context.failure_event) if context.failure_event else "the run failed"


@dg.run_failure_sensor(
    name="repeated_failures_alert",
    # every run of the instance: runs launched in process (`f1-assets`, `dagster asset materialize`) carry no
    # code-location origin, and a sensor limited to its own location skips them (one code location here)
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Critical alert (F1_ALERT_WEBHOOK_URL) when a job fails more than 3 times within an hour for the "
    "same partition: once at the 4th failure, then at most once an hour while failures go on.",
)
def repeated_failures_alert(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
    try:
        alert = repeated_failure_alert(context.instance, context.dagster_run, _error_summary(context))
        if alert is not None:
            notify(alert, context.log)
        return None  # None: the sensor goes on with the next failure of this tick
    except Exception as exc:
        reason = settings.redact(f"repeated_failures_alert: run {context.dagster_run.run_id} not evaluated: "
                                 f"{type(exc).__name__}: {exc}")
        context.log.error(reason)
        return dg.SkipReason(reason)


# ------------------------------------------------------------------------- SLA

def _planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[str]:
    """The assets the run materializes: its selection, else what its plan announced (a whole-job run)."""
    if run.asset_selection:
        return {key.to_user_string() for key in run.asset_selection}
    planned = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    return {e.dagster_event.asset_key.to_user_string() for e in planned
            if e.dagster_event is not None and e.dagster_event.asset_key is not None}


def _tagged_sla(run: dg.DagsterRun) -> int | None:
    tagged = run.tags.get(SLA_TAG, "").strip()
    # ASCII digits only (str.isdigit accepts '²', which int() refuses)
    return int(tagged) if re.fullmatch(r"[0-9]{1,9}", tagged) and int(tagged) > 0 else None


def sla_seconds(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, str]:
    """The run's SLA and where it comes from: its `f1/sla_seconds` tag, else 6 h for FastF1 assets, else 1 h."""
    tagged = _tagged_sla(run)
    if tagged:
        return tagged, f"tag {SLA_TAG}"
    fastf1 = sorted(_planned_assets(instance, run) & FASTF1_ASSETS)
    if fastf1:
        return FASTF1_SLA_SECONDS, f"FastF1 run ({', '.join(fastf1)})"
    return DEFAULT_SLA_SECONDS, "ingest run"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _alerted_runs(cursor: str | None) -> list[str]:
    """The run ids the cursor holds; an unreadable cursor starts afresh (at worst one repeated alert)."""
    runs = load_cursor(cursor).get("alerted")
    return [r for r in runs if isinstance(r, str)] if isinstance(runs, list) else []


def check_sla(instance: dg.DagsterInstance, now: float, cursor: str | None,
              log: logging.Logger | None = None) -> dg.SensorResult:
    """One SLA evaluation at `now` (seconds since the epoch): a warning alert for each run in progress past its
    SLA not alerted yet; the cursor is the alerted run ids (newest last, bounded)."""
    alerted = _alerted_runs(cursor)
    seen = set(alerted)
    late: list[str] = []
    running = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    for record in running:
        run = record.dagster_run
        started = record.start_time if record.start_time is not None else record.create_timestamp.timestamp()
        elapsed = now - started
        # below the shortest SLA nothing can be late: no need to read the run's plan
        if run.run_id in seen or elapsed <= min(DEFAULT_SLA_SECONDS, _tagged_sla(run) or DEFAULT_SLA_SECONDS):
            continue
        limit, source = sla_seconds(instance, run)
        if elapsed <= limit:
            continue
        partition = partition_of_run(run.tags)
        notify(Alert(
            rule="sla_violation", severity=WARNING,
            title=f"{run.job_name}{f' ({partition})' if partition else ''} running for {_duration(elapsed)}, "
                  f"past its SLA of {_duration(limit)}",
            summary=f"Run {run.run_id} started {dt.datetime.fromtimestamp(started, dt.UTC):%Y-%m-%d %H:%M} UTC and "
                    f"is still in progress after {_duration(elapsed)}; its SLA is {_duration(limit)} ({source}).",
            job=run.job_name, partition=partition, run_id=run.run_id,
        ), log)
        alerted.append(run.run_id)
        seen.add(run.run_id)
        late.append(run.run_id)
    new_cursor = json.dumps({"alerted": alerted[-SLA_CURSOR_LIMIT:]})
    reason = (f"{len(late)} run(s) past their SLA: {', '.join(late)}" if late
              else f"{len(running)} run(s) in progress, none newly past its SLA")
    return dg.SensorResult(skip_reason=reason, cursor=new_cursor)


@dg.sensor(
    name="run_sla_alert",
    minimum_interval_seconds=SLA_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Warning alert (F1_ALERT_WEBHOOK_URL), once per run, for a run in progress past its SLA: the "
    f"run's {SLA_TAG} tag, else 6 h when it materializes a FastF1 asset, else 1 h.",
)
def run_sla_alert(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    try:
        return check_sla(context.instance, time.time(), context.cursor, context.log)
    except Exception as exc:
        reason = settings.redact(f"run_sla_alert: not evaluated: {type(exc).__name__}: {exc}")
        context.log.error(reason)
        return dg.SkipReason(reason)


# ------------------------------------------------------------------------- data quality

QUALITY_CHECK = "quality_score"  # the rule of checks/rules.toml whose WARN is the design's data_quality_degradation


def quality_alerts(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[Alert]:
    """One warning per failed `quality_score` check evaluation of the run (score < 95), naming the asset, the
    partition and the columns that pull the score down (the check's description)."""
    out = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if evaluation.check_name != QUALITY_CHECK or evaluation.passed:
            continue
        asset = evaluation.asset_key.to_user_string()
        partition = partition_of_run(run.tags)
        out.append(Alert(
            rule="data_quality", severity=WARNING,
            title=f"{asset}{f' ({partition})' if partition else ''}: data quality score below 95",
            summary=evaluation.description or "quality_score check failed",
            job=run.job_name, partition=partition, run_id=run.run_id, asset=asset,
        ))
    return out


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="data_quality_alert",
    monitor_all_code_locations=True,  # in-process runs too (see repeated_failures_alert)
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Warning alert (F1_ALERT_WEBHOOK_URL) for each quality_score check below 95 in a run that "
    "succeeded (a WARN never fails the run; a failed run is the repeated-failures alert's).",
)
def data_quality_alert(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
    try:
        for alert in quality_alerts(context.instance, context.dagster_run):
            notify(alert, context.log)
    except Exception as exc:
        reason = settings.redact(f"data_quality_alert: not evaluated: {type(exc).__name__}: {exc}")
        context.log.error(reason)
        return dg.SkipReason(reason)
    return None


SENSORS: list = [repeated_failures_alert, run_sla_alert, data_quality_alert]
