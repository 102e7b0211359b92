"""End to end: `dagster dev` (webserver + daemon) on a dagster-postgres instance, the Jolpica replay
server as upstream, a fresh PostgreSQL schema as warehouse. Before any race is materialized (only the
season calendar, raw_races, is), the catalog already shows every table's declared columns with their
descriptions: through the UI's GraphQL API for every table asset, and in headless Chromium on the
asset page of a never-materialized table. Then a backfill of 2023-01 and 2023-10 is launched through
GraphQL `launchPartitionBackfill` (f1_assets.backfill), the daemon runs it, the warehouse holds the
rows, the audit sensors logged the runs, and Chromium renders the asset graph once its nodes have
loaded. Screenshots in test-artifacts/: e2e_catalog_columns.png, e2e_asset_graph.png.

Needs Debian's chromium (/usr/bin/chromium): skipped without it, except under CI=true.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from f1_assets import backfill
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import table
from f1_assets_tests.conftest import PG_BASE, REPO
from f1_assets_tests.helpers import materialize_calendar, resources

pytestmark = pytest.mark.shared_data
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# every table asset, warehouse and Parquet (train/validation/test are views of lap_features)
CATALOG_TABLES = ("raw_races", "raw_results", "raw_qualifying", "raw_sprint_results", "raw_laps", "raw_pit_stops",
                  "fastf1_laps", "raw_telemetry", "lap_features", "telemetry_features", "driver_profiles")
CATALOG = """
{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId }
    metadataEntries { label ... on TableSchemaMetadataEntry { schema { columns { name type description } } } } } }
"""
SHOWN_COLUMN = ("lap_features", "lap_time_ms")  # on the asset page before any run; its description has a unit


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
    # SIGINT first: dagster dev's own clean shutdown stops its webserver, daemon and code server (a SIGTERM to
    # the group left the code server's grandchild running)
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _assert_catalog_declares_columns(url: str) -> None:
    """Through the UI's own GraphQL API: each table asset's definition carries its declared column schema,
    every column described, while raw_races is the only table materialized."""
    nodes = {"/".join(n["assetKey"]["path"]): n for n in backfill.graphql(url, CATALOG, {})["assetNodes"]}
    missing = sorted(set(CATALOG_TABLES) - nodes.keys())
    assert not missing, f"table assets missing from the catalog: {missing}"
    assert [name for name in CATALOG_TABLES if nodes[name]["assetMaterializations"]] == ["raw_races"]
    for name in CATALOG_TABLES:
        schemas = [e["schema"]["columns"] for e in nodes[name]["metadataEntries"]
                   if e["label"] == "dagster/column_schema"]
        assert len(schemas) == 1, f"{name}: {len(schemas)} dagster/column_schema entries in its definition metadata"
        assert [c["name"] for c in schemas[0]] == table(name).column_names, f"{name}: catalog columns != declared"
        undescribed = [c["name"] for c in schemas[0] if not (c["description"] or "").strip()]
        assert not undescribed, f"{name}: columns without a description in the catalog: {undescribed}"
        declared = table(name).table_schema().columns
        assert [(c["type"], c["description"]) for c in schemas[0]] == [(c.type, c.description) for c in declared], name


def _dismiss_community_dialog(page: Page, url: str) -> None:
    """Skip the 'Join the Dagster community' dialog, shown a second after the first page of a fresh instance
    loads (on a 127.0.0.1 origin) until it is dismissed once."""
    if not backfill.graphql(url, "{ shouldShowNux }", {})["shouldShowNux"]:
        return
    skip = page.get_by_role("button", name="Skip")
    skip.click(timeout=30_000)
    expect(skip).to_be_hidden()


def _check_columns_page(page: Page, url: str) -> None:
    """The asset page of a never-materialized table lists its declared columns, one with its description
    (units included), then a screenshot."""
    name, column = SHOWN_COLUMN
    page.goto(f"{url}/assets/{name}", wait_until="domcontentloaded", timeout=30_000)
    try:
        _dismiss_community_dialog(page, url)
        columns = page.locator("table").filter(has=page.locator("thead", has_text="Column name"))
        row = (columns.locator("tbody tr").filter(has=page.get_by_text(column, exact=True))
               .filter(has_text=table(name).column(column).described()))
        row.wait_for(timeout=30_000)
        expect(page.get_by_text("Never materialized")).to_be_visible()
        shown = [text.strip() for text in columns.locator("tbody tr td:first-child").all_inner_texts()]
        assert shown == table(name).column_names, f"/assets/{name} lists columns {shown}"
    finally:
        page.screenshot(path=str(ARTIFACTS / "e2e_catalog_columns.png"))


def _check_asset_graph(page: Page, url: str) -> None:
    """One group's graph (the global graph collapses groups into boxes), screenshot once every node has
    loaded: asset names shown, no node still 'Loading...'."""
    page.goto(f"{url}/locations/__repository__@f1_assets/asset-groups/features", wait_until="domcontentloaded",
              timeout=30_000)
    try:
        _dismiss_community_dialog(page, url)
        for name in ("lap_features", "telemetry_features"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Loading")).to_have_count(0, timeout=30_000)
        expect(page.get_by_text("Asset checks").first).to_be_visible()
    finally:
        page.screenshot(path=str(ARTIFACTS / "e2e_asset_graph.png"))


@contextmanager
def _chromium_page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def test_backfill_through_graphql_and_asset_graph_in_chromium(replay_server, pg_url, instance_db, tmp_path,
                                                               monkeypatch):
    _require_chromium()
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
        # the catalog before any race run: every table's columns, described
        started = time.monotonic()
        _assert_catalog_declares_columns(url)
        ARTIFACTS.mkdir(exist_ok=True)
        with _chromium_page() as page:
            _check_columns_page(page, url)
        print(f"catalog columns before any race run (GraphQL + Chromium): {time.monotonic() - started:.1f} s")

        started = time.monotonic()
        backfill_id = backfill.launch_backfill(
            url, backfill.backfill_params(list(backfill.DEFAULT_ASSETS), ["2023-01", "2023-10"], title="e2e"))
        status = backfill.wait_for_backfill(url, backfill_id, timeout=300)  # ~115 s idle, ~145 s on a loaded 2-core box
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

        with _chromium_page() as page:
            _check_asset_graph(page, url)
    finally:
        _stop(proc)
