"""A real HTTP server on 127.0.0.1 that replays Jolpica with its paging semantics.

Datasets are whole endpoints (every item of `2023/1/laps`, …), loaded from recorded pages
(`jolpica-replay/` of the recorded data) or built by tests; season-level endpoints (`2023/results`) are
derived from the recorded races of a recorded schedule. The server pages them the way Jolpica does:
`limit` capped at 100 (default 30), `offset`, `MRData.total`, an empty page past the end, 400 for a
laps request without a round, 403 for a query parameter containing "cache", 404 for an unknown path,
`Cache-Control: max-age=600`. Faults for tests: throttling (burst per second and an hourly budget,
429 without Retry-After), a number of 500s, truncated JSON, an HTML page, a body trickled one byte
at a time, and a hook that changes the data between pages (an upstream that shrinks or grows mid-fetch).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/ergast/f1/"
LIST_KEYS = ("Results", "QualifyingResults", "SprintResults", "PitStops", "Laps")


@dataclass
class Dataset:
    """One endpoint: the MRData envelope, the race object (None for a season schedule) and its items."""

    envelope: dict[str, Any]
    race: dict[str, Any] | None
    list_key: str  # "Races" for a schedule
    items: list[Any]

    def page(self, url: str, limit: int, offset: int) -> dict[str, Any]:
        chunk = self.items[offset : offset + limit]
        data = dict(self.envelope, url=url, limit=str(limit), offset=str(offset), total=str(len(self.items)))
        table = dict(data.pop("RaceTable"))
        if self.race is None:
            table["Races"] = chunk
        elif not chunk:
            table["Races"] = []
        else:
            race = dict(self.race)
            if self.list_key == "Laps":
                laps: list[dict[str, Any]] = []
                for number, timing in chunk:
                    if not laps or laps[-1]["number"] != number:
                        laps.append({"number": number, "Timings": []})
                    laps[-1]["Timings"].append(timing)
                race["Laps"] = laps
            else:
                race[self.list_key] = chunk
            table["Races"] = [race]
        data["RaceTable"] = table
        return {"MRData": data}


@dataclass
class SeasonDataset:
    """A season-level endpoint (`2023/results`): many races, items paged across race boundaries."""

    envelope: dict[str, Any]
    list_key: str
    races: list[tuple[dict[str, Any], list[Any]]]

    @property
    def items(self) -> list[tuple[int, Any]]:
        return [(i, item) for i, (_, items) in enumerate(self.races) for item in items]

    def page(self, url: str, limit: int, offset: int) -> dict[str, Any]:
        items = self.items
        chunk = items[offset : offset + limit]
        data = dict(self.envelope, url=url, limit=str(limit), offset=str(offset), total=str(len(items)))
        table = dict(data.pop("RaceTable"))
        races: list[dict[str, Any]] = []
        last = None
        for index, item in chunk:
            if index != last:
                races.append(dict(self.races[index][0], **{self.list_key: []}))
                last = index
            races[-1][self.list_key].append(item)
        table["Races"] = races
        data["RaceTable"] = table
        return {"MRData": data}


SEASON_TABLES = {"results": "Results", "qualifying": "QualifyingResults", "sprint": "SprintResults"}


def add_season_tables(datasets: dict[str, Dataset | SeasonDataset]) -> None:
    """Derive Jolpica's season-level endpoints (`{season}/results`, …) from the recorded race-level ones,
    for every season whose schedule is recorded: what the real server answers for those races."""
    for season in [k for k in datasets if re.fullmatch(r"\d{4}", k)]:
        rounds = sorted(int(r["round"]) for r in datasets[season].items)
        for endpoint, list_key in SEASON_TABLES.items():
            races = []
            for rnd in rounds:
                race_level = datasets.get(f"{season}/{rnd}/{endpoint}")
                if isinstance(race_level, Dataset) and race_level.race:
                    races.append((race_level.race, list(race_level.items)))
            envelope = {"xmlns": "", "series": "f1", "RaceTable": {"season": season}}
            datasets.setdefault(f"{season}/{endpoint}", SeasonDataset(envelope, list_key, races))


def dataset_from_pages(payloads: list[dict[str, Any]]) -> Dataset:
    first = payloads[0]["MRData"]
    envelope = {k: v for k, v in first.items() if k not in ("limit", "offset", "total", "url")}
    races = [r for p in payloads for r in p["MRData"]["RaceTable"]["Races"]]
    envelope["RaceTable"] = {k: v for k, v in first["RaceTable"].items() if k != "Races"}
    list_key = next((k for r in races for k in LIST_KEYS if k in r), None)
    if list_key is None and "round" not in first["RaceTable"]:
        return Dataset(envelope, None, "Races", races)
    race = {k: v for k, v in races[0].items() if k not in LIST_KEYS} if races else None
    items: list[Any] = []
    for r in races:
        if list_key == "Laps":
            items += [(lap["number"], t) for lap in r.get("Laps", []) for t in lap["Timings"]]
        elif list_key:
            items += r.get(list_key, [])
    if race is None:  # an endpoint with no rows at all: keep the envelope, serve empty pages
        race = {}
    return Dataset(envelope, race, list_key or "Results", items)


@dataclass
class StandingsDataset:
    """A standings endpoint (`2023/10/driverStandings`): entries paged by limit and offset, `MRData.total` =
    the entries, `StandingsTable.StandingsLists` one list (none past the end), as Jolpica's paginator."""

    season: str
    round: str
    list_key: str  # "DriverStandings" | "ConstructorStandings"
    items: list[dict[str, Any]]

    def page(self, url: str, limit: int, offset: int) -> dict[str, Any]:
        chunk = self.items[offset : offset + limit]
        lists = [{"season": self.season, "round": self.round, self.list_key: chunk}] if chunk else []
        return {"MRData": {"xmlns": "", "series": "f1", "url": url, "limit": str(limit), "offset": str(offset),
                           "total": str(len(self.items)), "StandingsTable": {
                               "season": self.season, "round": self.round, "StandingsLists": lists}}}


STANDINGS_ENDPOINTS = {"raw_driver_standings": ("driverStandings", "DriverStandings"),
                       "raw_constructor_standings": ("constructorStandings", "ConstructorStandings")}
DUMP_BESIDE_REPLAY = Path("jolpica-dump") / "jolpica-f1-csv.zip"


def standing_items(rows: Any, name: str) -> list[dict[str, Any]]:
    """Standings rows (a raw_driver_standings / raw_constructor_standings frame of one round) as the API's
    DriverStandings / ConstructorStandings entries: strings, `position` absent when NULL (Jolpica's
    serializer drops None)."""
    items = []
    for r in rows.itertuples():
        item: dict[str, Any] = {"positionText": r.position_text, "points": f"{r.points:g}", "wins": str(r.wins)}
        if not _missing(r.position):
            item = {"position": str(int(r.position)), **item}
        if name == "raw_driver_standings":
            item["Driver"] = {"driverId": r.driver_id}
            item["Constructors"] = [{"constructorId": c} for c in (r.constructor_ids or "").split(",") if c]
        else:
            item["Constructor"] = {"constructorId": r.constructor_id}
        items.append(item)
    return items


def _missing(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def standings_datasets(tables: dict[str, Any], races: list[tuple[int, int]]) -> dict[str, StandingsDataset]:
    """`{season}/{round}/driverStandings` and `/constructorStandings` for `races`, from the standings rows
    of a Jolpica dump (`f1_assets.transforms.dump.raw_tables`): the real rows in the API's shape."""
    out = {}
    for season, rnd in races:
        for name, (endpoint, list_key) in STANDINGS_ENDPOINTS.items():
            df = tables[name]
            rows = df[(df["season"] == season) & (df["round"] == rnd)]
            out[f"{season}/{rnd}/{endpoint}"] = StandingsDataset(str(season), str(rnd), list_key,
                                                                 standing_items(rows, name))
    return out


def add_standings_from_dump(datasets: dict[str, Any], dump: Path) -> None:
    """There are no recorded standings pages: serve, for every race with recorded results, the standings
    the Jolpica dump holds for it (the dump's own rows; an empty list where it holds none)."""
    from f1_assets.transforms.dump import raw_tables, read_dump  # pandas: only when a dump is served

    races = sorted({(int(m.group(1)), int(m.group(2))) for k in datasets
                    if (m := re.fullmatch(r"(\d{4})/(\d+)/results", k))})
    if races:
        tables = raw_tables(read_dump(dump))
        for key, dataset in standings_datasets(tables, races).items():
            datasets.setdefault(key, dataset)


def load_replay_dir(directory: Path) -> dict[str, Dataset]:
    """`ergast@f1@2023@1@laps.json@limit=100@offset=300.json` files → {"2023/1/laps": Dataset}; plus the
    standings of the recorded races from the dump beside the directory, when there is one."""
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for path in directory.glob("ergast@f1@*.json@limit=*@offset=*.json"):
        match = re.fullmatch(r"ergast@f1@(.+)\.json@limit=\d+@offset=(\d+)\.json", path.name)
        if not match:
            continue
        endpoint = match.group(1).replace("@", "/")
        try:
            payload = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a recorded Jolpica page (not JSON: {exc})") from None
        groups.setdefault(endpoint, []).append((int(match.group(2)), payload))
    datasets = {ep: dataset_from_pages([p for _, p in sorted(pages)]) for ep, pages in groups.items()}
    add_season_tables(datasets)
    if (directory.parent / DUMP_BESIDE_REPLAY).is_file():
        add_standings_from_dump(datasets, directory.parent / DUMP_BESIDE_REPLAY)
    return datasets


@dataclass
class Faults:
    burst_per_second: int | None = None  # None: no throttling
    hourly_budget: int | None = None
    fail_500: int = 0  # the next N requests answer 500
    truncate: int = 0  # the next N requests answer a truncated JSON body
    html: int = 0  # the next N requests answer 200 with an HTML page (a portal or a misconfigured mirror)
    delay_seconds: float = 0.0
    trickle_seconds: float = 0.0  # send 200 bodies one byte at a time, this many seconds apart
    # called as before_page(endpoint, offset, state) under the state lock before a page is built: tests
    # change `state.datasets` here to imitate an upstream that changes between pages
    before_page: Callable[[str, int, ServerState], None] | None = None


@dataclass
class ServerState:
    datasets: dict[str, Dataset | SeasonDataset | StandingsDataset]
    faults: Faults = field(default_factory=Faults)
    requests: list[str] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    served: list[float] = field(default_factory=list)  # times of requests let through the throttle
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        with self.state.lock:
            self.state.statuses[status] += 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 200:
            self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        trickle = self.state.faults.trickle_seconds
        if status == 200 and trickle:
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(trickle)
            except OSError:  # the client gave up
                return
            return
        self.wfile.write(body)

    def _error(self, status: int, detail: str) -> None:
        self._send(status, json.dumps({"detail": detail}).encode())

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state = self.state
        parts = urlsplit(self.path)
        with state.lock:
            state.requests.append(self.path)
            faults = state.faults
            now = time.monotonic()
            if faults.burst_per_second is not None:
                recent = [t for t in state.served if t > now - 1.0]
                hourly = [t for t in state.served if t > now - 3600.0]
                if len(recent) >= faults.burst_per_second or (
                    faults.hourly_budget is not None and len(hourly) >= faults.hourly_budget
                ):
                    throttled = True
                else:
                    throttled = False
                    state.served.append(now)
            else:
                throttled = False
                state.served.append(now)
            fault = None
            for name in ("fail_500", "truncate", "html"):
                if getattr(faults, name) > 0:
                    setattr(faults, name, getattr(faults, name) - 1)
                    fault = name
                    break
        if faults.delay_seconds:
            time.sleep(faults.delay_seconds)
        if throttled:  # Jolpica's 429 carries no Retry-After
            return self._error(429, "Request was throttled.")
        if fault == "fail_500":
            return self._error(500, "Internal Server Error")
        if fault == "html":
            return self._send(200, b"<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>", "text/html")
        query = parse_qs(parts.query)
        if any("cache" in key.lower() for key in query):
            return self._error(403, "Forbidden")
        if not parts.path.startswith(PREFIX) or not parts.path.endswith(".json"):
            return self._error(404, "Not found")
        endpoint = parts.path[len(PREFIX) : -len(".json")]
        if re.fullmatch(r"\d{4}/(laps|pitstops)", endpoint):
            return self._error(400, "Bad Request: Laps and pit stops require a round.")
        dataset = state.datasets.get(endpoint)
        if dataset is None:
            return self._error(404, f"Not found: {endpoint}")
        try:
            limit = min(int(query.get("limit", ["30"])[0]), 100)
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return self._error(400, "Bad Request: limit and offset must be integers")
        host = f"http://{self.headers.get('Host', '127.0.0.1')}{parts.path}"
        with state.lock:
            if faults.before_page is not None:
                faults.before_page(endpoint, offset, state)
                dataset = state.datasets.get(endpoint, dataset)
            body = json.dumps(dataset.page(host, limit, offset)).encode()
        if fault == "truncate":
            body = body[: len(body) // 2]
        self._send(200, body)


class JolpicaReplayServer:
    """Start with `with JolpicaReplayServer(datasets) as server:`; `server.base_url` ends in /ergast/f1/."""

    def __init__(self, datasets: dict[str, Dataset | SeasonDataset]):
        self.state = ServerState(datasets=copy.deepcopy(datasets))
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{PREFIX}"

    def requests_for(self, fragment: str) -> list[str]:
        return [r for r in self.state.requests if fragment in r]

    def reset_counts(self) -> None:
        with self.state.lock:
            self.state.requests.clear()
            self.state.statuses.clear()

    def __enter__(self) -> JolpicaReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


PAGES_GLOB = "ergast@f1@*.json@limit=*@offset=*.json"


def _bind(prog: str, handler: type[BaseHTTPRequestHandler], port: int) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:`port` (0: a free port), or one line on stderr and exit 2."""
    import sys

    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        reason = "is busy (another program listens on it)" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        print(f"{prog}: error: port {port} on 127.0.0.1 {reason}: choose another with --port, or 0 for a free one",
              file=sys.stderr)
        raise SystemExit(2) from None


def port_number(value: str) -> int:
    """argparse type of --port: 0..65535."""
    import argparse

    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0..65535; 0 = a free port)")
    return int(value)


def serve_until_stopped(httpd: ThreadingHTTPServer) -> None:
    """serve_forever until Ctrl-C or SIGTERM, then close the socket."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # also when started in the background (a shell ignores SIGINT there)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    """`python -m f1_assets_tests.jolpica_server [--data DIR] [--port N]`: serve recorded Jolpica pages until
    Ctrl-C / SIGTERM, printing the F1_JOLPICA_URL to set."""
    import argparse
    import sys

    prog = "python -m f1_assets_tests.jolpica_server"
    parser = argparse.ArgumentParser(
        prog=prog, description="Replay recorded Jolpica API pages on 127.0.0.1 with Jolpica's paging (limit, "
        "offset, total); season tables derived from the recorded races, standings from the dump beside DIR.")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help=f"a folder of recorded pages ({PAGES_GLOB}); default: jolpica-replay/ of the recorded "
                        "data shipped with the repository (f1_assets_tests/data)")
    parser.add_argument("--port", type=port_number, default=0, metavar="N",
                        help="port on 127.0.0.1 (default 0: a free port)")
    args = parser.parse_args(argv)
    if args.data is None:
        from f1_assets_tests.recorded import recorded_data_dir

        args.data = recorded_data_dir() / "jolpica-replay"
    if not args.data.is_dir() or not any(args.data.glob(PAGES_GLOB)):
        print(f"{prog}: error: no recorded Jolpica pages ({PAGES_GLOB}) in {args.data}", file=sys.stderr)
        return 2
    try:
        datasets = load_replay_dir(args.data)
    except ValueError as exc:  # a page that is not JSON (the message names the file)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, IndexError) as exc:  # JSON, but not Jolpica's MRData shape
        print(f"{prog}: error: a page in {args.data} is not in Jolpica's shape ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 2
    state = ServerState(datasets=datasets)
    httpd = _bind(prog, type("Handler", (_Handler,), {"state": state}), args.port)
    print(f"serving {len(state.datasets)} recorded endpoints from {args.data} (Ctrl-C stops); set:", flush=True)
    print(f"F1_JOLPICA_URL=http://127.0.0.1:{httpd.server_address[1]}{PREFIX}", flush=True)
    serve_until_stopped(httpd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
