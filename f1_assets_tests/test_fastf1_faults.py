"""Issue 9, the FastF1 side: a green materialization means complete, valid rows; anything less is a
failed ERROR check naming the cause (or a failed step) and the stored rows stay.

Real data on 127.0.0.1: the Jolpica replay server (2023 Bahrain and British GP, complete) and the
recorded live-timing mirror (`livetiming_server`), where the 2023 British GP race has nothing but the
DriverList, 2023 Bahrain every stream but TimingData, and 2018 Baku all of them. An unreachable host
is a port on 127.0.0.1 nobody listens on (refused) or an `.invalid` name (DNS). Each test counts the
stored rows before and after and prints the wall time.
"""

from __future__ import annotations

import time
import types

import dagster as dg
import pytest

from f1_assets import definitions, sensors
from f1_assets.assets import features, ingest_fastf1, ingest_jolpica
from f1_assets.assets.ingest_fastf1 import TELEMETRY_PREFIX, fastf1_laps, raw_telemetry
from f1_assets.definitions import build_resources
from f1_assets.io_managers import blob_key
from f1_assets.io_managers.warehouse import ALLOW_SHRINK_TAG
from f1_assets.partitions import RaceKey, parse_race_key
from f1_assets.resources.fastf1 import FastF1Resource, FastF1UpstreamError, LoadedRace
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets_tests.helpers import check_results, materialize, materialize_calendar, metadata_of, resources
from f1_assets_tests.livetiming_server import refused_url
from f1_assets_tests.test_fastf1_assets import jolpica_results
from f1_assets_tests.test_telemetry import make_fastf1_telemetry

pytestmark = pytest.mark.shared_data

BAHRAIN, BAHRAIN_LAPS = "2023-01", 1055
BRITISH, BRITISH_LAPS = "2023-10", 970
BAKU, BAKU_LAPS = "2018-04", 848
RACE_PIPELINE = [*ingest_jolpica.RACE_ASSETS, *ingest_fastf1.ASSETS, *features.ASSETS]  # the race_pipeline job
# what lap_features and telemetry_features are made of (no qualifying, no sprint: a faster run)
FEATURE_INPUTS = [ingest_jolpica.raw_results, ingest_jolpica.raw_laps, ingest_jolpica.raw_pit_stops,
                  *ingest_fastf1.ASSETS, *features.ASSETS]
FAST_RETRIES = {"connect_retries": 1, "retry_backoff_seconds": 0.05}  # 2 attempts, no real wait
SETTLE_FOREVER = 100_000  # days: the recorded races count as recent
ERROR = dg.AssetCheckSeverity.ERROR


def _fastf1(upstreams, cache, **hosts: str) -> FastF1Resource:
    urls = {"livetiming_url": upstreams.livetiming_url, "schedule_url": upstreams.schedule_url,
            "jolpica_url": upstreams.jolpica_url, **hosts}
    return FastF1Resource(**urls, cache_dir=str(cache), **FAST_RETRIES)


def _race_resources(duckdb_url, tmp_path, replay_server, fastf1: FastF1Resource) -> dict:
    res = resources(duckdb_url, str(tmp_path / "blobs"), replay_server.base_url, settle_days=SETTLE_FOREVER)
    return {**res, "fastf1": fastf1}


def _part(key: str) -> dict[str, int]:
    race = parse_race_key(key)
    return {"season": race.season, "round": race.round}


def _counts(url: str, key: str) -> dict[str, int]:
    wh = warehouse_from_url(url)
    return {t: wh.count(t, _part(key)) for t in ("fastf1_laps", "lap_features", "telemetry_features")}


def _run(instance, key: str, res: dict, assets=None, tags=None) -> tuple[dg.ExecuteInProcessResult, float]:
    if key not in instance.get_dynamic_partitions("races"):
        instance.add_dynamic_partitions("races", [key])
    started = time.monotonic()
    result = materialize(assets or RACE_PIPELINE, partition_key=key, instance=instance, resources=res,
                         raise_on_error=False, tags=tags)
    return result, time.monotonic() - started


def _failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}


def test_the_availability_check_is_an_error_that_does_not_block():
    for asset in (fastf1_laps, raw_telemetry):
        specs = {s.name: s for s in asset.check_specs}
        assert not specs["live_timing_available"].blocking
        assert specs["drivers_in_results"].blocking and specs["lap_numbers_within_race"].blocking
    assert not {s.name: s for s in raw_telemetry.check_specs}["completeness"].blocking  # a WARN rule


def test_missing_streams_the_race_pipeline_completes(instance, duckdb_url, tmp_path, replay_server,
                                                     recorded_upstreams):
    """2023 British GP: the mirror has the race's DriverList and nothing else. Before issue 9 fastf1_laps
    crashed (DataNotLoadedError from `total_laps`) and lap_features was never built."""
    res = _race_resources(duckdb_url, tmp_path, replay_server, _fastf1(recorded_upstreams, tmp_path / "ff1"))
    assert materialize_calendar(instance, 2023, res, prefetch=False).success
    assert _counts(duckdb_url, BRITISH) == {"fastf1_laps": 0, "lap_features": 0, "telemetry_features": 0}

    result, seconds = _run(instance, BRITISH, res)
    print(f"race pipeline, live timing without timing data: {seconds:.1f} s")
    assert result.success, _failures(result)
    assert _counts(duckdb_url, BRITISH) == {"fastf1_laps": 0, "lap_features": BRITISH_LAPS, "telemetry_features": 0}

    laps = metadata_of(result, "fastf1_laps")
    assert laps["dagster/row_count"] == 0 and laps["live_timing"] == "missing_streams" and laps["retryable"] is False
    missing = laps["missing_streams"].split(", ")
    assert {"TimingData", "TrackStatus", "SessionStatus", "LapCount"} <= set(missing)
    assert "DriverList" not in missing and "TimingAppData" not in missing  # served / never asked for
    assert "not served: TimingData" in laps["empty_reason"]
    checks = check_results(result)
    live = checks[("fastf1_laps", "live_timing_available")]
    assert not live.passed and live.severity == ERROR and "TimingData" in live.description
    telemetry = checks[("raw_telemetry", "live_timing_available")]
    assert not telemetry.passed and telemetry.metadata["missing_streams"].value == "TimingData, CarData.z, Position.z"

    # lap_features from Jolpica alone: FastF1 columns NULL, every ERROR rule passes
    assert metadata_of(result, "lap_features")["has_fastf1"] is False
    assert all(c.passed for (asset, _), c in checks.items() if asset == "lap_features" and c.severity == ERROR)
    # telemetry_features waits for real telemetry: not materialized, an observation says why
    assert "telemetry_features" not in _materialized(result)
    observed = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert observed and observed[0].asset_key == dg.AssetKey("telemetry_features")


def test_unreachable_fastf1_is_retried_not_green(instance, duckdb_url, tmp_path, replay_server, recorded_upstreams):
    """Every FastF1 host refuses the connection: the step retries, then materializes nothing with
    live_timing_available failing as retryable; the rest of the race is built; the sensor retries once
    due; when the host answers again lap_features follows by automation."""
    dead = refused_url()
    down = FastF1Resource(livetiming_url=dead, schedule_url=dead, jolpica_url=dead,
                          cache_dir=str(tmp_path / "ff1"), **FAST_RETRIES)
    res = _race_resources(duckdb_url, tmp_path, replay_server, down)
    assert materialize_calendar(instance, 2023, res, prefetch=False).success

    result, seconds = _run(instance, BAHRAIN, res, assets=FEATURE_INPUTS)
    print(f"race (feature inputs), FastF1 unreachable (2 attempts each): {seconds:.1f} s")
    assert result.success, _failures(result)
    assert _counts(duckdb_url, BAHRAIN) == {"fastf1_laps": 0, "lap_features": BAHRAIN_LAPS, "telemetry_features": 0}
    host = dead.rstrip("/")
    for asset in ("fastf1_laps", "raw_telemetry"):
        md = metadata_of(result, asset)
        assert md["dagster/row_count"] == 0 and md["live_timing"] == "unreachable" and md["retryable"] is True
        assert md["attempts"] == 2 and host in md["live_timing_reason"]
        assert "ConnectionError" in md["live_timing_reason"]
        assert md["missing_streams"] == "none"  # never "no session", never "none missing" and green
        check = check_results(result)[(asset, "live_timing_available")]
        assert not check.passed and check.severity == ERROR and check.metadata["retryable"].value is True
        assert all(u.startswith(host) for u in check.metadata["unreachable_urls"].value)
    assert metadata_of(result, "lap_features")["has_fastf1"] is False

    # the retry sensor: not before the backoff, then one request per failure, never twice
    failed_at = max(instance.get_latest_materialization_event(dg.AssetKey(a)).timestamp
                    for a in ("fastf1_laps", "raw_telemetry"))
    waiting, notes = sensors.fastf1_retries(instance, [BAHRAIN], now=failed_at + 60)
    assert not waiting and "FastF1 unreachable, next try in" in notes[0]
    due, _ = sensors.fastf1_retries(instance, [BAHRAIN], now=failed_at + sensors.fastf1_retry_wait(1) + 1)
    again, _ = sensors.fastf1_retries(instance, [BAHRAIN], now=failed_at + sensors.fastf1_retry_wait(1) + 5)
    assert [(r.partition_key, r.asset_selection) for r in due] == [
        (BAHRAIN, [dg.AssetKey("fastf1_laps"), dg.AssetKey("raw_telemetry")])]
    assert [r.run_key for r in again] == [r.run_key for r in due]
    with dg.build_sensor_context(instance=instance, resources=res) as context:
        tick = sensors.fastf1_retry_sensor(context)  # just failed: the sensor waits
    assert isinstance(tick, dg.SkipReason) and f"{BAHRAIN} fastf1_laps: FastF1 unreachable" in tick.skip_message

    # the host answers again: the requested run, then automation rebuilds lap_features on it
    selection = dg.AssetSelection.assets("lap_features", "telemetry_features")
    baseline = dg.evaluate_automation_conditions(defs=definitions.defs, instance=instance, asset_selection=selection)
    assert baseline.total_requested == 0
    back = {**res, "fastf1": _fastf1(recorded_upstreams, tmp_path / "ff1")}
    retried, seconds = _run(instance, BAHRAIN, back, assets=[fastf1_laps, raw_telemetry],
                            tags=dict(due[0].tags))
    print(f"retry run, host back: {seconds:.1f} s")
    assert retried.success and metadata_of(retried, "fastf1_laps")["missing_streams"] == "TimingData"
    assert sensors.fastf1_retries(instance, [BAHRAIN], now=time.time() + 86_400) == ([], [])
    after = dg.evaluate_automation_conditions(defs=definitions.defs, instance=instance, asset_selection=selection,
                                              cursor=baseline.cursor)
    assert after.get_requested_partitions(dg.AssetKey("lap_features")) == {BAHRAIN}


