"""`make demo`: the pipeline on the recorded upstream data, offline, then the Dagster UI to look at it.

`python -m f1_assets_tests.demo [--state DIR] [--no-ui] [--port N]`:

1. starts the project's two replay servers in this process, on free ports of 127.0.0.1: Jolpica pages
   (`jolpica_server`, the recorded `jolpica-replay/` pages, plus the 2018 calendar from the recorded CSV dump
   and the single recorded 2018-04 responses) and FastF1's upstreams (`livetiming_server`);
2. points the pipeline at them and at its own state folder (default `.demo/` in the repository root, or
   F1_DEMO_STATE): DAGSTER_HOME=<state>/dagster_home (with a copy of the repository's dagster.yaml),
   F1_HOME=<state>/f1_home (DuckDB warehouse and blob store under it), so `make dev`'s state is not touched;
3. materializes what the recordings hold, through the `f1-assets` command's own runs (`f1_assets.cli`: the
   same jobs, audit rows and instance the UI shows): the 2023 and 2018 calendars, 2023-01 and 2023-10
   through the Jolpica race tables, standings and lap_features, 2018-04's FastF1 laps, then the ML layer with
   split boundaries and profile minimums that fit two races (`ML_CONFIG`). A step whose assets are already
   materialized in the state folder is skipped: a second run makes no run and writes no row;
4. unless --no-ui, runs `dagster dev` on 127.0.0.1:${PORT:-3000} with the same environment and keeps the replay
   servers up until the UI exits (Ctrl-C or SIGTERM stop both).

Dagster's run logs go to <state>/load.log and <state>/dagster-dev.log; this prints short progress lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from f1_assets_tests.jolpica_server import port_number

# `dagster dev -w workspace.yaml` (the layout's workspace file; `dg dev` would build its own and ignore it) warns
# that `dev_command` is superseded by `dg dev`: that one warning is silenced, nothing else (the Makefile too)
DEV_QUIET = "ignore:Function `dev_command` is superseded"
REPO = Path(__file__).resolve().parents[1]
STATE_VARIABLE = "F1_DEMO_STATE"
RACES_2023 = ("2023-01", "2023-10")  # the 2023 races whose every Jolpica table is recorded
FASTF1_RACE = "2018-04"  # Baku 2018: live timing recorded (laps; no CarData/Position, so no telemetry)
# split boundaries that give each split of the two lap_features races something to show (train: Bahrain
# 2023-03-05; validation: Silverstone 2023-07-09; test: nothing recorded after it), and profile minimums for a
# single training race (the defaults want 3 races and 20 attack/pressure laps: empty profiles here)
SPLIT_CONFIG = {"train_end": "2023-03-31", "validation_start": "2023-04-01", "validation_end": "2023-07-31",
                "test_start": "2023-08-01"}
PROFILE_CONFIG = {"min_races": 1, "min_clean_pairs": 3, "min_stint_laps": 3, "min_attack_laps": 5,
                  "min_pressure_laps": 5}
ML_CONFIG = {"ops": {"split_views": {"config": SPLIT_CONFIG}, "driver_profiles": {"config": PROFILE_CONFIG}}}
ML_ASSETS = ("train", "validation", "test", "driver_profiles", "era_statistics", "standardised_telemetry_features",
             "circuit_versions")
# settings the demo does not want from the caller's shell: its warehouse and blobs live under its own F1_HOME,
# and it posts no alert anywhere; the request budget and settle period are the defaults (a local replay)
CLEARED = ("F1_WAREHOUSE_URL", "F1_BLOB_URL", "F1_JOLPICA_DUMP_URL", "F1_ALERT_WEBHOOK_URL",
           "F1_JOLPICA_HOURLY_BUDGET", "F1_SETTLE_DAYS")


def say(out: TextIO, message: str) -> None:
    print(f"demo: {message}", file=out, flush=True)


# ------------------------------------------------------------------------- the recorded Jolpica data

def schedule_dataset(races: Any, season: int) -> Any:
    """A season's schedule endpoint in the API's shape, from the `raw_races` rows of a Jolpica dump."""
    from f1_assets_tests.jolpica_server import Dataset

    items = []
    for r in races[races["season"] == season].sort_values("round").itertuples():
        race = {"season": str(season), "round": str(r.round), "url": r.url, "raceName": r.race_name,
                "Circuit": {"circuitId": r.circuit_id, "circuitName": r.circuit_name,
                            "Location": {"lat": f"{r.lat}", "long": f"{r.lng}", "locality": r.locality,
                                         "country": r.country}},
                "date": str(r.race_date)}
        if isinstance(r.race_time, str) and r.race_time:
            race["time"] = r.race_time
        if r.has_sprint:  # the schedule lists a Sprint session on sprint weekends (none in 2018)
            race["Sprint"] = {"date": str(r.race_date)}
        items.append(race)
    envelope = {"xmlns": "", "series": "f1", "RaceTable": {"season": str(season)}}
    return Dataset(envelope, None, "Races", items)


def demo_datasets(data: Path) -> dict[str, Any]:
    """What the demo's Jolpica replay serves: the recorded pages (2023 calendar, 2023-01 and 2023-10 with the
    dump's standings), the 2018 calendar from the dump, and the single responses recorded for 2018-04."""
    from f1_assets.transforms.dump import raw_tables, read_dump
    from f1_assets_tests.jolpica_server import DUMP_BESIDE_REPLAY, dataset_from_pages, load_replay_dir

    datasets: dict[str, Any] = load_replay_dir(data / "jolpica-replay")
    season, rnd = (int(p) for p in FASTF1_RACE.split("-"))
    races = raw_tables(read_dump(data / DUMP_BESIDE_REPLAY))["raw_races"]
    datasets[str(season)] = schedule_dataset(races, season)
    for path in sorted((data / "jolpica").glob(f"{season}@{rnd}@*.json")):  # results, laps/1 (FastF1 asks)
        datasets[path.stem.replace("@", "/")] = dataset_from_pages([json.loads(path.read_text())])
    return datasets


