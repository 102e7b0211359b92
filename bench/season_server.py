"""A Jolpica-compatible server on 127.0.0.1 that serves a WHOLE 2023 season, for bench/bench_season.py.

Built on the test suite's replay server (`f1_assets_tests.jolpica_server`: Jolpica's paging, `MRData`
envelope, faults and throttling); only the data is made here. The season is the recorded calendar
`2023.json` (22 rounds, `jolpica-replay/` of the recorded data) and, for every round, the results,
qualifying, laps and pit stops of a recorded race (2023 round 1 for odd rounds, round 10 for even ones)
re-labelled with the round's own race header (name, circuit, date, round). Sprint rounds (the calendar
lists a `Sprint` session: 4, 9, 12, 17, 18, 20) get the recorded sprint page of 2023 round 4
(`jolpica/2023@4@sprint.json`), re-labelled the same way; other rounds answer an empty sprint page, as
Jolpica does. The season endpoints `2023/results`, `2023/qualifying` and `2023/sprint` are derived from
the rounds (`add_season_tables`), paged across race boundaries with limit/offset (max 100). The standings
after each round (`{round}/driverStandings`, `constructorStandings`) are the served points summed up to the
round (`summed_standings`), as Jolpica computes them.

The data is re-labelled, not rewritten: every result row is a real upstream row. Each request is recorded with
its User-Agent, so the bench tells the pipeline's own Jolpica client (`f1-assets …`) from FastF1's
Ergast calls. `python bench/season_server.py [PORT]` serves it until Ctrl-C.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from f1_assets_tests.jolpica_server import (  # noqa: E402
    SEASON_TABLES,
    Dataset,
    Faults,
    JolpicaReplayServer,
    SeasonDataset,
    ServerState,
    StandingsDataset,
    _Handler,
    add_season_tables,
    dataset_from_pages,
    load_replay_dir,
)
from f1_assets_tests.recorded import recorded_data_dir  # noqa: E402

SEASON = 2023
SOURCE_ROUNDS = (1, 10)  # the two fully recorded 2023 races
RACE_HEADER = ("season", "round", "url", "raceName", "Circuit", "date", "time")
PIPELINE_AGENT = "f1-assets"  # the pipeline's JolpicaClient User-Agent starts with this
PAGE = 100


def _relabel(dataset: Dataset, header: dict[str, Any]) -> Dataset:
    """The same rows under another race's header (and the envelope's RaceTable round)."""
    envelope = json.loads(json.dumps(dataset.envelope))
    envelope["RaceTable"] = {**envelope.get("RaceTable", {}), "season": header["season"], "round": header["round"]}
    return Dataset(envelope, dict(header), dataset.list_key, list(dataset.items))


def _empty(endpoint_list_key: str, header: dict[str, Any]) -> Dataset:
    envelope = {"xmlns": "", "series": "f1", "RaceTable": {"season": header["season"], "round": header["round"]}}
    return Dataset(envelope, {}, endpoint_list_key, [])


def season_datasets(data_dir: Path | None = None) -> dict[str, Dataset | SeasonDataset]:
    """Every endpoint of the synthesized 2023 season, keyed like the replay server's datasets."""
    data = data_dir or recorded_data_dir()
    recorded = load_replay_dir(data / "jolpica-replay")
    calendar = recorded[str(SEASON)]
    sprint = dataset_from_pages([json.loads((data / "jolpica" / f"{SEASON}@4@sprint.json").read_text())])
    datasets: dict[str, Dataset | SeasonDataset] = {str(SEASON): calendar}
    for race in calendar.items:
        rnd = int(race["round"])
        header = {k: race[k] for k in RACE_HEADER if k in race}
        source = SOURCE_ROUNDS[0] if rnd % 2 else SOURCE_ROUNDS[1]
        for endpoint in ("results", "qualifying", "laps", "pitstops"):
            original = recorded[f"{SEASON}/{source}/{endpoint}"]
            assert isinstance(original, Dataset)
            datasets[f"{SEASON}/{rnd}/{endpoint}"] = _relabel(original, header)
        datasets[f"{SEASON}/{rnd}/sprint"] = (_relabel(sprint, header) if "Sprint" in race
                                              else _empty("SprintResults", header))
    add_season_tables(datasets)
    datasets.update(summed_standings(datasets, [int(r["round"]) for r in calendar.items]))
    return datasets


