"""Benchmark of the feature layer: lap_features / telemetry_features building and warehouse loads.

Run from the repo root: `.venv/bin/python bench/bench_features.py` (env `F1_BENCH_POSTGRES_URL`,
default `postgresql://postgres@127.0.0.1:5432/test`; the bench works in a throw-away schema it drops).
Reads the 2023 Bahrain replay pages of the recorded data (f1_assets_tests/data/recorded.tar.xz) for
lap_features; telemetry is generated.

Measurements (one JSON object per line at the end, DESIGN.md "Performance"):
- lap_features build rows/s on the real race (1,055 rows, repeated) and on the race tiled to ~1 M rows
  (the 20 cars copied ×950 with distinct ids and positions);
- telemetry_features seconds for ≈1 M generated samples (sorted as the Parquet is, and shuffled);
- warehouse load rows/s of `PostgresWarehouse.replace_partitions("lap_features", …)` against a raw
  `COPY … FROM STDIN (FORMAT BINARY)` of the same rows (already Python tuples) into a fresh
  `CREATE TABLE … (LIKE lap_features INCLUDING ALL)` (same columns, PK and indexes) in the same run;
  ratio = writer / raw (target ≥ 0.70). Both load into an empty table (emptied untimed before each
  run); best of `REPEATS`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from f1_assets.storage.warehouse import PostgresWarehouse, _rows  # noqa: E402
from f1_assets.transforms import jolpica  # noqa: E402
from f1_assets.transforms.features import build_lap_features, build_telemetry_features  # noqa: E402
from f1_assets_tests.recorded import recorded_data_dir  # noqa: E402

REPLAY = recorded_data_dir() / "jolpica-replay"
PG_URL = os.environ.get("F1_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPEATS = 3
TILE_BUILD = 950  # ≈1 M lap rows
TILE_LOAD = 200  # ≈211 k rows through the writer and raw COPY


def emit(bench: str, value: float, unit: str, baseline: float | None = None, ratio: float | None = None,
         note: str = "") -> dict:
    return {"bench": bench, "value": round(value, 4), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 4),
            "ratio": None if ratio is None else round(ratio, 4), "note": note}


def pages(stem: str) -> list[tuple[str, dict]]:
    files = sorted(REPLAY.glob(f"{stem}@limit=100@offset=*.json"),
                   key=lambda p: int(re.search(r"offset=(\d+)", p.name).group(1)))
    return [(p.name, json.loads(p.read_text())) for p in files]


def bahrain() -> dict[str, pd.DataFrame]:
    schedule = jolpica.parse_schedule(pages("ergast@f1@2023.json"))
    return {
        "race": schedule[schedule["round"] == 1].iloc[0],
        "results": jolpica.parse_results(pages("ergast@f1@2023@1@results.json")),
        "laps": jolpica.parse_laps(pages("ergast@f1@2023@1@laps.json")),
        "pit_stops": jolpica.parse_pit_stops(pages("ergast@f1@2023@1@pitstops.json")),
    }


def tiled(b: dict[str, pd.DataFrame], k: int) -> dict[str, pd.DataFrame]:
    """The race with its 20 cars copied k times: distinct driver ids, car numbers and positions."""
    n_cars = len(b["results"])

    def tile(frame: pd.DataFrame, shift_pos: bool) -> pd.DataFrame:
        parts = []
        for i in range(k):
            f = frame.copy()
            f["driver_id"] = f["driver_id"] + f"_{i}"
            if shift_pos:
                f["position"] = f["position"] + i * n_cars
            parts.append(f)
        return pd.concat(parts, ignore_index=True)

    results = tile(b["results"], True)
    results["driver_number"] = np.arange(1, len(results) + 1)
    results["position_order"] = np.arange(1, len(results) + 1)
    return {"race": b["race"], "results": results, "laps": tile(b["laps"], True),
            "pit_stops": tile(b["pit_stops"], False)}


def best(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gen_telemetry(n_drivers: int = 20, laps: int = 57, per_lap: int = 880, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_drivers * laps * per_lap
    drv = np.repeat(np.arange(1, n_drivers + 1), laps * per_lap)
    st = pd.to_timedelta(np.tile(np.arange(laps * per_lap), n_drivers) * 110, unit="ms")
    x = rng.normal(size=n)
    x[rng.random(n) < 0.001] = np.nan
    return pd.DataFrame({
        "DriverNumber": drv, "Driver": np.char.add("D", drv.astype(str)).astype(object),
        "LapNumber": pd.array(np.tile(np.repeat(np.arange(1, laps + 1), per_lap), n_drivers), dtype="Int64"),
        "Date": pd.Timestamp("2023-03-05 15:00") + st, "SessionTime": st,
        "Speed": rng.uniform(80, 330, n), "RPM": rng.uniform(8000, 12000, n),
        "nGear": rng.integers(1, 9, n).astype(float), "Throttle": rng.uniform(0, 100, n),
        "Brake": (rng.random(n) < 0.1).astype(float), "DRS": rng.choice([0, 1, 8, 10, 12, 14], n).astype(float),
        "X": x, "Y": rng.normal(size=n), "Z": rng.normal(size=n), "Interpolated": rng.random(n) < 0.01,
    })


def bench_lap_build(b: dict[str, pd.DataFrame]) -> list[dict]:
    out = []
    args = (b["race"], b["results"], b["laps"], b["pit_stops"], None)
    rows = len(build_lap_features(*args))
    t = best(lambda: build_lap_features(*args), repeats=20)
    out.append(emit("lap_features_build_race", rows / t, "rows/s",
                    note=f"2023-01 Bahrain, {rows} rows in {t * 1000:.1f} ms (best of 20)"))
    big = tiled(b, TILE_BUILD)
    big_args = (big["race"], big["results"], big["laps"], big["pit_stops"], None)
    rows = len(big["laps"])
    t = best(lambda: build_lap_features(*big_args), repeats=2)
    out.append(emit("lap_features_build_1m", rows / t, "rows/s",
                    note=f"Bahrain tiled x{TILE_BUILD}: {rows} rows in {t:.2f} s"))
    return out


def bench_telemetry() -> list[dict]:
    tel = gen_telemetry()
    n = len(tel)
    sorted_s = best(lambda: build_telemetry_features(tel, season=2023, rnd=1))
    shuffled = tel.sample(frac=1, random_state=1)
    shuffled_s = best(lambda: build_telemetry_features(shuffled, season=2023, rnd=1))
    return [
        emit("telemetry_features_1m_samples", sorted_s, "s",
             note=f"{n} samples, 20 drivers x 57 laps, in (driver, time) order as the Parquet is; "
                  f"{n / sorted_s:,.0f} samples/s"),
        emit("telemetry_features_1m_samples_shuffled", shuffled_s, "s",
             note=f"{n} samples in random order (adds the lexsort)"),
    ]


def bench_load(b: dict[str, pd.DataFrame]) -> list[dict]:
    import psycopg
    from psycopg import sql

    t = tiled(b, TILE_LOAD)
    frame = build_lap_features(t["race"], t["results"], t["laps"], t["pit_stops"], None)
    n = len(frame)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        wh = PostgresWarehouse(url)
        wh.apply_schema()
        part = {"season": 2023, "round": 1}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE lap_features_raw (LIKE lap_features INCLUDING ALL)")
        cols = wh.columns("lap_features")
        types = dict(wh._column_types("lap_features"))
        from f1_assets.storage.warehouse import _PG_COPY_TYPES

        copy_types = [_PG_COPY_TYPES.get(types[c], "text") for c in cols]
        tuples = list(_rows(frame[cols]))  # baseline gets ready-made Python rows (conversion untimed)

        def truncate(table: str) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))

        def raw_copy() -> None:
            stmt = sql.SQL("COPY lap_features_raw ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in cols))
            with psycopg.connect(url) as conn, conn.cursor() as cur:
                with cur.copy(stmt) as copy:
                    copy.set_types(copy_types)
                    for row in tuples:
                        copy.write_row(row)
                conn.commit()

        raw_t, writer_t = [], []
        for _ in range(REPEATS):
            truncate("lap_features_raw")
            t0 = time.perf_counter()
            raw_copy()
            raw_t.append(time.perf_counter() - t0)
            truncate("lap_features")
            t0 = time.perf_counter()
            assert wh.replace_partitions("lap_features", frame, [part]) == n
            writer_t.append(time.perf_counter() - t0)
        assert wh.count("lap_features", part) == n
        # where the writer's time goes: frame → Python rows (`_rows`), untimed in the baseline
        t0 = time.perf_counter()
        for _ in _rows(frame[cols]):
            pass
        rows_t = time.perf_counter() - t0
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    raw_rate, writer_rate = n / min(raw_t), n / min(writer_t)
    return [
        emit("warehouse_load_lap_features_postgres", writer_rate, "rows/s", baseline=raw_rate,
             ratio=writer_rate / raw_rate,
             note=f"{n} rows; PostgresWarehouse.replace_partitions vs raw binary COPY of pre-built tuples into "
                  f"LIKE lap_features INCLUDING ALL; best of {REPEATS}; of the writer's "
                  f"{min(writer_t):.2f} s, {rows_t:.2f} s is _rows (frame -> Python tuples)"),
    ]


def main() -> None:
    if not REPLAY.is_dir():
        sys.exit(f"bench_features: {REPLAY} not found (the real 2023 Bahrain pages are needed)")
    b = bahrain()
    results = bench_lap_build(b) + bench_telemetry() + bench_load(b)
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