def test_schedule_unreachable_then_back_then_stored_rows_are_kept(instance, duckdb_url, tmp_path, shared_data,
                                                                  recorded_upstreams):
    """2018 Baku, fastf1_laps alone. FastF1's schedule host does not resolve and no fallback backend has
    2018: before issue 9 this was 'no session', green with 0 rows. Now: retryable, red, not green-empty.
    Back: 848 rows. Unreachable again with 848 stored: the step fails and the rows stay."""
    wh = WarehouseResource(url=duckdb_url).get()
    wh.replace_partitions("raw_results", jolpica_results(shared_data), [_part(BAKU)])
    cache = tmp_path / "ff1"
    res = build_resources(warehouse_url=duckdb_url, blob_url=str(tmp_path / "b"))
    no_schedule = _fastf1(recorded_upstreams, cache, schedule_url="http://fastf1-schedule.invalid/")

    result, seconds = _run(instance, BAKU, {**res, "fastf1": no_schedule}, assets=[fastf1_laps])
    print(f"fastf1_laps, schedule unreachable, nothing stored: {seconds:.1f} s")
    assert result.success and _counts(duckdb_url, BAKU)["fastf1_laps"] == 0
    md = metadata_of(result, "fastf1_laps")
    assert md["live_timing"] == "unreachable" and md["retryable"] is True
    assert "schedule is unreachable: http://fastf1-schedule.invalid (ConnectionError" in md["live_timing_reason"]
    assert not check_results(result)[("fastf1_laps", "live_timing_available")].passed

    result, seconds = _run(instance, BAKU, {**res, "fastf1": _fastf1(recorded_upstreams, cache)}, assets=[fastf1_laps])
    print(f"fastf1_laps, schedule back: {seconds:.1f} s")
    assert result.success and _counts(duckdb_url, BAKU)["fastf1_laps"] == BAKU_LAPS
    assert all(c.passed for c in check_results(result).values())
    assert sensors.fastf1_retries(instance, [BAKU], now=time.time() + 86_400) == ([], [])

    result, seconds = _run(instance, BAKU, {**res, "fastf1": no_schedule}, assets=[fastf1_laps])
    print(f"fastf1_laps, schedule unreachable, {BAKU_LAPS} rows stored: {seconds:.1f} s")
    assert not result.success and not result.get_asset_materialization_events()
    message = _failures(result)["fastf1_laps"]
    assert "schedule is unreachable" in message and f"({BAKU_LAPS} rows) is kept" in message
    assert _counts(duckdb_url, BAKU)["fastf1_laps"] == BAKU_LAPS
    live = check_results(result)[("fastf1_laps", "live_timing_available")]
    assert not live.passed and live.metadata["retryable"].value is True

    # a run that asks for it may replace the rows with less: then it says so, and stays red
    result, _ = _run(instance, BAKU, {**res, "fastf1": no_schedule}, assets=[fastf1_laps],
                     tags={ALLOW_SHRINK_TAG: "true"})
    assert result.success and _counts(duckdb_url, BAKU)["fastf1_laps"] == 0
    assert metadata_of(result, "fastf1_laps")["retryable"] is True
    assert not check_results(result)[("fastf1_laps", "live_timing_available")].passed


