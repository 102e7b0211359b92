"""Jolpica (Ergast) pages → typed raw tables. Pure functions: pages in, DataFrame out.

Each parser takes the pages of one endpoint as `(url, payload)` pairs (payload = the decoded JSON)
and returns the rows of one raw table with typed columns: ints, durations in ms, dates. Upstream
values are strings; a value that does not parse raises `UpstreamDataError` naming the URL and the
field. Rows mean the same whether they come from a page or, later, from Jolpica's CSV dump. Columns
and dtypes are the tables' declarations (`f1_assets/tables/raw.yaml`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from f1_assets.tables import table

Page = tuple[str, dict[str, Any]]

_DURATION = re.compile(r"(?:(\d+):)?(?:(\d+):)?(\d+)(?:\.(\d{1,3}))?")


class UpstreamDataError(ValueError):
    """An upstream page whose content does not have the expected shape or values."""


def parse_duration_ms(text: str | None) -> int | None:
    """`1:31.447` → 91447, `25.885` → 25885, `1:02:03.5` → 3723500; None/'' → None."""
    if text is None or text == "":
        return None
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    a, b, secs, frac = match.groups()
    hours, minutes = (int(a), int(b)) if b is not None else (0, int(a) if a else 0)
    millis = int((frac or "0").ljust(3, "0"))
    return ((hours * 60 + minutes) * 60 + int(secs)) * 1000 + millis


def mrdata(url: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("MRData"), dict):
        raise UpstreamDataError(f"{url}: field MRData: missing; not a Jolpica/Ergast response")
    return payload["MRData"]


def page_total(url: str, payload: Any) -> int:
    return _int(url, "MRData.total", mrdata(url, payload).get("total"))


def _races(url: str, payload: Any) -> list[dict[str, Any]]:
    data = mrdata(url, payload)
    table = data.get("RaceTable")
    if not isinstance(table, dict) or not isinstance(table.get("Races"), list):
        raise UpstreamDataError(f"{url}: field MRData.RaceTable.Races: missing or not a list")
    return table["Races"]


def _value(url: str, field: str, value: Any, optional: bool, convert: Callable[[Any], Any], kind: str) -> Any:
    """`convert(value)`; a missing value (None or '') is None when optional, else an error, and so
    is a value `convert` refuses (the error says the value is not `kind`)."""
    if value is None or value == "":
        if optional:
            return None
        raise UpstreamDataError(f"{url}: field {field}: missing")
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise UpstreamDataError(f"{url}: field {field}: not {kind}: {value!r}") from None


def _int(url: str, field: str, value: Any, optional: bool = False) -> int | None:
    return _value(url, field, value, optional, int, "an integer")


def _float(url: str, field: str, value: Any, optional: bool = False) -> float | None:
    return _value(url, field, value, optional, float, "a number")


def _ms(url: str, field: str, value: Any) -> int | None:
    try:
        return parse_duration_ms(value)
    except (ValueError, AttributeError):
        raise UpstreamDataError(f"{url}: field {field}: not a duration: {value!r}") from None


def _str(url: str, field: str, obj: dict[str, Any], key: str) -> str:
    """The required text `obj[key]`."""
    return _value(url, field, obj.get(key) if isinstance(obj, dict) else None, False, str, "text")


def _date(url: str, field: str, value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise UpstreamDataError(f"{url}: field {field}: not a date: {value!r}") from None


def _frame(rows: list[dict[str, Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(dtypes))
    return df.astype(dtypes)


def _race_entries(pages: Sequence[Page], key: str) -> Iterator[tuple[str, dict[str, Any], str, dict[str, Any]]]:
    """Each entry of each race's `key` list (Results, Laps, PitStops, …) on the pages, as
    `(url, {"season", "round"} of its race, its field path like "PitStops[3]", the entry)`."""
    for url, payload in pages:
        for race in _races(url, payload):
            race_key = {
                "season": _int(url, "Races.season", race.get("season")),
                "round": _int(url, "Races.round", race.get("round")),
            }
            for i, entry in enumerate(race.get(key) or []):
                yield url, race_key, f"{key}[{i}]", entry


def _id(url: str, f: str, entry: dict[str, Any], key: str) -> str | None:
    """The `xId` of the entry's `X` object (Driver → driverId, Constructor → constructorId)."""
    id_key = f"{key[0].lower()}{key[1:]}Id"
    return _str(url, f"{f}.{key}.{id_key}", entry.get(key) or {}, id_key)


# ------------------------------------------------------------------------- schedule (raw_races)

RACE_DTYPES = table("raw_races").dtypes()


