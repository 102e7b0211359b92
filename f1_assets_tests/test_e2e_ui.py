"""End to end: `dagster dev` (webserver + daemon) on a dagster-postgres instance, the Jolpica replay
server as upstream, a fresh PostgreSQL schema as warehouse. A backfill of 2023-01 and 2023-10 is
launched through GraphQL `launchPartitionBackfill` (f1_assets.backfill), the daemon runs it, the
warehouse holds the rows, the audit sensors logged the runs, and headless Chromium renders the asset
graph (screenshot in test-artifacts/).

Needs Debian's chromium (/usr/bin/chromium): skipped without it, except under CI=true.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import requests

from f1_assets import backfill
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.conftest import PG_BASE, REPO
from f1_assets_tests.helpers import materialize_calendar, resources

pytestmark = pytest.mark.shared_data
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing and CI=true requires this test: apt-get install -y chromium")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def instance_db():
    """A fresh PostgreSQL database for the Dagster instance (run, event and schedule storage)."""
    name = f"dagster_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dagster_yaml(db_name: str) -> str:
    # scheme postgresql+psycopg2: dagster-postgres' default URL scheme does not load with SQLAlchemy 2.1
    return f"""
storage:
  postgres:
    postgres_db:
      hostname: 127.0.0.1
      port: 5432
      username: postgres
      password: ""
      db_name: {db_name}
      scheme: postgresql+psycopg2
concurrency:
  pools:
    default_limit: 1
    granularity: op
  runs:
    max_concurrent_runs: 4
telemetry:
  enabled: false
"""


def _wait_for_webserver(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            data = backfill.graphql(url, "{ repositoriesOrError { __typename ... on RepositoryConnection "
                                         "{ nodes { name } } } }", {}, timeout=5)
            if data["repositoriesOrError"].get("nodes"):
                return
        except (requests.RequestException, RuntimeError):
            pass
        time.sleep(1)
    pytest.fail(f"webserver not ready after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_backfill_through_graphql_and_asset_graph_in_chromium(replay_server, pg_url, instance_db, tmp_path,
                                                               monkeypatch):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_dagster_yaml(instance_db))
    f1_home, blobs = tmp_path / "f1_home", tmp_path / "blobs"
    env = {**os.environ, "DAGSTER_HOME": str(home), "F1_HOME": str(f1_home), "F1_BLOB_URL": str(blobs),
           "F1_WAREHOUSE_URL": pg_url, "F1_JOLPICA_URL": replay_server.base_url,
           "F1_JOLPICA_HOURLY_BUDGET": "10000", "DAGSTER_TELEMETRY_ENABLED": "false"}

    # the season calendar first (writes raw_races, registers the 2023 race partitions), in this process
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("F1_HOME", str(f1_home))
    with dg.DagsterInstance.get() as instance:
        materialize_calendar(instance, 2023, resources(pg_url, str(blobs), replay_server.base_url))

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dagster_dev.log"
    dagster = shutil.which("dagster", path=str(REPO / ".venv" / "bin")) or "dagster"
    with log.open("wb") as out:
        proc = subprocess.Popen([dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_webserver(url, proc, log)
        started = time.monotonic()
        backfill_id = backfill.launch_backfill(
            url, backfill.backfill_params(list(backfill.DEFAULT_ASSETS), ["2023-01", "2023-10"], title="e2e"))
        status = backfill.wait_for_backfill(url, backfill_id, timeout=150)
        wall = time.monotonic() - started
        print(f"backfill of 2 races: {wall:.1f} s wall (launch to COMPLETED)")
        assert status["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (status, log.read_text()[-4000:])

        wh = warehouse_from_url(pg_url)
        race = {"season": 2023, "round": 1}
        assert (wh.count("raw_results", race), wh.count("raw_laps", race), wh.count("raw_pit_stops", race),
                wh.count("lap_features", race)) == (20, 1055, 50, 1055)
        assert wh.count("lap_features", {"season": 2023, "round": 10}) > 0

        # the audit sensors log each backfill run's end (daemon ticks every ~15-30 s)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ended = wh.query("SELECT partition_key FROM pipeline_audit_log WHERE status = 'success' "
                             "AND actor = %s", [f"backfill:{backfill_id}"])
            if len(ended) >= 2:
                break
            time.sleep(2)
        assert sorted(ended["partition_key"]) == ["2023-01", "2023-10"]

        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                # one group's graph: the global graph collapses groups into boxes
                page.goto(f"{url}/locations/__repository__@f1_assets/asset-groups/features",
                          wait_until="domcontentloaded", timeout=30_000)
                try:
                    page.get_by_text("lap_features").first.wait_for(timeout=30_000)
                finally:
                    skip = page.get_by_role("button", name="Skip")  # the first-visit community dialog
                    if skip.is_visible():
                        skip.click()
                    page.screenshot(path=str(ARTIFACTS / "e2e_asset_graph.png"), full_page=True)
                assert page.get_by_text("telemetry_features").count() >= 1
            finally:
                browser.close()
    finally:
        _stop(proc)
