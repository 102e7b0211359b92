"""Upstream requests per race and per (replayed) season, next to the lower bound, in one run.

Runs the real assets against the Jolpica replay server on 127.0.0.1 (jolpica-replay/ of the
recorded data, f1_assets_tests/data/recorded.tar.xz)
with the embedded default (DuckDB, local blob store) in a temporary F1_HOME. Lower bound: the sum
over endpoints of ceil(total/100) (at least one request per endpoint to learn its total); for a
season, results/qualifying/sprint count as season endpoints (Jolpica serves them per season). Also
the re-run after the settle period, whose target is zero requests. Prints one JSON object per line.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from f1_assets.assets import ingest_jolpica  # noqa: E402
from f1_assets.partitions import parse_race_key  # noqa: E402
from f1_assets_tests.helpers import materialize_calendar, materialize_race, resources  # noqa: E402
from f1_assets_tests.jolpica_server import JolpicaReplayServer, load_replay_dir  # noqa: E402
from f1_assets_tests.recorded import recorded_data_dir  # noqa: E402

REPLAY = recorded_data_dir() / "jolpica-replay"


def emit(bench, value, unit, baseline=None, note=""):
    ratio = None if not baseline else round(value / baseline, 4)
    print(json.dumps({"bench": bench, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
                      "note": note}))


def pages(datasets, endpoint: str) -> int:
    """ceil(total/100), at least one request to learn the total."""
    return max(1, math.ceil(len(datasets[endpoint].items) / 100))


def race_lower_bound(datasets, key: str, endpoints: tuple[str, ...]) -> int:
    rk = parse_race_key(key)
    era = {e: s for e, (s, _) in ingest_jolpica.ERA_START.items()}
    return sum(pages(datasets, f"{rk.season}/{rk.round}/{ep}") for ep in endpoints if rk.season >= era.get(ep, 0))


def main() -> None:
    if not REPLAY.is_dir():
        sys.exit(f"no replay data at {REPLAY}")
    datasets = load_replay_dir(REPLAY)
    races = ["2023-01", "2023-10"]
    per_race = ("results", "qualifying", "laps", "pitstops")  # neither race had a sprint
    with tempfile.TemporaryDirectory() as tmp, JolpicaReplayServer(datasets) as server:
        os.environ["F1_HOME"] = str(Path(tmp) / "home")

        # one race on its own: every endpoint per race
        res = resources(f"duckdb:///{tmp}/single.duckdb", f"{tmp}/single-blobs", server.base_url)
        with dg.instance_for_test() as instance:
            materialize_calendar(instance, 2023, res, prefetch=False)
            for key in races:
                server.reset_counts()
                materialize_race(instance, key, res)
                emit(f"requests_single_race_{key}", len(server.state.requests), "requests",
                     race_lower_bound(datasets, key, per_race), "sum over endpoints of ceil(total/100)")

        # a settled season: results/qualifying/sprint in season pages, then laps + pit stops per race
        res = resources(f"duckdb:///{tmp}/season.duckdb", f"{tmp}/season-blobs", server.base_url)
        with dg.instance_for_test() as instance:
            server.reset_counts()
            t0 = time.perf_counter()
            materialize_calendar(instance, 2023, res)
            for key in races:
                materialize_race(instance, key, res)
            elapsed = time.perf_counter() - t0
            bound = 1 + sum(pages(datasets, f"2023/{e}") for e in ("results", "qualifying", "sprint"))
            bound += sum(race_lower_bound(datasets, k, ("laps", "pitstops")) for k in races)
            emit("requests_per_replayed_season_2023", len(server.state.requests), "requests", bound,
                 f"schedule + season pages + laps and pit stops of rounds {', '.join(races)} (what the replay "
                 f"holds); {elapsed:.1f} s wall")
            server.reset_counts()
            for key in races:
                materialize_race(instance, key, res)
            emit("requests_on_settled_rerun", len(server.state.requests), "requests", None,
                 "re-materializing settled races with an unchanged upstream; target 0")


if __name__ == "__main__":
    main()
