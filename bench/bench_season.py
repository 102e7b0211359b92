"""A whole season through `f1-assets season`: cold against a rate-limited upstream, then settled (archive warm),
next to the old path (one `f1-assets race` per race). Issue 11's targets, measured, not asserted.

Runs the real CLI (`.venv/bin/f1-assets`, one process per command, as an operator would) with a temporary
DAGSTER_HOME (a copy of the repository's dagster.yaml) and F1_HOME (DuckDB warehouse, local blob store)
against two servers on 127.0.0.1:
- `bench/season_server.py`: the whole 2023 season in Jolpica's shape (22 rounds made from the recorded
  races), throttled like Jolpica (a burst of 4 requests/s and 500/h: 429 without Retry-After);
- the test suite's recorded live-timing/schedule server for FastF1 (it holds no 2023 streams: FastF1 gets
  404s, the FastF1 assets materialize empty with their non-blocking `live_timing_available` check failing).

Measured:
a. cold: empty archive, `f1-assets season 2023` with F1_JOLPICA_HOURLY_BUDGET (default 500, above the
   season's requests, so the binding limit is the burst of 4/s; a budget below them makes the limiter wait
   for the hour's window to slide, ~1 h). Requests (the pipeline's own, by User-Agent; FastF1's Ergast
   calls counted apart) against the lower bound (schedule + season pages of results/qualifying/sprint +
   every race's laps and pit stops, each ceil(total/100)); wall time against the time the rate rules
   themselves need for the lower bound's requests + 60 s.
b. settled: the same command again (F1_SETTLE_DAYS=0: every race settled, served from the raw archive):
   wall time against 2 minutes, requests (target 0).
c. the old path: `f1-assets race 2023-RR` for 3 races on the same warm home; per-race wall × 22 = baseline.
Each CLI run's JSON log lines (stdout) give the per-run and per-step times: the Jolpica phase (calendar +
race tables) and the FastF1 phase (one race_pipeline run per race). Prints one JSON object per line.

`nice .venv/bin/python bench/bench_season.py [--budget N] [--old-races 2023-02,2023-12,2023-21] [--keep DIR]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from season_server import SEASON, SeasonServer, season_datasets, season_lower_bound  # noqa: E402

from f1_assets.resources.rate_budget import HOUR, wait_seconds  # noqa: E402
from f1_assets_tests.jolpica_server import Faults  # noqa: E402
from f1_assets_tests.livetiming_server import serve_recorded_upstreams  # noqa: E402
from f1_assets_tests.recorded import recorded_data_dir  # noqa: E402

CLI = REPO / ".venv" / "bin" / "f1-assets"
BURST_PER_SECOND = 4  # the client's burst (JolpicaResource.burst_per_second) and Jolpica's
SETTLED_TARGET_S = 120.0
COLD_SLACK_S = 60.0
CLI_TIMEOUT_S = 3600.0


def emit(bench, value, unit, baseline=None, note="", detail=None):
    ratio = None if not baseline else round(value / baseline, 4)
    line = {"bench": bench, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "note": note}
    if detail is not None:
        line["detail"] = detail
    print(json.dumps(line), flush=True)


def rate_limit_seconds(requests: int, per_second: int, per_hour: int) -> float:
    """When the last of `requests` can be sent under the client's rules (the project's own `wait_seconds`),
    with instant answers: the time the rate limit alone imposes."""
    stamps: list[float] = []
    now = 0.0
    rules = [(per_second, 1.0), (per_hour, HOUR)]
    for _ in range(requests):
        now += wait_seconds(stamps, now, rules)
        stamps.append(now)
    return now


def parse_log(path: Path) -> dict[str, Any]:
    """Runs (in order) with their first/last log timestamps and step durations, from the JSON log lines."""
    runs: dict[str, dict[str, Any]] = {}
    first = last = None
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "created" not in record:
            continue
        t = float(record["created"])
        first = t if first is None else first
        last = t
        meta = record.get("dagster_meta") or {}
        run_id = meta.get("run_id")
        if not run_id:
            continue
        tags = meta.get("job_tags") or {}
        bounds = (tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end"))
        partition = tags.get("dagster/partition") or "...".join(filter(None, bounds))
        run = runs.setdefault(run_id, {"job": meta.get("job_name"), "partition": partition, "t0": t, "t1": t,
                                       "steps": {}})
        run["t1"] = t
        event = (meta.get("dagster_event") or {}).get("event_type_value")
        step = meta.get("step_key")
        if step and event in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            run["steps"].setdefault(step, {})[event] = t
    out = []
    for run in runs.values():
        steps = {}
        for step, events in run["steps"].items():
            end = events.get("STEP_SUCCESS") or events.get("STEP_FAILURE")
            if "STEP_START" in events and end is not None:
                steps[step] = round(end - events["STEP_START"], 1)
        out.append({"job": run["job"], "partition": run["partition"], "seconds": round(run["t1"] - run["t0"], 1),
                    "t0": run["t0"], "t1": run["t1"], "steps": steps})
    return {"runs": out, "span": round(last - first, 1) if first is not None else 0.0}


def phases(log: dict[str, Any], wall: float) -> dict[str, Any]:
    """Where a `season` command's wall time went: process start-up and the gaps between runs, the Jolpica phase
    (season_calendar + race_tables runs) with its steps, the FastF1 phase (race_pipeline runs per race)."""
    runs = log["runs"]
    jolpica = [r for r in runs if r["job"] in ("season_calendar", "race_tables")]
    per_race = [r for r in runs if r["job"] == "race_pipeline"]
    in_runs = sum(r["seconds"] for r in runs)
    detail: dict[str, Any] = {
        "wall_s": round(wall, 1),
        "outside_runs_s": round(wall - in_runs, 1),  # interpreter + imports, instance/warehouse set-up, gaps
        "jolpica_phase_s": round(sum(r["seconds"] for r in jolpica), 1),
        "jolpica_steps_s": {f"{r['job']}:{s}": v for r in jolpica for s, v in r["steps"].items()},
        "fastf1_phase_s": round(sum(r["seconds"] for r in per_race), 1),
        "fastf1_runs": len(per_race),
    }
    if per_race:
        seconds = [r["seconds"] for r in per_race]
        median = round(statistics.median(seconds), 1)
        detail["fastf1_run_s"] = {"min": min(seconds), "median": median, "max": max(seconds)}
        step_totals: dict[str, float] = {}
        for r in per_race:
            for step, v in r["steps"].items():
                step_totals[step] = round(step_totals.get(step, 0.0) + v, 1)
        detail["fastf1_steps_total_s"] = step_totals
        detail["fastf1_slow_runs"] = {r["partition"]: r["seconds"] for r in per_race
                                      if r["seconds"] > 2 * median}
    return detail


def run_cli(args: list[str], env: dict[str, str], out_dir: Path, name: str) -> tuple[int, float, Path, Path]:
    stdout, stderr = out_dir / f"{name}.stdout.jsonl", out_dir / f"{name}.stderr.txt"
    t0 = time.perf_counter()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        rc = subprocess.run([str(CLI), *args], env=env, stdout=out, stderr=err, timeout=CLI_TIMEOUT_S,
                            check=False).returncode
    return rc, time.perf_counter() - t0, stdout, stderr


def fastf1_limit_hits(stderr: Path) -> int:
    return sum("FastF1's own request limit" in line for line in stderr.read_text(errors="replace").splitlines())


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any F1_* or DAGSTER_HOME of the caller's, plus the bench's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("F1_") and k != "DAGSTER_HOME"}
    env.update(settings)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=500, help="F1_JOLPICA_HOURLY_BUDGET (default 500)")
    parser.add_argument("--server-hourly", type=int, default=500, help="the server's hourly throttle (Jolpica: 500)")
    parser.add_argument("--old-races", default="2023-02,2023-12,2023-21",
                        help="races for the old path, one `f1-assets race` each")
    parser.add_argument("--keep", help="keep the homes and CLI logs in this directory")
    args = parser.parse_args()
    if not CLI.exists():
        sys.exit(f"no {CLI}: install the project first (make dev / make test)")

    datasets = season_datasets()
    bound = season_lower_bound(datasets)
    limit_s = rate_limit_seconds(bound["total"], BURST_PER_SECOND, args.budget)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_season_"))
    tmp.mkdir(parents=True, exist_ok=True)
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    faults = Faults(burst_per_second=BURST_PER_SECOND, hourly_budget=args.server_hourly)
    try:
        with SeasonServer(datasets, faults=faults) as server, serve_recorded_upstreams(recorded_data_dir()) as up:
            env = clean_env(DAGSTER_HOME=str(dagster_home), F1_HOME=str(tmp / "f1_home"),
                            F1_JOLPICA_URL=server.base_url, F1_JOLPICA_HOURLY_BUDGET=str(args.budget),
                            F1_SETTLE_DAYS="0", F1_LIVETIMING_URL=up.livetiming_url,
                            F1_FASTF1_SCHEDULE_URL=up.schedule_url)
            season = str(SEASON)

            # a. cold: empty archive, rate-limited upstream
            rc, wall, out, err = run_cli(["season", season], env, tmp, "cold")
            counts = server.counts()
            detail = phases(parse_log(out), wall)
            emit("cold_season_requests", counts["pipeline_requests"], "requests", bound["total"],
                 f"f1-assets season {season} (exit {rc}), the pipeline's own requests incl. retries; lower bound = "
                 "sum over endpoints of ceil(total/100), season pages counted once; statuses of all requests "
                 f"{counts['statuses']}; FastF1's own Ergast calls (not in the shared budget) "
                 f"{counts['other_requests']}", {"lower_bound": bound, **counts})
            target = limit_s + COLD_SLACK_S
            emit("cold_season_wall_s", round(wall, 1), "s", round(target, 1),
                 f"target: the rate rules' own time for the {bound['total']} lower-bound requests "
                 f"({limit_s:.0f} s at {BURST_PER_SECOND}/s and {args.budget}/h) + {COLD_SLACK_S:.0f} s; "
                 f"FastF1's own 500 calls/h limit hit {fastf1_limit_hits(err)} times", detail)
            emit("cold_season_jolpica_phase_s", detail["jolpica_phase_s"], "s", round(target, 1),
                 "season_calendar + race_tables runs only (first to last log line of each run)")

            # b. settled: every race past F1_SETTLE_DAYS=0, the archive warm
            server.reset_counts()
            rc, wall, out, err = run_cli(["season", season], env, tmp, "settled")
            counts = server.counts()
            detail = phases(parse_log(out), wall)
            settled_wall = wall
            emit("settled_season_wall_s", round(wall, 1), "s", SETTLED_TARGET_S,
                 f"f1-assets season {season} again (exit {rc}), archive warm; target 2 min; FastF1's own 500 "
                 f"calls/h limit hit {fastf1_limit_hits(err)} times", detail)
            emit("settled_season_requests", counts["pipeline_requests"], "requests", None,
                 f"the pipeline's own requests on the settled re-run; target 0; FastF1's Ergast calls "
                 f"{counts['other_requests']}", counts)
            emit("settled_season_jolpica_phase_s", detail["jolpica_phase_s"], "s", SETTLED_TARGET_S,
                 "season_calendar + race_tables runs only")

            # c. the old path: one f1-assets race per race, on the same warm home
            server.reset_counts()
            walls = []
            for key in args.old_races.split(","):
                rc, wall, out, _ = run_cli(["race", key], env, tmp, f"old_{key}")
                walls.append(wall)
                detail = phases(parse_log(out), wall)
                emit(f"old_path_race_{key}_wall_s", round(wall, 1), "s", None,
                     f"f1-assets race {key} (exit {rc}), settled, archive warm",
                     {k: detail[k] for k in ("wall_s", "outside_runs_s", "fastf1_phase_s") if k in detail}
                     | {"steps_s": {s: v for r in parse_log(out)["runs"] for s, v in r["steps"].items()}})
            rounds = len(datasets[season].items)
            per_race = statistics.mean(walls)
            emit("old_path_season_extrapolated_s", round(per_race * rounds, 1), "s", None,
                 f"mean of {len(walls)} `f1-assets race` runs ({per_race:.1f} s) x {rounds} races; the issue's "
                 "'today ~16 min' was through the daemon; pipeline requests "
                 f"{server.counts()['pipeline_requests']}")
            emit("settled_season_vs_old_path", round(settled_wall, 1), "s", round(per_race * rounds, 1),
                 "f1-assets season (settled) against the old path's extrapolated season")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
