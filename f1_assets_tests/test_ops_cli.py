"""The `f1-assets` CLI: keys outside the known range or the schedule get one line and exit 2 (nothing
registered); a run of a kill -9'd CLI is reported failed by the next one; every CLI run prints its
JSON log lines on stdout, FastF1's own lines included, and gets its audit start and end rows."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from f1_assets import cli
from f1_assets.partitions import current_season
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.helpers import synthetic_race, synthetic_schedule
from f1_assets_tests.jolpica_server import JolpicaReplayServer

REPO = Path(__file__).resolve().parents[1]
F1_ASSETS = str(Path(sys.executable).with_name("f1-assets"))
RACE_DAY = dt.date(2024, 3, 2)
UPSTREAM = {**synthetic_schedule(2024, [(1, RACE_DAY, False)]), **synthetic_race(2024, 1, date=RACE_DAY)}


def _env(tmp_path: Path, jolpica_url: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    if not home.exists():
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the project's instance: pools, JSON logs
        dg.DagsterInstance.from_config(str(home))  # its storage made once, before processes race for it
    dead_end = jolpica_url.replace("/ergast/f1/", "/nothing/")  # FastF1's hosts: it finds no data, logs why
    return {"DAGSTER_HOME": str(home), "F1_HOME": str(tmp_path / "f1_home"), "F1_JOLPICA_URL": jolpica_url,
            "F1_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}", "F1_SETTLE_DAYS": "36500",
            "F1_LIVETIMING_URL": dead_end, "F1_FASTF1_SCHEDULE_URL": dead_end}


@pytest.mark.parametrize("argv, message", [
    (["race", f"{current_season() + 1}-01"], f"outside 1950..{current_season()}"),  # the `seasons` partitions' range
    (["season", str(current_season() + 1)], f"outside 1950..{current_season()}"),
    (["race", "1949-01"], "invalid season"),
    (["race", "2024-1"], "expected YYYY-RR"),
    (["race", "2024-05"], "race 2024-05 is not in the 2024 schedule (1 rounds)"),
])
def test_keys_outside_the_range_or_the_schedule(argv, message, tmp_path, monkeypatch, capsys):
    with JolpicaReplayServer(UPSTREAM) as server:
        for name, value in _env(tmp_path, server.base_url).items():
            monkeypatch.setenv(name, value)
        assert cli.main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("f1-assets: error: ") and message in last, err[-2000:]
    assert "Traceback" not in err
    instance = dg.DagsterInstance.get()
    assert instance.get_dynamic_partitions("races") == ([] if argv[1] != "2024-05" else ["2024-01"])
    # only a race key inside the seasons reaches a run: the calendar's, which registers what has run
    assert [r.job_name for r in instance.get_runs()] == (["season_calendar"] if argv[1] == "2024-05" else [])


def _blackhole() -> socket.socket:
    """A port that accepts connections and never answers: a request to it hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _step_started(instance: dg.DagsterInstance) -> bool:
    return any(instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_START) for r in instance.get_runs())


def test_killed_cli_run_is_failed_by_the_next_one_which_logs_json(tmp_path):
    # 1. a CLI run whose upstream never answers, killed with SIGKILL while its step waits
    with _blackhole() as hole:
        env = {**os.environ, **_env(tmp_path, f"http://127.0.0.1:{hole.getsockname()[1]}/ergast/f1/")}
        with open(tmp_path / "killed.log", "w") as log:
            proc = subprocess.Popen([F1_ASSETS, "race", "2024-01"], cwd=REPO, env=env, stdout=log, stderr=log)
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        deadline = time.monotonic() + 120
        while not _step_started(instance):  # then the step holds the `jolpica` pool's one slot
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    (killed,) = instance.get_runs()
    assert killed.status == dg.DagsterRunStatus.STARTED  # nobody else will ever end it

    # 2. the next f1-assets reports it failed, frees its pool slot, and runs the race
    with JolpicaReplayServer(UPSTREAM) as server:
        env = {**os.environ, **_env(tmp_path, server.base_url)}
        out = subprocess.run([F1_ASSETS, "race", "2024-01"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run {killed.run_id} (season_calendar 2024): marked failed" in out.stderr
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    runs = instance.get_runs()
    assert [(r.job_name, r.status) for r in runs] == [
        ("race_pipeline", dg.DagsterRunStatus.SUCCESS), ("season_calendar", dg.DagsterRunStatus.SUCCESS),
        ("season_calendar", dg.DagsterRunStatus.FAILURE)]

    # every stdout line is a JSON log record of a run: Dagster's events and FastF1's own lines
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["dagster_meta"]["run_id"] for r in records} == {runs[0].run_id, runs[1].run_id}
    steps = {r["dagster_meta"]["step_key"] for r in records}
    assert {"raw_races", "raw_laps", "fastf1_laps", "lap_features"} <= steps
    fastf1 = [r for r in records if r["name"].startswith("fastf1")]
    assert fastf1 and {r["levelname"] for r in fastf1} >= {"INFO", "WARNING"}
    assert all(r["dagster_meta"]["step_key"] for r in fastf1)
    # records that carry an exception (FastF1's "Traceback for failure in …") are JSON lines too
    assert "--- Logging error ---" not in out.stderr
    assert any(r.get("exc_text") for r in fastf1) or not any("Traceback" in r["msg"] for r in fastf1)
    # the human-readable copy on stderr is warnings and errors only; the summary says it all in a line
    assert "race_pipeline 2024-01: success" in out.stderr
    assert len(out.stderr.splitlines()) < len(out.stdout.splitlines())

    # audit: start and end rows for the killed run and for each run of the next CLI
    rows = warehouse_from_url(env["F1_WAREHOUSE_URL"]).query(
        "SELECT dag_run_id, event_type, status, actor FROM pipeline_audit_log ORDER BY timestamp")
    by_run = {run_id: sorted(zip(group["event_type"], group["status"], strict=True))
              for run_id, group in rows.groupby("dag_run_id")}
    assert by_run == {
        killed.run_id: [("run_end", "failure"), ("run_start", "started")],
        runs[1].run_id: [("run_end", "success"), ("run_start", "started")],
        runs[0].run_id: [("run_end", "success"), ("run_start", "started")],
    }
    assert set(rows["actor"]) == {f"cli:{socket.gethostname()}"}
