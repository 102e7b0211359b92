"""Benchmark of the full-history load: a Jolpica dump at full-history scale, end to end, on DuckDB and PostgreSQL.

Run from the repo root: `nice .venv/bin/python bench/bench_history.py` (about 25 min on 2 cores; env
`F1_BENCH_POSTGRES_URL`, default `postgresql://postgres@127.0.0.1:5432/test`, names the server and a
database to connect to for CREATE/DROP DATABASE; `--keep DIR` keeps the dump, the run logs and the DuckDB
files in DIR). Called by `make bench` (every bench/bench_*.py) and by hand.

1. `bench/tile_dump.py` tiles the shared dump (the recorded data, f1_assets_tests/data/recorded.tar.xz) to
   full-history scale in a temporary directory: 1,149 races 1950-2025 with results, qualifying from 1994,
   575,780 lap timings (every race from 1996), pit stops from 2011 (its docstring says how).
2. Per engine (a DuckDB file; PostgreSQL: a fresh scratch database, created and dropped here), the CLI as a
   user runs it, as a subprocess with its own DAGSTER_HOME (a copy of the repository's dagster.yaml) and
   F1_HOME: `f1-assets history --dump <tiled.zip> --no-api` (dump file -> raw tables -> lap_features for
   every race); its wall time (target <= 600 s), then the same command again (the rerun: loads nothing).
   The rows it loaded are checked against the dump's. Where the time went comes from the runs' own JSON
   log lines on stdout (timestamps of each step's events): per asset step, summed over the runs.
3. Per raw table and lap_features, in another fresh warehouse of the engine: rows/s of the write path,
   `warehouse_from_url(url).replace_partitions(table, frame, partitions)` with every race of the table in
   one call (race tables: all 1,149 race partitions, as `history` writes them; raw_races: its 76 seasons;
   lap_features: the 568 races it is built for, built here with the asset's transform), against the raw
   load of the same rows in the same run: PostgreSQL a binary `COPY … FROM STDIN (FORMAT BINARY)` of
   ready-made tuples (conversion untimed, as bench_features.py does) into `CREATE TABLE … (LIKE t
   INCLUDING ALL)`; DuckDB `INSERT INTO t SELECT * FROM <registered frame>` on a fresh connection into a
   table made from the same DDL. Both start from an empty table (TRUNCATE on PostgreSQL; DuckDB drops
   and re-creates the table), untimed; best of `REPEATS` (`SMALL_REPEATS` under `SMALL_ROWS` rows).
   ratio = writer rows/s / raw rows/s (target >= 0.8).

Prints one JSON object per measurement (`emit`), as soon as it is measured; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tile_dump import tile_dump  # noqa: E402

from f1_assets.storage.warehouse import _PG_COPY_TYPES, _rows, warehouse_from_url  # noqa: E402
from f1_assets.tables import table  # noqa: E402
from f1_assets.transforms.dump import RACE_TABLES, RAW_TABLES, coverage, raw_tables, read_dump  # noqa: E402
from f1_assets.transforms.features import build_lap_features  # noqa: E402
from f1_assets.transforms.jolpica import by_race  # noqa: E402
from f1_assets_tests.recorded import recorded_data_dir  # noqa: E402

PG_URL = os.environ.get("F1_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPEATS = 3
SMALL_REPEATS = 7  # a table under SMALL_ROWS rows loads in milliseconds: more repeats against noise
SMALL_ROWS = 100_000
TARGET_SECONDS = 600.0  # full history from the dump, end to end, per engine
TARGET_RATIO = 0.8  # warehouse write path / raw load, per table
F1_ASSETS = Path(sys.executable).parent / "f1-assets"


def emit(bench: str, value: float, unit: str, baseline: float | None = None, ratio: float | None = None,
         note: str = "") -> dict:
    line = {"bench": bench, "value": round(value, 4), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 4),
            "ratio": None if ratio is None else round(ratio, 4), "note": note}
    print(json.dumps(line), flush=True)
    return line


def say(message: str) -> None:
    print(f"bench_history: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- PostgreSQL scratch databases

def _pg_url(database: str) -> str:
    base, _, query = PG_URL.partition("?")
    return re.sub(r"/[^/]*$", f"/{database}", base) + (f"?{query}" if query else "")


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database (its URL), dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"bench_history_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# ------------------------------------------------------------------------- `f1-assets history` as a subprocess

def run_history(dump: Path, work: Path, warehouse_url: str, label: str) -> tuple[float, str]:
    """`f1-assets history --dump <dump> --no-api` in its own DAGSTER_HOME and F1_HOME (kept across calls with
    the same `work`): its wall time, and a note of the process's CPU seconds and the machine's load average
    (wall well above CPU: waiting on disk, the database or other processes). Its stdout (the runs' JSON log
    lines) goes to `<work>/<label>.jsonl`, its stderr to `<work>/<label>.stderr` with each line's arrival
    time (and to this process's stderr)."""
    dagster_home = work / "dagster_home"
    if not dagster_home.is_dir():
        dagster_home.mkdir(parents=True)
        shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("F1_") and k != "DAGSTER_HOME"}
    env |= {"DAGSTER_HOME": str(dagster_home), "F1_HOME": str(work / "f1_home"), "F1_WAREHOUSE_URL": warehouse_url,
            # --no-api: no request is made; a port nothing listens on makes sure of it
            "F1_JOLPICA_URL": "http://127.0.0.1:9/ergast/f1/"}
    cmd = [str(F1_ASSETS), "history", "--dump", str(dump), "--no-api"]
    say(f"{label}: {' '.join(cmd)}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    with open(work / f"{label}.jsonl", "wb") as out, open(work / f"{label}.stderr", "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=out, stderr=subprocess.PIPE, text=True)

        def pump() -> None:
            for line in proc.stderr:
                stamp = time.perf_counter() - t0
                err.write(f"{stamp:9.2f} {line}")
                sys.stderr.write(f"  [{label} +{stamp:7.1f} s] {line}")
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        reader.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        raise SystemExit(f"bench_history: {label}: f1-assets history exited {rc} (see {work}/{label}.stderr)")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, (f"f1-assets process CPU {cpu:.1f} s (user {after.ru_utime - before.ru_utime:.1f}, sys "
                  f"{after.ru_stime - before.ru_stime:.1f}); 1-min load average {load_before:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs")


