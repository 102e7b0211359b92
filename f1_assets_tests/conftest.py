"""Shared fixtures: the real recorded data, PostgreSQL schemas per test, replay servers, instances."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from f1_assets_tests.jolpica_server import Dataset, JolpicaReplayServer, load_replay_dir
from f1_assets_tests.livetiming_server import RecordedUpstreams, serve_recorded_upstreams
from f1_assets_tests.recorded import recorded_data_dir

REPO = Path(__file__).resolve().parents[1]
PG_BASE = os.environ.get("F1_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def shared_data_dir() -> Path:
    """The real recorded upstream data, shipped in the repository (`f1_assets_tests/recorded.py`)."""
    return recorded_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def replay_datasets(shared_data: Path) -> dict[str, Dataset]:
    return load_replay_dir(shared_data / "jolpica-replay")


@pytest.fixture
def replay_server(replay_datasets: dict[str, Dataset]) -> Iterator[JolpicaReplayServer]:
    with JolpicaReplayServer(replay_datasets) as server:
        yield server


def _pg_url(schema: str) -> str:
    sep = "&" if "?" in PG_BASE else "?"
    return f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards; fails if Postgres is down."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_BASE} does not answer: {exc}")
    try:
        yield _pg_url(schema)
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url() -> Iterator[str]:
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture(scope="module")
def recorded_upstreams(shared_data: Path) -> Iterator[RecordedUpstreams]:
    """Live timing, FastF1 schedule files and single Jolpica responses from the recorded data, over HTTP."""
    with serve_recorded_upstreams(shared_data) as served:
        yield served


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def f1_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "f1_home"
    monkeypatch.setenv("F1_HOME", str(home))
    return home


@pytest.fixture
def instance(f1_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst
