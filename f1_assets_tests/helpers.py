"""Test helpers: materialize assets against a replay server, and small synthetic upstream datasets."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg

from f1_assets import definitions
from f1_assets.assets import ingest_jolpica
from f1_assets.definitions import build_resources
from f1_assets_tests.jolpica_server import Dataset, StandingsDataset

FAST_RETRY = {"backoff_seconds": 0.05, "max_retries": 5, "timeout_seconds": 5.0}


def resources(warehouse_url: str, blob_dir: str, base_url: str, **jolpica: Any) -> dict[str, Any]:
    config = {**FAST_RETRY, "hourly_budget": 10_000, **jolpica}
    return build_resources(warehouse_url=warehouse_url, blob_url=blob_dir, jolpica_url=base_url, **config)


def materialize(selection: Any, *, extra_assets: Sequence[dg.AssetsDefinition] = (),
                **kwargs: Any) -> dg.ExecuteInProcessResult:
    """`dg.materialize` of `selection` (assets, keys or an AssetSelection) within the code location's
    whole graph: every asset and check of `f1_assets.definitions` (plus a test's `extra_assets`), so
    unselected upstream assets are loaded through their IO managers, as a run launched from the UI
    would. kwargs: `dg.materialize`'s (partition_key, instance, resources, tags, raise_on_error, …)."""
    defs = definitions.defs
    return dg.materialize([*defs.assets, *defs.asset_checks, *extra_assets], selection=selection, **kwargs)


def materialize_calendar(
    instance: dg.DagsterInstance, season: int, res: dict[str, Any], prefetch: bool = True
) -> dg.ExecuteInProcessResult:
    config = dg.RunConfig({"raw_races": ingest_jolpica.CalendarConfig(prefetch_season_tables=prefetch)})
    return materialize(
        [ingest_jolpica.raw_races], partition_key=str(season), instance=instance, resources=res, run_config=config
    )


def materialize_race(
    instance: dg.DagsterInstance, key: str, res: dict[str, Any], assets: list | None = None, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    if key not in instance.get_dynamic_partitions("races"):
        instance.add_dynamic_partitions("races", [key])
    return materialize(
        assets or ingest_jolpica.RACE_ASSETS,
        partition_key=key,
        instance=instance,
        resources=res,
        raise_on_error=raise_on_error,
    )


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    mats = result.asset_materializations_for_node(asset)
    assert mats, f"no materialization of {asset}"
    return {k: v.value for k, v in mats[-1].metadata.items()}


def check_results(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    out = {}
    for event in result.get_asset_check_evaluations():
        out[(event.asset_key.to_user_string(), event.check_name)] = event
    return out


# ------------------------------------------------------------------------- synthetic upstream

DRIVERS = ["alpha", "bravo", "charlie"]


def synthetic_race(season: int, rnd: int, laps: int = 40, date: dt.date | None = None,
                   sprint: bool = False) -> dict[str, Any]:
    """A small race: 3 drivers, `laps` laps each (3*laps timings, so lap pages split mid-lap), and the
    standings after it."""
    date = date or dt.date(season, 3, 1) + dt.timedelta(days=14 * (rnd - 1))
    race = {
        "season": str(season), "round": str(rnd), "raceName": f"Test Grand Prix {rnd}",
        "Circuit": {"circuitId": f"circuit_{rnd}", "circuitName": "Test Circuit",
                    "Location": {"lat": "1.0", "long": "2.0", "locality": "Town", "country": "Land"}},
        "date": date.isoformat(), "time": "13:00:00Z",
    }
    envelope = {"xmlns": "", "series": "f1", "RaceTable": {"season": str(season), "round": str(rnd)}}

    def driver(i: int) -> dict[str, Any]:
        name = DRIVERS[i]
        return {"driverId": name, "code": name[:3].upper(), "givenName": name.title(), "familyName": "Test"}

    results = [
        {"number": str(i + 1), "position": str(i + 1), "positionText": str(i + 1), "points": str(10 - i),
         "Driver": driver(i), "Constructor": {"constructorId": f"team_{i % 2}"}, "grid": str(i + 1),
         "laps": str(laps), "status": "Finished", "Time": {"millis": str(5_400_000 + i * 1000)}}
        for i in range(len(DRIVERS))
    ]
    timings = [
        (str(lap), {"driverId": DRIVERS[i], "position": str(i + 1), "time": f"1:{30 + i:02d}.{lap % 1000:03d}"})
        for lap in range(1, laps + 1) for i in range(len(DRIVERS))
    ]
    stops = [{"driverId": DRIVERS[i], "lap": str(15 + i), "stop": "1", "time": "14:20:00", "duration": "22.5"}
             for i in range(len(DRIVERS))]
    quali = [{"number": str(i + 1), "position": str(i + 1), "Driver": driver(i),
              "Constructor": {"constructorId": f"team_{i % 2}"}, "Q1": f"1:29.{i:03d}"} for i in range(len(DRIVERS))]
    out = {
        f"{season}/{rnd}/results": Dataset(envelope, race, "Results", results),
        f"{season}/{rnd}/laps": Dataset(envelope, race, "Laps", timings),
        f"{season}/{rnd}/pitstops": Dataset(envelope, race, "PitStops", stops),
        f"{season}/{rnd}/qualifying": Dataset(envelope, race, "QualifyingResults", quali),
    }
    if sprint:
        out[f"{season}/{rnd}/sprint"] = Dataset(envelope, race, "SprintResults", [dict(r) for r in results])
    out.update(synthetic_standings(season, rnd, [(r["Driver"]["driverId"], r["Constructor"]["constructorId"],
                                                   float(r["points"])) for r in results], sprint))
    return out


def synthetic_standings(season: int, rnd: int, scored: list[tuple[str, str, float]],
                        sprint: bool) -> dict[str, StandingsDataset]:
    """The standings after round `rnd` of a season of synthetic races (every round scores the same
    `scored` (driver, team, points), no sprint before this round): rnd times the points (twice this round's
    with a sprint), a win per round for the first driver. What `standings_agree_with_results` expects."""
    times = rnd + (1 if sprint else 0)
    drivers = [{"position": str(i + 1), "positionText": str(i + 1), "points": f"{times * p:g}",
                "wins": str(rnd if i == 0 else 0), "Driver": {"driverId": d}, "Constructors": [{"constructorId": t}]}
               for i, (d, t, p) in enumerate(scored)]
    teams: dict[str, float] = {}
    for _, t, p in scored:
        teams[t] = teams.get(t, 0.0) + times * p
    ranked = sorted(teams, key=lambda t: -teams[t])
    constructors = [{"position": str(i + 1), "positionText": str(i + 1), "points": f"{teams[t]:g}",
                     "wins": str(rnd if t == scored[0][1] else 0), "Constructor": {"constructorId": t}}
                    for i, t in enumerate(ranked)]
    return {f"{season}/{rnd}/driverStandings": StandingsDataset(str(season), str(rnd), "DriverStandings", drivers),
            f"{season}/{rnd}/constructorStandings": StandingsDataset(str(season), str(rnd), "ConstructorStandings",
                                                                     constructors)}


def synthetic_schedule(season: int, rounds: list[tuple[int, dt.date, bool]]) -> dict[str, Dataset]:
    races = []
    for rnd, date, sprint in rounds:
        race = {"season": str(season), "round": str(rnd), "raceName": f"Test Grand Prix {rnd}",
                "Circuit": {"circuitId": f"circuit_{rnd}", "circuitName": "Test Circuit",
                            "Location": {"lat": "1.0", "long": "2.0", "locality": "Town", "country": "Land"}},
                "date": date.isoformat(), "time": "13:00:00Z"}
        if sprint:
            race["Sprint"] = {"date": (date - dt.timedelta(days=1)).isoformat(), "time": "15:00:00Z"}
        races.append(race)
    envelope = {"xmlns": "", "series": "f1", "RaceTable": {"season": str(season)}}
    return {str(season): Dataset(envelope, None, "Races", races)}


def replay_pages(replay: Path, stem: str) -> list[tuple[str, dict[str, Any]]]:
    """The recorded pages of one endpoint (`ergast@f1@2023@1@laps.json`) in offset order, as (name, payload)."""
    files = sorted(replay.glob(f"{stem}@limit=100@offset=*.json"),
                   key=lambda p: int(re.search(r"offset=(\d+)", p.name).group(1)))
    assert files, f"no replay pages for {stem} in {replay}"
    return [(p.name, json.loads(p.read_text())) for p in files]


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real ThreadingHTTPServer on 127.0.0.1 (a free port) serving `handler` in a thread; yields
    `http://127.0.0.1:<port>`; shut down and closed afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def replayed_2023_races(shared_data: Path) -> dict[int, dict[str, Any]]:
    """Round → the calendar row (`races`), results, laps, pit stops and lap_features of the replayed 2023
    rounds 1 and 10, parsed from the recorded pages and built by the pure transforms."""
    from f1_assets.transforms import jolpica
    from f1_assets.transforms.features import build_lap_features

    replay = shared_data / "jolpica-replay"
    schedule = jolpica.parse_schedule(replay_pages(replay, "ergast@f1@2023.json"))
    out = {}
    for rnd in (1, 10):
        race = schedule[schedule["round"] == rnd].reset_index(drop=True)
        results = jolpica.parse_results(replay_pages(replay, f"ergast@f1@2023@{rnd}@results.json"))
        laps = jolpica.parse_laps(replay_pages(replay, f"ergast@f1@2023@{rnd}@laps.json"))
        stops = jolpica.parse_pit_stops(replay_pages(replay, f"ergast@f1@2023@{rnd}@pitstops.json"))
        out[rnd] = {"races": race, "results": results, "laps": laps, "stops": stops,
                    "features": build_lap_features(race.iloc[0], results, laps, stops, None)}
    return out


def load_baku(upstreams: Any, cache_dir: Path) -> tuple[Any, Any]:
    """(the FastF1 resource on the recorded upstreams, the recorded 2018 Baku race loaded through it: laps only,
    no telemetry is recorded), FastF1's cache in `cache_dir`."""
    from f1_assets.partitions import parse_race_key
    from f1_assets.resources.fastf1 import FastF1Resource

    resource = FastF1Resource(livetiming_url=upstreams.livetiming_url, schedule_url=upstreams.schedule_url,
                              jolpica_url=upstreams.jolpica_url, cache_dir=str(cache_dir))
    return resource, resource.load_race(parse_race_key("2018-04"), laps=True)