class _GeneratedThenUnreachable(FastF1Resource):
    """Car telemetry in FastF1's shape (none is recorded for real), then a host that is down."""

    down: bool = False

    def load_race(self, race, *, laps=True, telemetry=False):
        if self.down:
            raise FastF1UpstreamError(race, "the live-timing host is unreachable: http://127.0.0.1:9 (ConnectionError)",
                                      ("http://127.0.0.1:9/static/x/CarData.z.jsonStream",), retryable=True)
        import pandas as pd

        car, pos, lap_frame = make_fastf1_telemetry({"44": "HAM", "5": "VET"}, laps=3)
        results = pd.DataFrame({"Abbreviation": ["HAM", "VET"], "DriverId": ["hamilton", "vettel"]}, index=["44", "5"])
        session = types.SimpleNamespace(car_data=car, pos_data=pos, laps=lap_frame, results=results,
                                        drivers=["44", "5"], api_path="/generated/", total_laps=3)
        return LoadedRace(race=race, session=session)


def test_stored_telemetry_is_kept_when_the_host_is_down(instance, duckdb_url, tmp_path, shared_data):
    WarehouseResource(url=duckdb_url).get().replace_partitions("raw_results", jolpica_results(shared_data),
                                                              [_part(BAKU)])
    blobs = tmp_path / "b"
    res = build_resources(warehouse_url=duckdb_url, blob_url=str(blobs))
    result, _ = _run(instance, BAKU, {**res, "fastf1": _GeneratedThenUnreachable()}, assets=[raw_telemetry])
    assert result.success and metadata_of(result, "raw_telemetry")["live_timing"] == "complete"
    stored = (blobs / blob_key(TELEMETRY_PREFIX, BAKU)).read_bytes()

    result, seconds = _run(instance, BAKU, {**res, "fastf1": _GeneratedThenUnreachable(down=True)},
                           assets=[raw_telemetry])
    print(f"raw_telemetry, host down, Parquet stored: {seconds:.1f} s")
    assert not result.success and not result.get_asset_materialization_events()
    message = _failures(result)["raw_telemetry"]
    assert "unreachable" in message and "telemetry Parquet" in message and "is kept" in message
    assert (blobs / blob_key(TELEMETRY_PREFIX, BAKU)).read_bytes() == stored


def test_a_host_that_never_answers_is_bounded_by_the_load_deadline(tmp_path):
    """FastF1 sends its requests without a timeout: a host that accepts the connection and stays silent
    must cost the load deadline, then count as an unreachable (retryable) upstream."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections (the kernel's backlog), never reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        fastf1 = FastF1Resource(livetiming_url=url, schedule_url=url, jolpica_url=url, cache_dir=str(tmp_path),
                                connect_retries=2, retry_backoff_seconds=0.1, load_timeout_seconds=2.0)
        started = time.monotonic()
        with pytest.raises(FastF1UpstreamError) as raised:
            fastf1.load_race(RaceKey(2018, 4))
        elapsed = time.monotonic() - started
    assert raised.value.retryable and "does not answer" in raised.value.reason
    assert 2.0 <= elapsed < 6  # one load deadline, not three, not forever


def test_no_f1_account_is_said_once_at_info_not_warned_per_request(tmp_path, monkeypatch):
    """FastF1's own live-timing auth adapter (what it mounts on the real host) with no F1 account: its
    per-request warning becomes one INFO line per process once the resource has configured FastF1."""
    import logging

    from fastf1.internals.f1account import LivetimingAuthAdapter, token_manager

    from f1_assets.resources import fastf1 as resource_module

    monkeypatch.delenv("F1_USERNAME", raising=False)
    monkeypatch.delenv("F1_PASSWORD", raising=False)
    monkeypatch.setattr(resource_module._NoF1AccountFilter, "said", False)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("fastf1.fastf1.internals.f1account.transport")
    logger.addHandler(handler)
    try:
        FastF1Resource(livetiming_url=refused_url("/livetiming/"), schedule_url=refused_url("/schedule/"),
                       jolpica_url=refused_url("/jolpica/"), cache_dir=str(tmp_path))._configure_fastf1()
        adapter = LivetimingAuthAdapter(token_manager)
        assert adapter._get_token() is None and adapter._get_token() is None  # two requests' worth
    finally:
        logger.removeHandler(handler)
    said = [(r.levelname, r.getMessage()) for r in records if "account" in r.getMessage()]
    assert said == [("INFO", "FastF1: no Formula 1 account configured (F1_USERNAME/F1_PASSWORD); the public "
                             "live-timing archive is read without one")]