@contextlib.contextmanager
def replay_servers(data: Path) -> Iterator[dict[str, str]]:
    """Both replay servers on free ports; yields the variables that point the pipeline at them."""
    from f1_assets_tests.jolpica_server import JolpicaReplayServer
    from f1_assets_tests.livetiming_server import environment, serve_recorded_upstreams

    with JolpicaReplayServer(demo_datasets(data)) as jolpica, serve_recorded_upstreams(data) as upstreams:
        yield {"F1_JOLPICA_URL": jolpica.base_url, **environment(upstreams.base_url)}


def state_environment(state: Path, servers: dict[str, str], ui_port: int) -> dict[str, str]:
    """The demo's environment: its own DAGSTER_HOME (a copy of the repository's dagster.yaml) and F1_HOME."""
    home = state / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    return {"DAGSTER_HOME": str(home), "F1_HOME": str(state / "f1_home"), **servers,
            "F1_DAGSTER_UI_URL": f"http://127.0.0.1:{ui_port}"}


# ------------------------------------------------------------------------- the load step

@contextlib.contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """Everything written on file descriptors 1 and 2 (Dagster's JSON and console lines, FastF1's) goes to
    `log`; yields a stream on the original stdout for the progress lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    out = os.fdopen(os.dup(1), "w")
    with open(log, "a") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            out.close()


def _materialized(instance: Any, asset: str, partition: str | None = None) -> bool:
    import dagster as dg

    key = dg.AssetKey(asset)
    if partition is None:
        return instance.get_latest_materialization_event(key) is not None
    return partition in instance.get_materialized_partitions(key)


def _ml_current(instance: Any) -> bool:
    """Every ML asset materialized after the newest materialization of the race tables it is built from."""
    import dagster as dg

    def newest(asset: str) -> int:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=1)
        return records.records[0].storage_id if records.records else -1

    inputs = max(newest(a) for a in ("lap_features", "fastf1_laps", "raw_races"))
    return all(newest(a) > inputs for a in ML_ASSETS)


def load(out: TextIO) -> bool:
    """Materialize what the recordings hold (the environment is already the demo's). True when all did."""
    import dagster as dg

    from f1_assets import cli

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    instance = cli._instance()
    warehouse = cli.check_settings()
    cli.fail_orphaned_runs(instance, warehouse)
    ok = True

    def step(label: str, done: bool, job: str, partition: str | None = None, **kwargs: Any) -> None:
        nonlocal ok
        if _STOP:
            raise KeyboardInterrupt
        if not ok:  # a failed step stops the load: nothing downstream is built on what is missing
            return
        if done:
            say(out, f"{label}: already materialized, skipped")
            return
        started = time.monotonic()
        success = cli._run(job, partition, instance, warehouse, **kwargs)
        ok = ok and success
        say(out, f"{label}: {'done' if success else 'FAILED (see the log)'} in {time.monotonic() - started:.1f} s")
        if not success:
            say(out, "stopped at this step: run the demo again to go on")

    for season in ("2023", FASTF1_RACE[:4]):
        step(f"{season} calendar", _materialized(instance, "raw_races", season), "season_calendar", season)
    tables = [*cli.RACE_TABLE_ASSETS, cli.LAP_FEATURES]
    for key in RACES_2023:
        done = all(_materialized(instance, a.path[-1], key) for a in tables)
        step(f"{key} race tables, standings, lap_features", done, "race_tables", partition_range=(key, key),
             asset_selection=tables)
    fastf1 = [dg.AssetKey("raw_results"), dg.AssetKey("fastf1_laps")]
    step(f"{FASTF1_RACE} results and FastF1 laps", all(_materialized(instance, a.path[-1], FASTF1_RACE)
                                                       for a in fastf1),
         "race_pipeline", FASTF1_RACE, asset_selection=fastf1)
    step("ML layer (train/validation/test, driver_profiles, eras)", _ml_current(instance),
         "__ASSET_JOB", asset_selection=[dg.AssetKey(a) for a in ML_ASSETS], run_config=ML_CONFIG)
    return ok


def summary(out: TextIO) -> None:
    """What the warehouse holds now, in a few lines."""
    from f1_assets.resources.storage import WarehouseResource

    wh = WarehouseResource().get()
    for key in RACES_2023:
        season, rnd = (int(p) for p in key.split("-"))
        say(out, f"{key}: {wh.count('raw_laps', {'season': season, 'round': rnd})} raw_laps, "
            f"{wh.count('lap_features', {'season': season, 'round': rnd})} lap_features rows")
    season, rnd = (int(p) for p in FASTF1_RACE.split("-"))
    say(out, f"{FASTF1_RACE}: {wh.count('fastf1_laps', {'season': season, 'round': rnd})} fastf1_laps rows")
    say(out, f"driver_profiles: {wh.count('driver_profiles')} drivers")


# ------------------------------------------------------------------------- the UI

def _ui_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM back to their defaults. A process started in the background
    by a shell inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt: `dagster dev`
    would ignore Ctrl-C and SIGTERM (`Popen(restore_signals=True)` restores only SIGPIPE, SIGXFZ, SIGXFSZ)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # Linux: when the demo dies without forwarding (kill -9), the kernel sends the UI SIGINT: no orphaned UI
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG


def run_ui(out: TextIO, state: Path, env: dict[str, str], port: int) -> int:
    """`dagster dev` as a child in its own session with default signal handling; Ctrl-C / SIGTERM here are
    forwarded to it as SIGINT (its own clean shutdown of webserver, daemon and code server). Returns its exit
    code."""
    url = f"http://127.0.0.1:{port}"
    log = state / "dagster-dev.log"
    with socket.socket() as probe:
        # as the webserver binds (SO_REUSEADDR): a port left in TIME-WAIT by the last demo is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            say(out, f"error: port {port} on 127.0.0.1 is busy (a `make dev` running?): PORT={port + 1} make demo")
            return 2
    dagster = Path(sys.executable).with_name("dagster")
    child: list[subprocess.Popen] = []
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for proc in child:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, forward)  # before the child exists: a signal meanwhile is not lost
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)  # the terminal closed
    with open(log, "a") as file:
        proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=REPO, env={**env, "PYTHONWARNINGS": DEV_QUIET}, stdout=file,
                                stderr=subprocess.STDOUT, restore_signals=True,
                                start_new_session=True, preexec_fn=_default_signals)
    child.append(proc)
    if stopping:
        forward(stopping[0], None)
    say(out, f"starting the Dagster UI (log: {log}) …")
    while proc.poll() is None and not stopping and not _ui_ready(url):
        time.sleep(0.5)
    if proc.poll() is None and not stopping:
        say(out, f"UI ready: {url}  (Ctrl-C stops it and the replay servers)")
    code = proc.wait()
    say(out, f"the UI exited ({code})")
    return code


