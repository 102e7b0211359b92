"""Config errors fail at once and are never retried: each of the five from issue 9 fails a real
materialization of `raw_races` in one attempt, in seconds (the RetryPolicy would take 1.5–2.5 min),
with a message naming the variable; settings and storage factories raise `settings.ConfigError`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pytest

from f1_assets import settings
from f1_assets.assets import ingest_jolpica
from f1_assets.definitions import build_resources
from f1_assets.storage.blob import blob_store_from_url
from f1_assets.storage.warehouse import PostgresWarehouse, WarehouseError, warehouse_from_url
from f1_assets_tests.helpers import materialize, synthetic_schedule
from f1_assets_tests.jolpica_server import JolpicaReplayServer


def _not_a_directory(tmp_path: Path) -> str:
    """A directory nobody can create, root included: its parent is a regular file."""
    (tmp_path / "a-file").write_text("x")
    return str(tmp_path / "a-file" / "home")


def _no_google_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no application_default_credentials.json
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on GCE, even where the CI machine is
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")


CASES = {
    "F1_WAREHOUSE_URL": lambda tmp: "garbage",
    "F1_SETTLE_DAYS": lambda tmp: "abc",
    "F1_JOLPICA_HOURLY_BUDGET": lambda tmp: "-5",
    "F1_BLOB_URL": lambda tmp: "gs://f1-assets-no-credentials/raw",
    "F1_HOME": _not_a_directory,
}


@pytest.mark.parametrize("variable", list(CASES))
def test_config_error_fails_a_materialization_at_once(variable, tmp_path, monkeypatch):
    monkeypatch.setenv("F1_HOME", str(tmp_path / "f1_home"))
    _no_google_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv(variable, CASES[variable](tmp_path))
    schedule = synthetic_schedule(2024, [(1, dt.date(2024, 3, 2), False)])
    with JolpicaReplayServer(schedule) as server, dg.instance_for_test() as instance:
        started = time.monotonic()
        result = materialize([ingest_jolpica.raw_races], partition_key="2024", instance=instance,
                             resources=build_resources(jolpica_url=server.base_url), raise_on_error=False)
        elapsed = time.monotonic() - started

        assert not result.success
        logs = {t: instance.all_logs(result.run_id, of_type=t) for t in
                (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_UP_FOR_RETRY,
                 dg.DagsterEventType.STEP_FAILURE)}
        assert len(logs[dg.DagsterEventType.STEP_START]) == 1, "one attempt"
        assert logs[dg.DagsterEventType.STEP_UP_FOR_RETRY] == [], "never retried"
        (failure,) = logs[dg.DagsterEventType.STEP_FAILURE]
        data = failure.dagster_event.step_failure_data
        assert variable in data.user_failure_data.description
        assert elapsed < 20, f"{variable}: failed after {elapsed:.1f}s"


@pytest.mark.parametrize("variable, value, fragment", [
    ("F1_JOLPICA_HOURLY_BUDGET", "0", "from 1 to 1000000"),
    ("F1_JOLPICA_HOURLY_BUDGET", "2.5", "whole number"),
    ("F1_SETTLE_DAYS", "-1", "from 0 to 36500"),
    ("F1_SETTLE_DAYS", "99999999999999999999", "from 0 to 36500"),
    ("F1_JOLPICA_URL", "ftp://mirror/f1/", "http(s)"),
    ("F1_LIVETIMING_URL", "livetiming.formula1.com", "http(s)"),
    ("F1_FASTF1_SCHEDULE_URL", "https://", "http(s)"),
])
def test_settings_name_the_variable(variable, value, fragment, monkeypatch):
    monkeypatch.setenv(variable, value)
    reader = {"F1_JOLPICA_HOURLY_BUDGET": settings.jolpica_hourly_budget, "F1_SETTLE_DAYS": settings.settle_days,
              "F1_JOLPICA_URL": settings.jolpica_url, "F1_LIVETIMING_URL": settings.livetiming_url,
              "F1_FASTF1_SCHEDULE_URL": settings.fastf1_schedule_url}[variable]
    with pytest.raises(settings.ConfigError, match=variable) as raised:
        reader()
    assert fragment in str(raised.value)
    assert raised.value.allow_retries is False and isinstance(raised.value, dg.Failure)


@pytest.mark.parametrize("url, fragment", [
    ("duckdb://", "duckdb:///path"),
    ("sqlite:///x.db", "not a warehouse URL"),
    ("postgresql://u:secretpw@127.0.0.1:5432/test?nosuchoption=1", "nosuchoption"),
    ("postgresql://u:secret pw@127.0.0.1:5432/test", "spaces"),
    # a `/` or `@` in the password: libpq would read part of it as the host and print it (exit 1, retried)
    ("postgresql://postgres:Xa/secretX@127.0.0.1:5432/nope", "percent-encode it ('/' as %2F)"),
    ("postgresql://u:p@ss@secretX@127.0.0.1/db", "percent-encode it ('@' as %40)"),
])
def test_warehouse_urls_that_can_never_work(url, fragment):
    with pytest.raises(settings.ConfigError, match="F1_WAREHOUSE_URL") as raised:
        warehouse_from_url(url)
    assert fragment in str(raised.value)
    assert "secret" not in str(raised.value)


def test_unwritable_duckdb_directory_and_blob_directory(tmp_path):
    blocked = _not_a_directory(tmp_path)
    with pytest.raises(settings.ConfigError, match="F1_WAREHOUSE_URL: .* is not a writable directory"):
        warehouse_from_url(f"duckdb:///{blocked}/w.duckdb")
    with pytest.raises(settings.ConfigError, match="F1_BLOB_URL: .* is not a writable directory"):
        blob_store_from_url(blocked)
    for bad in ("gs://", "gs://u:secretpw@bucket/x", "s3://bucket/x"):
        with pytest.raises(settings.ConfigError, match="F1_BLOB_URL") as raised:
            blob_store_from_url(bad)
        assert "secretpw" not in str(raised.value)


def test_an_invalid_sslmode_is_a_config_error(pg_url):
    with pytest.raises(settings.ConfigError, match='F1_WAREHOUSE_URL=.*invalid sslmode value: "bogus"'):
        PostgresWarehouse(pg_url + "&sslmode=bogus").connect()


def test_postgres_login_errors(pg_url):
    """A role that does not exist can never log in (ConfigError); a refused connection may be a
    restart (WarehouseError, left to the RetryPolicy). Neither message shows the password."""
    wrong_role = pg_url.replace("postgres@", "f1_no_such_role:secretpw@")
    with pytest.raises(settings.ConfigError, match='F1_WAREHOUSE_URL=.*role "f1_no_such_role" does not exist') as e:
        warehouse_from_url(wrong_role).apply_schema()
    assert "secretpw" not in str(e.value)
    refused = PostgresWarehouse("postgresql://u:secretpw@127.0.0.1:1/test")
    with pytest.raises(WarehouseError, match="F1_WAREHOUSE_URL") as e:
        refused.connect()
    assert not isinstance(e.value, settings.ConfigError) and "secretpw" not in str(e.value)


@pytest.mark.parametrize("text, shown", [
    ("postgresq://u:secretpw@127.0.0.1:5432/x", "postgresq://u:***@127.0.0.1:5432/x"),
    ("postgresql://u:p@ss:w/rd@host/db", None),
    ("gs://u:secretpw@bucket/p and http://a:secretpw@h:1/", "gs://u:***@bucket/p and http://a:***@h:1/"),
    ("u:secretpw@host after a mistyped scheme", "u:***@host after a mistyped scheme"),
    ("host=h password='secret pw' user=u", "host=h password=*** user=u"),
    ("http://127.0.0.1:8080/ergast/f1/2023.json@limit=100", "http://127.0.0.1:8080/ergast/f1/2023.json@limit=100"),
])
def test_redact(text, shown):
    masked = settings.redact(text)
    assert "secret" not in masked and "p@ss" not in masked
    if shown is not None:
        assert masked == shown
    assert settings.redact('unexpected spaces found in "secret pw"', secrets=("secret pw",)) == \
        'unexpected spaces found in "***"'