def parse_schedule(pages: Sequence[Page]) -> pd.DataFrame:
    """A season's schedule pages → raw_races rows, in round order."""
    rows = []
    for url, payload in pages:
        for i, race in enumerate(_races(url, payload)):
            f = f"Races[{i}]"
            circuit = race.get("Circuit") or {}
            location = circuit.get("Location") or {}
            rows.append(
                {
                    "season": _int(url, f"{f}.season", race.get("season")),
                    "round": _int(url, f"{f}.round", race.get("round")),
                    "race_name": _str(url, f"{f}.raceName", race, "raceName"),
                    "circuit_id": _str(url, f"{f}.Circuit.circuitId", circuit, "circuitId"),
                    "circuit_name": circuit.get("circuitName"),
                    "locality": location.get("locality"),
                    "country": location.get("country"),
                    "lat": _float(url, f"{f}.Circuit.Location.lat", location.get("lat"), optional=True),
                    "lng": _float(url, f"{f}.Circuit.Location.long", location.get("long"), optional=True),
                    "race_date": _date(url, f"{f}.date", race.get("date")),
                    "race_time": race.get("time"),
                    # the schedule lists a Sprint session for sprint weekends: no request spent finding out
                    "has_sprint": isinstance(race.get("Sprint"), dict),
                    "url": race.get("url"),
                }
            )
    df = _frame(rows, RACE_DTYPES)
    return df.sort_values(["season", "round"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------- results / sprint

RESULT_DTYPES = table("raw_results").dtypes()


def _classification(pages: Sequence[Page], key: str) -> pd.DataFrame:
    rows = []
    for url, race_key, f, res in _race_entries(pages, key):
        driver = res.get("Driver") or {}
        fastest = res.get("FastestLap") or {}
        position_text = _str(url, f"{f}.positionText", res, "positionText")
        rows.append(
            {
                **race_key,
                "position_order": 0,  # numbered per race below
                "driver_id": _id(url, f, res, "Driver"),
                "driver_code": driver.get("code"),
                "driver_number": _int(url, f"{f}.number", res.get("number"), optional=True),
                "given_name": driver.get("givenName"),
                "family_name": driver.get("familyName"),
                "constructor_id": _id(url, f, res, "Constructor"),
                "grid": _int(url, f"{f}.grid", res.get("grid"), optional=True),
                # only a numeric positionText is a classified finish (R/D/W/N/E/F are not)
                "position": int(position_text) if position_text.isdigit() else None,
                "position_text": position_text,
                "points": _float(url, f"{f}.points", res.get("points")),
                "laps": _int(url, f"{f}.laps", res.get("laps")),
                "status": _str(url, f"{f}.status", res, "status"),
                "time_ms": _int(url, f"{f}.Time.millis", (res.get("Time") or {}).get("millis"), True),
                "fastest_lap": _int(url, f"{f}.FastestLap.lap", fastest.get("lap"), optional=True),
                "fastest_lap_rank": _int(url, f"{f}.FastestLap.rank", fastest.get("rank"), True),
                "fastest_lap_time_ms": _ms(url, f"{f}.FastestLap.Time.time", (fastest.get("Time") or {}).get("time")),
            }
        )
    return _numbered(_frame(rows, RESULT_DTYPES))


def _numbered(df: pd.DataFrame) -> pd.DataFrame:
    """position_order = 1-based order within each race (season pages hold many races)."""
    df["position_order"] = df.groupby(["season", "round"], sort=False).cumcount().astype("int64") + 1
    return df


def parse_results(pages: Sequence[Page]) -> pd.DataFrame:
    """A race's results pages → raw_results rows in classification order."""
    return _classification(pages, "Results")


def parse_sprint(pages: Sequence[Page]) -> pd.DataFrame:
    """A race's sprint pages → raw_sprint_results rows (same shape as results)."""
    return _classification(pages, "SprintResults")


# ------------------------------------------------------------------------- qualifying

QUALIFYING_DTYPES = table("raw_qualifying").dtypes()


def parse_qualifying(pages: Sequence[Page]) -> pd.DataFrame:
    rows = []
    for url, race_key, f, res in _race_entries(pages, "QualifyingResults"):
        rows.append(
            {
                **race_key,
                "position_order": 0,  # numbered per race below
                "driver_id": _id(url, f, res, "Driver"),
                "driver_number": _int(url, f"{f}.number", res.get("number"), optional=True),
                "constructor_id": _id(url, f, res, "Constructor"),
                "position": _int(url, f"{f}.position", res.get("position"), optional=True),
                "q1_ms": _ms(url, f"{f}.Q1", res.get("Q1")),
                "q2_ms": _ms(url, f"{f}.Q2", res.get("Q2")),
                "q3_ms": _ms(url, f"{f}.Q3", res.get("Q3")),
            }
        )
    return _numbered(_frame(rows, QUALIFYING_DTYPES))


# ------------------------------------------------------------------------- laps

LAP_DTYPES = table("raw_laps").dtypes()


def parse_laps(pages: Sequence[Page]) -> pd.DataFrame:
    """A race's laps pages → one row per driver-lap timing.

    Pages count timings, not laps: one lap's timings can be split over two pages. Rows are merged
    by (driver, lap); a timing that appears twice with different values is an upstream error.
    """
    rows = []
    for url, race_key, lap_f, lap in _race_entries(pages, "Laps"):
        number = _int(url, f"{lap_f}.number", lap.get("number"))
        for j, timing in enumerate(lap.get("Timings") or []):
            f = f"{lap_f}.Timings[{j}]"
            rows.append(
                {
                    **race_key,
                    "driver_id": _str(url, f"{f}.driverId", timing, "driverId"),
                    "lap_number": number,
                    "position": _int(url, f"{f}.position", timing.get("position"), optional=True),
                    "lap_time_ms": _ms(url, f"{f}.time", timing.get("time")),
                    "_url": url,
                }
            )
    df = pd.DataFrame(rows, columns=[*LAP_DTYPES, "_url"])
    dupes = df[df.duplicated(["driver_id", "lap_number"], keep=False)]
    if len(dupes):
        conflicting = dupes.drop(columns="_url").drop_duplicates()
        if conflicting.duplicated(["driver_id", "lap_number"]).any():
            first = dupes.iloc[0]
            raise UpstreamDataError(
                f"{first['_url']}: field Laps.Timings: driver {first['driver_id']} lap "
                f"{first['lap_number']} appears with conflicting values across pages"
            )
    df = df.drop_duplicates(["driver_id", "lap_number"]).drop(columns="_url")
    df = df.sort_values(["lap_number", "position", "driver_id"], kind="stable").reset_index(drop=True)
    return df.astype(LAP_DTYPES)


# ------------------------------------------------------------------------- pit stops

PIT_STOP_DTYPES = table("raw_pit_stops").dtypes()


def parse_pit_stops(pages: Sequence[Page]) -> pd.DataFrame:
    rows = []
    for url, race_key, f, stop in _race_entries(pages, "PitStops"):
        rows.append(
            {
                **race_key,
                "driver_id": _str(url, f"{f}.driverId", stop, "driverId"),
                "stop": _int(url, f"{f}.stop", stop.get("stop")),
                "lap": _int(url, f"{f}.lap", stop.get("lap")),
                "time_of_day": stop.get("time"),
                "duration_ms": _ms(url, f"{f}.duration", stop.get("duration")),
            }
        )
    df = _frame(rows, PIT_STOP_DTYPES)
    return df.sort_values(["lap", "driver_id", "stop"], kind="stable").reset_index(drop=True)


NOT_STARTED_STATUS = {"Did not start", "Withdrawn", "Did not qualify", "Did not prequalify"}
NOT_STARTED_TEXT = {"W", "F"}


def starters(results: pd.DataFrame) -> int:
    """Cars that started (the upper bound of any position): a grid slot (grid not NULL, 0 = pit lane)
    and not withdrawn/DNS/DNQ. Era-independent: 30+ starters in the 1950s are fine."""
    took_part = (
        results["grid"].notna()
        & ~results["position_text"].isin(NOT_STARTED_TEXT)
        & ~results["status"].isin(NOT_STARTED_STATUS)
    )
    return int(took_part.sum())


def lap_coverage(laps: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Per result driver: laps completed (results) vs lap timings held (laps), and whether complete.

    This is how a partial race is detected: in 2009 round 1 each driver has one timing against up
    to 58 completed laps.
    """
    timings = laps.groupby("driver_id").size().rename("timings")
    completed = results.groupby("driver_id")["laps"].max().rename("laps_completed")
    cov = pd.concat([completed, timings], axis=1).fillna(0).astype("int64")
    cov["complete"] = cov["timings"] == cov["laps_completed"]
    return cov.reset_index(names="driver_id")


def races_with_partial_laps(laps: pd.DataFrame, results: pd.DataFrame) -> pd.MultiIndex:
    """(season, round) of the races whose laps `lap_coverage` finds incomplete for some driver, over many
    races in one call (the driver key made unique per race). Columns used: season, round, driver_id;
    results also laps."""
    def per_race(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(driver_id=df["season"].astype(str) + "/" + df["round"].astype(str) + "/" + df["driver_id"])

    cov = lap_coverage(per_race(laps), per_race(results))
    incomplete = cov.loc[~cov["complete"], "driver_id"].str.split("/", n=2, expand=True)
    if incomplete.empty:
        return pd.MultiIndex.from_arrays([[], []], names=["season", "round"])
    return pd.MultiIndex.from_arrays([incomplete[0].astype("int64"), incomplete[1].astype("int64")],
                                     names=["season", "round"])


# How long after the scheduled start a race counts as run (results are published within hours)
RACE_DONE_AFTER = dt.timedelta(hours=4)


def race_started_at(row: pd.Series | dict) -> dt.datetime:
    """A calendar row's race start (UTC; noon when the calendar gives no time)."""
    date = pd.Timestamp(row["race_date"]).date()
    clock = (row.get("race_time") or "12:00:00Z").rstrip("Z")
    return dt.datetime.combine(date, dt.time.fromisoformat(clock), tzinfo=dt.UTC)


def races_run(calendar: pd.DataFrame, now: dt.datetime) -> list[str]:
    """Race keys (`YYYY-RR`) of the calendar rows whose race has run by `now`, in calendar order."""
    rows = calendar.sort_values(["season", "round"])
    return [f"{int(r['season']):04d}-{int(r['round']):02d}" for _, r in rows.iterrows()
            if race_started_at(r) + RACE_DONE_AFTER <= now]


def by_race(frame: pd.DataFrame) -> dict[tuple[int, int], pd.DataFrame]:
    """A table's rows split per race, `(season, round)` → rows (index reset): one grouping for a batch of
    races (a whole dump, a backfill's batch) instead of a filter per race."""
    if frame.empty:
        return {}
    return {(int(s), int(r)): part.reset_index(drop=True)
            for (s, r), part in frame.groupby(["season", "round"], sort=True)}


# ------------------------------------------------------------------------- standings

DRIVER_STANDING_DTYPES = table("raw_driver_standings").dtypes()
CONSTRUCTOR_STANDING_DTYPES = table("raw_constructor_standings").dtypes()


def _standings_entries(pages: Sequence[Page], key: str) -> Iterator[tuple[str, dict[str, Any], str, dict[str, Any]]]:
    """Each entry of each StandingsLists[]'s `key` list (DriverStandings, ConstructorStandings), as
    `(url, {"season", "round"} of its list, its field path, the entry)`: the standings pages' shape
    (MRData.StandingsTable.StandingsLists[].<key>[]) instead of the race pages' RaceTable."""
    for url, payload in pages:
        standings = mrdata(url, payload).get("StandingsTable")
        if not isinstance(standings, dict) or not isinstance(standings.get("StandingsLists"), list):
            raise UpstreamDataError(f"{url}: field MRData.StandingsTable.StandingsLists: missing or not a list")
        for i, listed in enumerate(standings["StandingsLists"]):
            race_key = {"season": _int(url, f"StandingsLists[{i}].season", listed.get("season")),
                        "round": _int(url, f"StandingsLists[{i}].round", listed.get("round"))}
            for j, entry in enumerate(listed.get(key) or []):
                yield url, race_key, f"StandingsLists[{i}].{key}[{j}]", entry


def _standing(url: str, f: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The fields every standing has: position (absent when not eligible), positionText, points, wins."""
    return {
        "position": _int(url, f"{f}.position", entry.get("position"), optional=True),
        "position_text": _str(url, f"{f}.positionText", entry, "positionText"),
        "points": _float(url, f"{f}.points", entry.get("points")),
        "wins": _int(url, f"{f}.wins", entry.get("wins")),
    }


def parse_driver_standings(pages: Sequence[Page]) -> pd.DataFrame:
    """`/{season}/{round}/driverStandings` pages → raw_driver_standings rows (the drivers' championship
    after the round), in standings order (not eligible last, by driver)."""
    rows = []
    for url, race_key, f, entry in _standings_entries(pages, "DriverStandings"):
        teams = entry.get("Constructors") or []
        rows.append({**race_key, "driver_id": _id(url, f, entry, "Driver"), **_standing(url, f, entry),
                     "constructor_ids": ",".join(_str(url, f"{f}.Constructors[{k}].constructorId", team,
                                                      "constructorId") for k, team in enumerate(teams)) or None})
    df = _frame(rows, DRIVER_STANDING_DTYPES)
    return df.sort_values(["season", "round", "position", "driver_id"], kind="stable",
                          na_position="last").reset_index(drop=True)


def parse_constructor_standings(pages: Sequence[Page]) -> pd.DataFrame:
    """`/{season}/{round}/constructorStandings` pages → raw_constructor_standings rows (1958 on)."""
    rows = [{**race_key, "constructor_id": _id(url, f, entry, "Constructor"), **_standing(url, f, entry)}
            for url, race_key, f, entry in _standings_entries(pages, "ConstructorStandings")]
    df = _frame(rows, CONSTRUCTOR_STANDING_DTYPES)
    return df.sort_values(["season", "round", "position", "constructor_id"], kind="stable",
                          na_position="last").reset_index(drop=True)