# ------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m f1_assets_tests.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path(os.environ.get(STATE_VARIABLE) or REPO / ".demo"),
                        metavar="DIR", help=f"the demo's state folder (default: ${STATE_VARIABLE} or .demo/)")
    parser.add_argument("--no-ui", action="store_true", help="load only; do not start the Dagster UI")
    parser.add_argument("--port", type=port_number, default=os.environ.get("PORT") or "3000",
                        help="the UI's port on 127.0.0.1 (default: $PORT or 3000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:

    from f1_assets.settings import ConfigError

    args = parse_args(argv)
    if args.port == 0:
        print("demo: error: --port/PORT 0: the UI needs a fixed port (1-65535)", file=sys.stderr)
        return 2
    state = args.state.resolve()
    try:
        state.mkdir(parents=True, exist_ok=True)
        probe = state / ".writable"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        print(f"demo: error: the state folder {state} (--state / ${STATE_VARIABLE}) is not a writable folder: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    # Ctrl-C, SIGTERM or a closed terminal between runs stops the load (during a run Dagster turns them into a
    # failed run, and a failed step stops the load)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        return _main(args, state)
    except KeyboardInterrupt:
        print("demo: stopped", file=sys.stderr)
        return 130
    except ConfigError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2


_STOP: list[int] = []  # the signals asked to stop the load


def _interrupt(signum: int, _frame: object) -> None:
    """Between runs: stop now. During a run Dagster holds SIGINT (it fails the run at the next step boundary),
    so SIGTERM/SIGHUP are passed on to it as SIGINT; the load stops before its next step either way."""
    _STOP.append(signum)
    if signum != signal.SIGINT and signal.getsignal(signal.SIGINT) is not _interrupt:
        signal.raise_signal(signal.SIGINT)
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _main(args: argparse.Namespace, state: Path) -> int:
    from f1_assets_tests.recorded import recorded_data_dir

    out = sys.stdout
    started = time.monotonic()
    with replay_servers(recorded_data_dir()) as servers:
        say(out, f"replay servers: Jolpica {servers['F1_JOLPICA_URL']}, "
            f"live timing {servers['F1_LIVETIMING_URL'].removesuffix('livetiming/')}")
        env = state_environment(state, servers, args.port)
        for name in CLEARED:
            os.environ.pop(name, None)
        os.environ.update(env)
        say(out, f"state: {state} (DAGSTER_HOME, F1_HOME); run logs: {state / 'load.log'}")
        with output_to(state / "load.log") as progress:
            ok = load(progress)
            summary(progress)
        say(out, f"load {'complete' if ok else 'INCOMPLETE'} in {time.monotonic() - started:.1f} s")
        if _STOP:
            raise KeyboardInterrupt
        if args.no_ui:
            return 0 if ok else 1
        if not ok:
            say(out, f"some runs failed: the UI shows them (Runs), their logs are in {state / 'load.log'}")
        code = run_ui(out, state, dict(os.environ), args.port)
        return code if ok else (code or 1)


if __name__ == "__main__":
    raise SystemExit(main())
