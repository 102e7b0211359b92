"""Benchmark of the telemetry merge (`f1_assets.transforms.telemetry.merge_race_telemetry`).

Run from the repository root: `.venv/bin/python bench/bench_telemetry.py`. Generates a race of
≈1 M samples (20 drivers, car data 4 Hz + position 4.4 Hz, 57 laps) in FastF1's shape, times the
merge + lap tagging + Parquet encoding, and measures the peak Python-heap memory (tracemalloc) while
processing three races one after another, to show memory is bounded per race, not per season.
Prints one JSON object per measurement on its last lines (DESIGN.md "Performance").

Kinematics section (`.venv/bin/python bench/bench_telemetry.py kinematics` runs only it): ≈1 M generated
raw_telemetry samples (`f1_assets_tests.test_kinematics.realistic_race`: 20 cars, irregular merged instants,
NaN gaps), seconds per 1 M samples of `lap_kinematics` (what telemetry_features calls; target < 1 s, the
baseline), and of the two `local_quadratic` fits (speed; X,Y) against the former one-pass-per-offset
implementation kept in the test as the reference (ratio = now / before). Process CPU time, best of `REPEATS`,
so that other processes on the machine disturb it less.
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

from f1_assets.transforms import kinematics as kin  # noqa: E402
from f1_assets.transforms.features import lap_samples  # noqa: E402
from f1_assets.transforms.telemetry import merge_race_telemetry  # noqa: E402
from f1_assets_tests.test_kinematics import realistic_race, reference_local_quadratic  # noqa: E402
from f1_assets_tests.test_telemetry import make_fastf1_telemetry  # noqa: E402

DRIVERS = {str(n): f"D{n:02d}" for n in range(1, 21)}
LAPS, LAP_SECONDS = 57, 104.0
REPEATS = 3


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


def best_cpu_seconds(run) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def kinematics() -> None:
    race = realistic_race(cars=20, samples_per_car=50_000)
    per_m = 1e6 / len(race)
    car = race["DriverNumber"].to_numpy()
    t = kin.seconds(race["SessionTime"])
    speed, x, y = (race[c].to_numpy(float) for c in ("Speed", "X", "Y"))
    fits = ([speed / 3.6], [x * kin.POSITION_UNIT_M, y * kin.POSITION_UNIT_M])
    now = best_cpu_seconds(lambda: [kin.local_quadratic(car, t, v) for v in fits]) * per_m
    before = best_cpu_seconds(lambda: [reference_local_quadratic(car, t, v) for v in fits]) * per_m
    lap = best_cpu_seconds(lambda: kin.lap_kinematics(lap_samples(race))) * per_m
    print(f"kinematics: {len(race)} samples; lap_kinematics {lap:.3f} s per 1 M samples", file=sys.stderr)
    emit("kinematics_lap_kinematics_s_per_1M_samples", lap, "s",
         f"{len(race)} samples, 20 cars: lap_samples + lap_kinematics (CPU s); baseline = the 1 s target",
         baseline=1.0)
    emit("kinematics_local_quadratic_s_per_1M_samples", now, "s",
         "the two fits (speed; X,Y), block-wise sums; baseline = the former one pass per offset (reference)",
         baseline=round(before, 4))


def main() -> None:
    if sys.argv[1:] == ["kinematics"]:
        kinematics()
        return
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
    kinematics()


if __name__ == "__main__":
    main()