def breakdown(jsonl: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Where a `history` invocation's time went, from its runs' JSON log lines: per asset step (summed over
    runs) seconds in `inputs` (start -> last input loaded), `compute` (-> the asset's output, with its checks
    and log lines), `write` (the IO manager's write: output -> first materialization event),
    `materializations` (storing one materialization event per partition), `finish` (-> step success); and
    per run kind (job) its wall seconds and count. Log lines and events counted per step."""
    events: dict[tuple[str, str], list[tuple[float, str, str]]] = defaultdict(list)
    runs: dict[str, list[float]] = defaultdict(list)
    run_job: dict[str, str] = {}
    with open(jsonl, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            meta = record.get("dagster_meta") or {}
            run_id, created = meta.get("run_id"), record.get("created")
            if not run_id or created is None:
                continue
            run_job[run_id] = meta.get("job_name") or "?"
            runs[run_id].append(created)
            event = (meta.get("dagster_event") or {}).get("event_type_value") or "LOG"
            if meta.get("step_key"):
                events[(run_id, meta["step_key"])].append((created, event, meta.get("orig_message") or ""))
    steps: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (_, step), evs in events.items():
        evs.sort(key=lambda e: e[0])
        times = {}
        start = evs[0][0]
        loaded = [t for t, e, _ in evs if e in ("LOADED_INPUT", "STEP_INPUT")]
        first_mat = next((t for t, e, _ in evs if e == "ASSET_MATERIALIZATION"), None)
        outputs = [t for t, e, _ in evs if e == "STEP_OUTPUT" and (first_mat is None or t <= first_mat)]
        handled = next((t for t, e, _ in evs if e == "HANDLED_OUTPUT"), None)
        end = evs[-1][0]
        times["inputs"] = (max(loaded) - start) if loaded else 0.0
        output_at = outputs[-1] if outputs else end
        times["compute"] = output_at - (max(loaded) if loaded else start)
        times["write"] = (first_mat - output_at) if first_mat is not None else 0.0
        times["materializations"] = (handled - first_mat) if first_mat is not None and handled is not None else 0.0
        times["finish"] = end - (handled if handled is not None else (first_mat or output_at))
        for phase, seconds in times.items():
            steps[step][phase] += seconds
        steps[step]["total"] += end - start
        steps[step]["log_lines"] += sum(1 for _, e, _ in evs if e == "LOG")
        steps[step]["materialization_events"] += sum(1 for _, e, _ in evs if e == "ASSET_MATERIALIZATION")
        steps[step]["runs"] += 1
    jobs: dict[str, float] = defaultdict(float)
    previous_end = None
    for run_id, stamps in sorted(runs.items(), key=lambda kv: min(kv[1])):
        job = run_job[run_id]
        jobs[f"{job} s"] += max(stamps) - min(stamps)
        jobs[f"{job} runs"] += 1
        if previous_end is not None:  # the CLI between two runs (creating the next run happens here)
            jobs[f"gap before {job} s"] += min(stamps) - previous_end
        previous_end = max(stamps)
    return {k: dict(v) for k, v in steps.items()}, dict(jobs)


def planned_events(dagster_home: Path) -> tuple[int, float]:
    """ASSET_MATERIALIZATION_PLANNED events the instance stored (one per asset and partition of a run, when
    the run is created, before its first log line) and the seconds from each run's first to its last one."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    count, seconds = 0, 0.0
    for run in instance.get_runs():
        logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        if logs:
            count += len(logs)
            seconds += logs[-1].timestamp - logs[0].timestamp
    return count, seconds


def emit_breakdown(engine: str, jsonl: Path, wall: float, planned: tuple[int, float] | None = None) -> None:
    steps, jobs = breakdown(jsonl)
    in_runs = sum(v for k, v in jobs.items() if k.endswith(" s") and not k.startswith("gap"))
    gaps = sum(v for k, v in jobs.items() if k.startswith("gap"))
    planned_note = (f" (of which storing {planned[0]} ASSET_MATERIALIZATION_PLANNED events, first to last per run: "
                    f"{planned[1]:.1f} s)") if planned else ""
    emit(f"history_{engine}_in_runs", in_runs, "s", baseline=wall, ratio=in_runs / wall,
         note="seconds inside Dagster runs (first to last JSON log line of each run), of the wall time; "
              + ", ".join(f"{k} {v:.1f}" if k.endswith(" s") else f"{k} {int(v)}" for k, v in sorted(jobs.items()))
              + f"; between runs (the CLI: creating the next run, its audit rows, instance queries) {gaps:.1f} s"
                f"{planned_note}; "
                f"before the first and after the last run (start-up, exit) {wall - in_runs - gaps:.1f} s")
    for step, t in sorted(steps.items(), key=lambda kv: -kv[1]["total"]):
        emit(f"history_{engine}_step_{step}", t["total"], "s",
             note=f"{int(t['runs'])} run(s): inputs {t['inputs']:.1f} s, compute {t['compute']:.1f} s "
                  f"({int(t['log_lines'])} log lines), write {t['write']:.1f} s, "
                  f"{int(t['materialization_events'])} materialization events {t['materializations']:.1f} s, "
                  f"finish {t['finish']:.1f} s")


# ------------------------------------------------------------------------- frames of the whole history

def lap_features_frame(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[dict], float]:
    """lap_features of every race with complete laps, built as the asset builds a race (no FastF1)."""
    cov = coverage(tables)
    keys = [(int(s), int(r)) for s, r in
            cov.loc[(cov["table"] == "raw_laps") & (cov["state"] == "complete"), ["season", "round"]].itertuples(
                index=False)]
    calendar = by_race(tables["raw_races"])
    inputs = {name: by_race(tables[f"raw_{name}"]) for name in ("results", "laps", "pit_stops")}
    empty = {name: tables[f"raw_{name}"].iloc[0:0] for name in ("results", "laps", "pit_stops")}
    t0 = time.perf_counter()
    frames = [build_lap_features(calendar[key].reset_index(drop=True).iloc[0],
                                 *(inputs[n].get(key, empty[n]) for n in ("results", "laps", "pit_stops")), None)
              for key in keys]
    built = time.perf_counter() - t0
    frame = table("lap_features").conform(pd.concat(frames, ignore_index=True))
    return frame, [{"season": s, "round": r} for s, r in keys], built


def cases(tables: dict[str, pd.DataFrame], features: pd.DataFrame,
          feature_partitions: list[dict]) -> list[tuple[str, pd.DataFrame, list[dict]]]:
    """(table, frame, partitions): every race of each table in one write, as `history` writes them."""
    races = tables["raw_races"]
    seasons = [{"season": int(s)} for s in sorted(races["season"].unique())]
    race_parts = [{"season": int(s), "round": int(r)} for s, r in races[["season", "round"]].itertuples(index=False)]
    out = [("raw_races", tables["raw_races"], seasons)]
    out += [(name, tables[name], race_parts) for name in RACE_TABLES]
    out.append(("lap_features", features, feature_partitions))
    return out


# ------------------------------------------------------------------------- the write path against raw loads

def best(setup: Callable[[], None], fn: Callable[[], None], rows: int) -> float:
    repeats = SMALL_REPEATS if rows < SMALL_ROWS else REPEATS
    times = []
    for _ in range(repeats):
        setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _duckdb_recreate(path: Path, source: str, target: str) -> None:
    """Drop `target` and make it again as an empty copy of `source`'s DDL (columns, keys, defaults, indexes)."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        (ddl,) = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [source]).fetchone()
        indexes = [s for (s,) in con.execute("SELECT sql FROM duckdb_indexes() WHERE table_name = ?",
                                             [source]).fetchall()]
        con.execute(f'DROP TABLE IF EXISTS "{target}"')
        con.execute(re.sub(rf'^CREATE TABLE "?{source}"?', f'CREATE TABLE "{target}"', ddl))
        if target != source:
            for index in indexes:
                index = re.sub(r"^CREATE (UNIQUE )?INDEX (\S+) ON \"?" + source + r"\"?",
                               lambda m: f'CREATE {m.group(1) or ""}INDEX {m.group(2)}_raw ON "{target}"', index)
                con.execute(index)
        con.execute("CHECKPOINT")


def load_duckdb(path: Path, load: list[tuple[str, pd.DataFrame, list[dict]]]) -> None:
    import duckdb

    wh = warehouse_from_url(f"duckdb:///{path}")
    wh.apply_schema()
    for name, frame, partitions in load:
        cols = wh.columns(name)
        ordered = frame[cols]
        n = len(frame)
        raw = f"{name}_raw"
        _duckdb_recreate(path, name, raw)

        def raw_insert(raw: str = raw, ordered: pd.DataFrame = ordered) -> None:
            con = duckdb.connect(str(path))
            try:
                con.register("_bench_frame", ordered)
                con.execute(f'INSERT INTO "{raw}" SELECT * FROM _bench_frame')
            finally:
                con.close()

        def writer(name: str = name, frame: pd.DataFrame = frame, partitions: list[dict] = partitions,
                   n: int = n) -> None:
            assert wh.replace_partitions(name, frame, partitions) == n

        raw_t = best(lambda raw=raw, name=name: _duckdb_recreate(path, name, raw), raw_insert, n)
        writer_t = best(lambda name=name: _duckdb_recreate(path, name, name), writer, n)
        assert wh.count(name) == n
        emit_load("duckdb", name, n, len(partitions), writer_t, raw_t,
                  "DuckDBWarehouse.replace_partitions vs INSERT INTO t SELECT * FROM <registered frame> on a fresh "
                  "connection, both into an empty table made from the table's DDL")


def load_postgres(url: str, load: list[tuple[str, pd.DataFrame, list[dict]]]) -> None:
    import psycopg
    from psycopg import sql

    wh = warehouse_from_url(url)
    wh.apply_schema()
    for name, frame, partitions in load:
        cols = wh.columns(name)
        n = len(frame)
        raw = f"{name}_raw"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(sql.Identifier(raw),
                                                                                 sql.Identifier(name)))
        types = dict(wh._column_types(name))
        copy_types = [_PG_COPY_TYPES.get(types[c], "text") for c in cols]
        tuples = list(_rows(frame[cols]))  # the baseline gets ready-made Python rows (conversion untimed)
        t0 = time.perf_counter()
        for _ in _rows(frame[cols]):
            pass
        rows_t = time.perf_counter() - t0

        def truncate(target: str) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(target)))

        def raw_copy(raw: str = raw, cols: list[str] = cols, copy_types: list[str] = copy_types,
                     tuples: list[tuple] = tuples) -> None:
            stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(raw), sql.SQL(", ").join(sql.Identifier(c) for c in cols))
            with psycopg.connect(url) as conn, conn.cursor() as cur:
                with cur.copy(stmt) as copy:
                    copy.set_types(copy_types)
                    for row in tuples:
                        copy.write_row(row)
                conn.commit()

        def writer(name: str = name, frame: pd.DataFrame = frame, partitions: list[dict] = partitions,
                   n: int = n) -> None:
            assert wh.replace_partitions(name, frame, partitions) == n

        raw_t = best(lambda raw=raw: truncate(raw), raw_copy, n)
        writer_t = best(lambda name=name: truncate(name), writer, n)
        assert wh.count(name) == n
        emit_load("postgres", name, n, len(partitions), writer_t, raw_t,
                  "PostgresWarehouse.replace_partitions vs raw binary COPY of pre-built tuples into LIKE t "
                  f"INCLUDING ALL; of the writer's time, _rows (frame -> Python tuples) is {rows_t:.2f} s")


def emit_load(engine: str, name: str, n: int, partitions: int, writer_t: float, raw_t: float, how: str) -> None:
    writer_rate, raw_rate = n / writer_t, n / raw_t
    ratio = writer_rate / raw_rate
    emit(f"warehouse_load_{name}_{engine}", writer_rate, "rows/s", baseline=raw_rate, ratio=ratio,
         note=f"{n} rows, {partitions} partitions in one call; writer {writer_t:.2f} s, raw {raw_t:.2f} s "
              f"(best of {SMALL_REPEATS if n < SMALL_ROWS else REPEATS}); {how}; target ratio >= {TARGET_RATIO}"
              + ("" if ratio >= TARGET_RATIO else " MISSED"))


# ------------------------------------------------------------------------- the whole bench

def check_loaded(url: str, expected: dict[str, int]) -> None:
    wh = warehouse_from_url(url)
    got = {name: wh.count(name) for name in expected}
    if got != expected:
        raise SystemExit(f"bench_history: {url}: loaded rows {got} differ from the dump's {expected}")


def bench_engine(engine: str, dump: Path, work: Path, url: str, expected: dict[str, int]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    wall, usage = run_history(dump, work, url, "history")
    check_loaded(url, expected)
    emit(f"history_full_{engine}", wall, "s", baseline=TARGET_SECONDS, ratio=wall / TARGET_SECONDS,
         note=f"f1-assets history --dump <tiled> --no-api, fresh {engine} warehouse and DAGSTER_HOME (SQLite "
              f"instance): {expected['raw_races']} races, {expected['raw_laps']} lap timings, "
              f"{expected['lap_features']} lap_features rows loaded and checked; {usage}; target <= "
              f"{TARGET_SECONDS:.0f} s" + ("" if wall <= TARGET_SECONDS else " MISSED"))
    emit_breakdown(engine, work / "history.jsonl", wall, planned_events(work / "dagster_home"))
    rerun, usage = run_history(dump, work, url, "rerun")
    check_loaded(url, expected)
    emit(f"history_rerun_{engine}", rerun, "s",
         note=f"the same command again: nothing changed, nothing loaded (the dump's own materialization only); {usage}")
    emit_breakdown(f"rerun_{engine}", work / "rerun.jsonl", rerun)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (dump, logs, DuckDB files)")
    parser.add_argument("--engines", default="duckdb,postgres", help="comma-separated: duckdb, postgres")
    parser.add_argument("--skip-history", action="store_true", help="only the per-table write path comparison")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_history_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        source = recorded_data_dir() / "jolpica-dump" / "jolpica-f1-csv.zip"
        dump = root / "jolpica-f1-csv-tiled.zip"
        t0 = time.perf_counter()
        info = tile_dump(source, dump)
        emit("tile_dump", time.perf_counter() - t0, "s",
             note=f"{dump.name}: {info['bytes']} bytes, {info['races']} races; raw tables read back: "
                  + ", ".join(f"{k} {v}" for k, v in info["tables"].items())
                  + "; races with " + ", ".join(f"{k} {v}" for k, v in info["races_with"].items()))
        t0 = time.perf_counter()
        tables = raw_tables(read_dump(dump))
        parse_t = time.perf_counter() - t0
        features, feature_partitions, build_t = lap_features_frame(tables)
        emit("dump_to_raw_tables_in_process", parse_t, "s",
             note=f"read_dump + raw_tables of the tiled dump ({sum(len(tables[n]) for n in RAW_TABLES)} rows)")
        emit("lap_features_build_all_races", len(features) / build_t, "rows/s",
             note=f"build_lap_features per race for {len(feature_partitions)} races in process: {len(features)} "
                  f"rows in {build_t:.1f} s")
        expected = {name: len(tables[name]) for name in RAW_TABLES} | {"lap_features": len(features)}
        load = cases(tables, features, feature_partitions)
        for engine in engines:
            if engine == "duckdb":
                if not args.skip_history:
                    work = root / "duckdb"
                    bench_engine("duckdb", dump, work, f"duckdb:///{work / 'warehouse.duckdb'}", expected)
                load_duckdb(root / "duckdb_tables.duckdb", load)
            elif engine == "postgres":
                if not args.skip_history:
                    with scratch_database("history") as url:
                        bench_engine("postgres", dump, root / "postgres", url, expected)
                with scratch_database("tables") as url:
                    load_postgres(url, load)
            else:
                raise SystemExit(f"bench_history: unknown engine {engine!r}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            say(f"kept {root}")


if __name__ == "__main__":
    main()