def summed_standings(datasets: dict[str, Any], rounds: list[int]) -> dict[str, StandingsDataset]:
    """The standings after each round of the re-labelled season, as Jolpica derives them: the points of the
    served race and sprint results of rounds 1..R summed per driver (constructor), wins = race wins, ordered
    by points then wins. (The recorded standings belong to the real rounds, not to these re-labelled ones.)"""
    points: dict[str, dict[str, float]] = {"driver": {}, "constructor": {}}
    wins: dict[str, dict[str, int]] = {"driver": {}, "constructor": {}}
    teams: dict[str, list[str]] = {}
    out = {}
    for rnd in rounds:
        for endpoint in ("results", "sprint"):
            for item in datasets[f"{SEASON}/{rnd}/{endpoint}"].items:
                driver, team = item["Driver"]["driverId"], item["Constructor"]["constructorId"]
                if team not in teams.setdefault(driver, []):
                    teams[driver].append(team)
                for kind, key in (("driver", driver), ("constructor", team)):
                    points[kind][key] = points[kind].get(key, 0.0) + float(item.get("points", 0))
                    won = endpoint == "results" and item.get("position") == "1"
                    wins[kind][key] = wins[kind].get(key, 0) + int(won)
        for kind, (endpoint, list_key) in (("driver", ("driverStandings", "DriverStandings")),
                                           ("constructor", ("constructorStandings", "ConstructorStandings"))):
            ranked = sorted(points[kind], key=lambda k, kind=kind: (-points[kind][k], -wins[kind][k], k))
            items = []
            for position, key in enumerate(ranked, start=1):
                item: dict[str, Any] = {"position": str(position), "positionText": str(position),
                                        "points": f"{points[kind][key]:g}", "wins": str(wins[kind][key])}
                if kind == "driver":
                    item["Driver"] = {"driverId": key}
                    item["Constructors"] = [{"constructorId": t} for t in teams[key]]
                else:
                    item["Constructor"] = {"constructorId": key}
                items.append(item)
            out[f"{SEASON}/{rnd}/{endpoint}"] = StandingsDataset(str(SEASON), str(rnd), list_key, items)
    return out


def pages(datasets: dict[str, Dataset | SeasonDataset], endpoint: str) -> int:
    """ceil(total/100), at least one request to learn the total."""
    return max(1, math.ceil(len(datasets[endpoint].items) / PAGE))


def sprint_rounds(datasets: dict[str, Dataset | SeasonDataset]) -> list[int]:
    return [int(r["round"]) for r in datasets[str(SEASON)].items if "Sprint" in r]


def season_lower_bound(datasets: dict[str, Dataset | SeasonDataset]) -> dict[str, int]:
    """The fewest requests that load the settled season: the schedule, the season pages of results,
    qualifying and sprint (counted once), then each race's laps, pit stops and standings (no season
    endpoint holds the standings after each round)."""
    rounds = [int(r["round"]) for r in datasets[str(SEASON)].items]
    bound = {"schedule": pages(datasets, str(SEASON))}
    for endpoint in SEASON_TABLES:
        if endpoint != "sprint" or sprint_rounds(datasets):
            bound[f"season/{endpoint}"] = pages(datasets, f"{SEASON}/{endpoint}")
    for endpoint in ("laps", "pitstops", "driverStandings", "constructorStandings"):
        bound[f"races/{endpoint}"] = sum(pages(datasets, f"{SEASON}/{rnd}/{endpoint}") for rnd in rounds)
    bound["total"] = sum(bound.values())
    return bound


class _AgentHandler(_Handler):
    """The replay handler, also recording (path, User-Agent) of every request."""

    agents: list[tuple[str, str]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        with self.state.lock:
            self.agents.append((self.path, self.headers.get("User-Agent", "")))
        super().do_GET()


class SeasonServer(JolpicaReplayServer):
    """`with SeasonServer(faults=Faults(burst_per_second=4, hourly_budget=500)) as server:` serves the
    season; `server.base_url` ends in /ergast/f1/."""

    def __init__(self, datasets: dict[str, Dataset | SeasonDataset] | None = None, faults: Faults | None = None,
                 port: int = 0):
        self.datasets = datasets if datasets is not None else season_datasets()
        self.state = ServerState(datasets=self.datasets, faults=faults or Faults())
        self.agents: list[tuple[str, str]] = []
        handler = type("Handler", (_AgentHandler,), {"state": self.state, "agents": self.agents})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def counts(self) -> dict[str, Any]:
        """Requests so far: the pipeline's own (by its User-Agent) and the others' (FastF1), and statuses."""
        with self.state.lock:
            agents = list(self.agents)
            statuses = dict(self.state.statuses)
        ours = [p for p, a in agents if a.startswith(PIPELINE_AGENT)]
        return {"requests": len(agents), "pipeline_requests": len(ours), "other_requests": len(agents) - len(ours),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "other_agents": sorted({a.split("/")[0] for p, a in agents if not a.startswith(PIPELINE_AGENT)})}

    def pipeline_paths(self) -> list[str]:
        with self.state.lock:
            return [p for p, a in self.agents if a.startswith(PIPELINE_AGENT)]

    def reset_counts(self) -> None:
        with self.state.lock:
            self.agents.clear()
            self.state.requests.clear()
            self.state.statuses.clear()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = SeasonServer(port=port)
    bound = season_lower_bound(server.datasets)
    print(f"serving {len(server.datasets)} endpoints of season {SEASON} at {server.base_url} "
          f"(lower bound {bound['total']} requests: {bound})", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
