"""The warehouse writer: atomic, idempotent partition replacement on DuckDB and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import psycopg
import pytest

from f1_assets.storage.warehouse import (
    POSTGRES_ONLY_MARKER,
    ShrinkRefused,
    WarehouseError,
    schema_sql,
    warehouse_from_url,
)


def _laps(season: int, rnd: int, n: int, marker: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "season": season,
            "round": rnd,
            "driver_id": [f"d{i % 20}" for i in range(n)],
            "lap_number": [i // 20 + 1 for i in range(n)],
            "position": pd.array([i % 20 + 1 for i in range(n)], dtype="Int64"),
            "lap_time_ms": pd.array([90_000 + marker] * n, dtype="Int64"),
        }
    )


def test_replace_is_idempotent_and_touches_one_partition(warehouse_url):
    wh = warehouse_from_url(warehouse_url)
    wh.apply_schema()
    wh.apply_schema()  # applying the DDL twice is harmless
    wh.replace_partitions("raw_laps", _laps(2023, 1, 100), [{"season": 2023, "round": 1}])
    wh.replace_partitions("raw_laps", _laps(2023, 2, 60), [{"season": 2023, "round": 2}])
    wh.replace_partitions("raw_laps", _laps(2023, 1, 100, marker=5), [{"season": 2023, "round": 1}])
    assert wh.count("raw_laps", {"season": 2023, "round": 1}) == 100
    assert wh.count("raw_laps", {"season": 2023, "round": 2}) == 60
    assert set(wh.read_partition("raw_laps", {"season": 2023, "round": 1})["lap_time_ms"]) == {90_005}
    # an empty frame empties the partition (data that vanished upstream does not linger)
    wh.replace_partitions("raw_laps", _laps(2023, 2, 0), [{"season": 2023, "round": 2}])
    assert wh.count("raw_laps", {"season": 2023, "round": 2}) == 0


def test_a_smaller_version_is_refused_inside_the_transaction(warehouse_url):
    wh = warehouse_from_url(warehouse_url)
    part = {"season": 2023, "round": 1}
    wh.replace_partitions("raw_laps", _laps(2023, 1, 100), [part], allow_shrink=False)
    for smaller in (60, 0):
        with pytest.raises(ShrinkRefused, match=f"{smaller} rows, fewer than the 100 stored") as refused:
            wh.replace_partitions("raw_laps", _laps(2023, 1, smaller, marker=7), [part], allow_shrink=False)
        assert (refused.value.stored, refused.value.new) == (100, smaller)
        assert wh.count("raw_laps", part) == 100
        assert set(wh.read_partition("raw_laps", part)["lap_time_ms"]) == {90_000}  # untouched
    wh.replace_partitions("raw_laps", _laps(2023, 1, 100, marker=3), [part], allow_shrink=False)  # same size: fine
    wh.replace_partitions("raw_laps", _laps(2023, 1, 40), [part], allow_shrink=True)  # asked for explicitly
    assert wh.count("raw_laps", part) == 40


def test_bad_frames_are_refused_naming_the_problem(warehouse_url):
    wh = warehouse_from_url(warehouse_url)
    with pytest.raises(WarehouseError, match=r"the frame lacks \['lap_time_ms'\]"):
        wh.replace_partitions("raw_laps", _laps(2023, 1, 5).drop(columns="lap_time_ms"),
                              [{"season": 2023, "round": 1}])
    with pytest.raises(WarehouseError, match=r"carry rows of other partitions \(season=2023, round=2\)"):
        wh.replace_partitions("raw_laps", _laps(2023, 2, 5), [{"season": 2023, "round": 1}])
    with pytest.raises(WarehouseError, match="does not exist"):
        wh.replace_partitions("no_such_table", _laps(2023, 1, 5), [{"season": 2023, "round": 1}])
    with pytest.raises(WarehouseError, match="invalid identifier"):
        wh.count("raw_laps; DROP TABLE raw_laps")


def test_duckdb_schema_is_the_portable_part_of_the_one_ddl():
    assert POSTGRES_ONLY_MARKER not in schema_sql(postgres=False)
    assert "CREATE TABLE IF NOT EXISTS raw_laps" in schema_sql(postgres=False)
    assert schema_sql(postgres=False) in schema_sql(postgres=True)


KILLED_WRITER = textwrap.dedent(
    """
    import sys, pandas as pd
    from f1_assets.storage.warehouse import warehouse_from_url
    n = 400_000
    df = pd.DataFrame({"season": 2023, "round": 1, "driver_id": [f"d{i % 20}" for i in range(n)],
                       "lap_number": [i // 20 + 1 for i in range(n)],
                       "position": pd.array([i % 20 + 1 for i in range(n)], dtype="Int64"),
                       "lap_time_ms": pd.array([1] * n, dtype="Int64")})
    print("writing", flush=True)
    warehouse_from_url(sys.argv[1]).replace_partitions("raw_laps", df, [{"season": 2023, "round": 1}])
    print("done", flush=True)
    """
)


def test_killed_writer_leaves_previous_rows_on_postgres(pg_url):
    wh = warehouse_from_url(pg_url)
    wh.replace_partitions("raw_laps", _laps(2023, 1, 1000), [{"season": 2023, "round": 1}])
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, pg_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    # wait until the writer's COPY is under way (its transaction holds the partition lock), then kill it
    deadline = time.time() + 60
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while time.time() < deadline:
            active = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%%' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
            if active:
                break
            time.sleep(0.01)
    assert active, "the writer never reached COPY"
    proc.kill()
    proc.wait(timeout=30)
    assert wh.count("raw_laps", {"season": 2023, "round": 1}) == 1000
    assert set(wh.read_partition("raw_laps", {"season": 2023, "round": 1})["lap_time_ms"]) == {90_000}


def test_concurrent_writers_of_one_partition_never_mix_on_postgres(pg_url):
    wh = warehouse_from_url(pg_url)
    wh.apply_schema()
    errors: list[BaseException] = []

    def write(marker: int, n: int) -> None:
        try:
            for _ in range(5):
                warehouse_from_url(pg_url).replace_partitions(
                    "raw_laps", _laps(2023, 1, n, marker=marker), [{"season": 2023, "round": 1}]
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(m, 2000 + m * 20)) for m in (1, 2, 3)]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        snap = wh.read_partition("raw_laps", {"season": 2023, "round": 1})
        markers = set(snap["lap_time_ms"] - 90_000)
        assert len(markers) <= 1, f"a reader saw a mix of versions {markers}"
        if markers:
            seen.add(markers.pop())
    for t in threads:
        t.join()
    assert not errors, errors
    final = wh.read_partition("raw_laps", {"season": 2023, "round": 1})
    marker = int(final["lap_time_ms"].iloc[0]) - 90_000
    assert len(final) == 2000 + marker * 20  # exactly one writer's rows, no duplicates
    assert not final.duplicated(["driver_id", "lap_number"]).any()


DUCKDB_WRITER = textwrap.dedent(
    """
    import sys, pandas as pd
    from f1_assets.storage.warehouse import warehouse_from_url
    url, rnd = sys.argv[1], int(sys.argv[2])
    wh = warehouse_from_url(url)
    for i in range(15):
        n = 500 + i
        df = pd.DataFrame({"season": 2023, "round": rnd, "driver_id": [f"d{j % 20}" for j in range(n)],
                           "lap_number": [j // 20 + 1 for j in range(n)],
                           "position": pd.array([j % 20 + 1 for j in range(n)], dtype="Int64"),
                           "lap_time_ms": pd.array([90_000] * n, dtype="Int64")})
        wh.replace_partitions("raw_laps", df, [{"season": 2023, "round": rnd}])
    """
)


def test_duckdb_writers_in_several_processes_take_turns(duckdb_url):
    """The embedded default under the multiprocess executor: one file, one writer at a time."""
    warehouse_from_url(duckdb_url).apply_schema()
    procs = [subprocess.Popen([sys.executable, "-c", DUCKDB_WRITER, duckdb_url, str(rnd)], stderr=subprocess.PIPE,
                              text=True) for rnd in (1, 2, 3)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
    wh = warehouse_from_url(duckdb_url)
    assert [wh.count("raw_laps", {"season": 2023, "round": r}) for r in (1, 2, 3)] == [514, 514, 514]


def test_a_read_only_session_elsewhere_is_waited_for_and_said(duckdb_url, monkeypatch, caplog):
    """A user's `duckdb` shell on the file (read-only, another process) holds DuckDB's lock: a write waits
    for it, says so once in the logs (naming the file and what to do), and lands when the shell closes."""
    from f1_assets.storage import warehouse as warehouse_module

    wh = warehouse_from_url(duckdb_url)
    wh.apply_schema()
    path = duckdb_url.removeprefix("duckdb:///")
    empty = pd.DataFrame(columns=wh.columns("raw_races"))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, duckdb
        con = duckdb.connect({path!r}, read_only=True)
        print("open", flush=True)
        time.sleep(2.5)
        con.close()
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        monkeypatch.setattr(warehouse_module, "LOCK_WARN_AFTER_SECONDS", 0.5)
        caplog.set_level("WARNING", logger="f1_assets.storage.warehouse")
        wh.replace_partitions("raw_races", empty, [{"season": 2023}])
    finally:
        holder.wait(timeout=30)
    said = [r.getMessage() for r in caplog.records if r.name == "f1_assets.storage.warehouse"]
    assert len(said) == 1 and path in said[0] and "read-only" in said[0] and "close it" in said[0], said
