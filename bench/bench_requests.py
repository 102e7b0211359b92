"""Upstream requests per race and per (replayed) season, next to the lower bound, in one run.

Runs the real assets against the Jolpica replay server on 127.0.0.1 (../shared/data/jolpica-replay)
with the embedded default (DuckDB, local blob store) in a temporary F1_HOME. Lower bound: the sum
over endpoints of ceil(total/100) (at least one request per endpoint to learn its total). Also the
re-run after the settle period, whose target is zero requests. Prints one JSON object per line.
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

REPLAY = REPO.parent / "shared" / "data" / "jolpica-replay"


def emit(bench, value, unit, baseline=None, note=""):
    ratio = None if not baseline else round(value / baseline, 4)
    print(json.dumps({"bench": bench, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
                      "note": note}))


def lower_bound(datasets, key: str, has_sprint: bool) -> int:
    rk = parse_race_key(key)
    endpoints = ["results", "qualifying", "laps", "pitstops"] + (["sprint"] if has_sprint else [])
    era = {e: s for e, (s, _) in ingest_jolpica.ERA_START.items()}
    total = 0
    for ep in endpoints:
        if rk.season < era.get(ep, 0):
            continue
        items = len(datasets[f"{rk.season}/{rk.round}/{ep}"].items)
        total += max(1, math.ceil(items / 100))
    return total


def main() -> None:
    if not REPLAY.is_dir():
        sys.exit(f"no replay data at {REPLAY}")
    datasets = load_replay_dir(REPLAY)
    races = ["2023-01", "2023-10"]
    with tempfile.TemporaryDirectory() as tmp, JolpicaReplayServer(datasets) as server:
        os.environ["F1_HOME"] = str(Path(tmp) / "home")
        res = resources(f"duckdb:///{tmp}/w.duckdb", f"{tmp}/blobs", server.base_url)
        with dg.instance_for_test() as instance:
            t0 = time.perf_counter()
            materialize_calendar(instance, 2023, res)
            season_requests = len(server.state.requests)
            for key in races:
                server.reset_counts()
                materialize_race(instance, key, res)
                made = len(server.state.requests)
                season_requests += made
                bound = lower_bound(datasets, key, has_sprint=False)
                emit(f"requests_per_race_{key}", made, "requests", bound, "ratio 1.0 = the lower bound")
            elapsed = time.perf_counter() - t0
            season_bound = 1 + sum(lower_bound(datasets, k, False) for k in races)
            emit("requests_per_replayed_season_2023", season_requests, "requests", season_bound,
                 f"calendar + rounds {', '.join(races)} (the replay holds these); {elapsed:.1f} s wall")
            server.reset_counts()
            for key in races:
                materialize_race(instance, key, res)
            emit("requests_on_settled_rerun", len(server.state.requests), "requests", None,
                 "re-materializing settled races with an unchanged upstream; target 0")


if __name__ == "__main__":
    main()
