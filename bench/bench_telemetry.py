"""Benchmark of the telemetry merge (`f1_assets.transforms.telemetry.merge_race_telemetry`).

Run from the repository root: `.venv/bin/python bench/bench_telemetry.py`. Generates a race of
≈1 M samples (20 drivers, car data 4 Hz + position 4.4 Hz, 57 laps) in FastF1's shape, times the
merge + lap tagging + Parquet encoding, and measures the peak Python-heap memory (tracemalloc) while
processing three races one after another, to show memory is bounded per race, not per season.
Prints one JSON object per measurement on its last lines (DESIGN.md "Performance").
"""

import gc
import io
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from f1_assets.transforms.telemetry import merge_race_telemetry  # noqa: E402
from f1_assets_tests.test_telemetry import make_fastf1_telemetry  # noqa: E402

DRIVERS = {str(n): f"D{n:02d}" for n in range(1, 21)}
LAPS, LAP_SECONDS = 57, 104.0


def emit(bench: str, value: float, unit: str, note: str, baseline: float | None = None) -> None:
    ratio = round(value / baseline, 3) if baseline else None
    print(json.dumps({"bench": bench, "value": round(value, 4), "unit": unit, "baseline": baseline,
                      "ratio": ratio, "note": note}))


def parquet_size(frame) -> int:
    """Bytes of the frame as the Parquet IO manager encodes it (`f1_assets.io_managers.parquet`)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return len(buffer.getvalue())


def process(seed: int) -> tuple[int, int, float]:
    car, pos, laps = make_fastf1_telemetry(DRIVERS, laps=LAPS, lap_seconds=LAP_SECONDS, seed=seed)
    samples = sum(len(f) for f in [*car.values(), *pos.values()])
    start = time.perf_counter()
    race, stats = merge_race_telemetry(car, pos, laps, DRIVERS)
    merged = time.perf_counter() - start
    size = parquet_size(race)
    return samples, size, merged


def main() -> None:
    process(99)  # warm-up (imports, first-call costs)
    samples, size, seconds = process(0)
    print(f"one race: {samples} samples merged in {seconds:.3f} s; Parquet {size / 1e6:.1f} MB", file=sys.stderr)

    peaks = []
    tracemalloc.start()
    for seed in (1, 2, 3):
        gc.collect()
        tracemalloc.reset_peak()
        process(seed)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    emit("telemetry_merge_1M_samples", seconds, "s",
         f"{samples} samples, 20 drivers: merge + lap tagging (generation excluded)")
    emit("telemetry_samples_per_second", samples / seconds, "samples/s", "merge throughput")
    emit("telemetry_parquet_bytes_per_race", size, "bytes", "Parquet (snappy) of the merged race")
    emit("telemetry_peak_memory_race1", peaks[0], "MiB", "tracemalloc peak while generating+merging race 1")
    emit("telemetry_peak_memory_race3", peaks[2], "MiB",
         "peak for the 3rd race processed in the same run; ratio ≈ 1 means memory is per race",
         baseline=round(peaks[0], 2))
    emit("telemetry_max_rss", rss, "MiB", "process max RSS after 4 races (getrusage)")


if __name__ == "__main__":
    main()
