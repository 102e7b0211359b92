"""Jolpica's CSV database dump → the raw tables the API path fills. Pure: a zip (path or bytes) in, frames out.

Jolpica publishes its whole database as a zip of CSVs (`formula_one_<model>.csv`; booleans `t`/`f`, NULL
an empty field, durations `HH:MM:SS.fff`, timestamps `YYYY-MM-DD HH:MM:SS+00`). `read_dump` reads the
members the raw tables need as typed frames; `raw_tables` joins them (season → round → session →
session entry → round entry → team driver → driver/team; laps and pit stops by session entry, a pit
stop's lap by `lap_id`) into `raw_races`, `raw_results`, `raw_qualifying`, `raw_sprint_results`,
`raw_laps` and `raw_pit_stops` for every race of the dump, row for row what the parsers of
`f1_assets/transforms/jolpica.py` make of the API pages of the same race, because the API serves
the same database: its serializer's rules are restated here (position text, which results carry a
time, qualifying's Q1–Q3). `coverage` says per race and table what the dump holds (complete, partial,
none). Called by the dump ingestion asset; no Dagster, no storage.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from f1_assets.tables import ConformError, table
from f1_assets.transforms.jolpica import by_race as by_race
from f1_assets.transforms.jolpica import races_with_partial_laps

# member → the columns the raw tables read, with their kind (how the CSV text is typed)
MEMBERS: dict[str, dict[str, str]] = {
    "formula_one_season.csv": {"id": "int", "year": "int"},
    "formula_one_circuit.csv": {"id": "int", "reference": "text", "name": "text", "locality": "text",
                                "country": "text", "latitude": "float", "longitude": "float"},
    "formula_one_round.csv": {"id": "int", "season_id": "int", "circuit_id": "int", "number": "int", "name": "text",
                              "date": "date", "wikipedia": "text"},
    "formula_one_session.csv": {"id": "int", "round_id": "int", "type": "text", "number": "int",
                                "timestamp": "timestamp", "has_time_data": "bool"},
    "formula_one_sessionentry.csv": {"id": "int", "session_id": "int", "round_entry_id": "int", "position": "int",
                                     "is_classified": "bool", "status": "int", "detail": "text", "points": "float",
                                     "grid": "int", "time": "duration", "fastest_lap_rank": "int",
                                     "laps_completed": "int"},
    "formula_one_roundentry.csv": {"id": "int", "round_id": "int", "team_driver_id": "int", "car_number": "int"},
    "formula_one_teamdriver.csv": {"id": "int", "driver_id": "int", "team_id": "int"},
    "formula_one_driver.csv": {"id": "int", "reference": "text", "abbreviation": "text", "forename": "text",
                               "surname": "text"},
    "formula_one_team.csv": {"id": "int", "reference": "text"},
    "formula_one_lap.csv": {"id": "int", "session_entry_id": "int", "number": "int", "position": "int",
                            "time": "duration", "is_entry_fastest_lap": "bool", "is_deleted": "bool"},
    "formula_one_pitstop.csv": {"id": "int", "session_entry_id": "int", "lap_id": "int", "number": "int",
                                "local_timestamp": "text", "duration": "duration"},
    # the standings after each round (Jolpica's managed views, one row per session that awarded points)
    "formula_one_driverchampionship.csv": {"id": "int", "round_id": "int", "driver_id": "int", "position": "int",
                                           "points": "float", "win_count": "int", "is_eligible": "bool",
                                           "adjustment_type": "int"},
    "formula_one_teamchampionship.csv": {"id": "int", "round_id": "int", "team_id": "int", "position": "int",
                                         "points": "float", "win_count": "int", "is_eligible": "bool",
                                         "adjustment_type": "int"},
}
_KINDS = {"int": "an integer", "float": "a number", "bool": "t or f", "text": "text", "date": "a date YYYY-MM-DD",
          "timestamp": "a timestamp", "duration": "a duration HH:MM:SS.fff"}
RACE_TABLES = ("raw_results", "raw_qualifying", "raw_sprint_results", "raw_laps", "raw_pit_stops")
# the standings per round: raw race tables too, but outside RACE_TABLES (the coverage of the five
# tables above, which `f1-assets history` loads) until the history command loads them as well
STANDINGS_TABLES = ("raw_driver_standings", "raw_constructor_standings")
RAW_TABLES = ("raw_races", *RACE_TABLES, *STANDINGS_TABLES)
# sessionentry.status (Jolpica's SessionStatus) → positionText of an unclassified entry; any other is R.
# Jolpica's API never says N or E: it maps Ergast's N (not classified) to R too.
_UNCLASSIFIED_TEXT = {30: "W", 20: "D", 40: "F", 41: "F"}
QUALIFYING_SESSIONS = ("Q1", "Q2", "Q3")  # other types starting with Q (QA, QB, QO) fill Q1, then Q2


class DumpError(ValueError):
    """A dump that cannot be read or mapped: not a zip, a missing member or column, a bad value, a dangling id."""


@dataclass(frozen=True)
class Dump:
    """The members of one dump as typed frames (`frames[member]`, columns as in `MEMBERS`).

    Types: int → Int64, float → float64, bool → boolean, text → object (None for NULL), date and
    timestamp → datetime64 (timestamps UTC), duration → timedelta64."""

    source: str
    frames: dict[str, pd.DataFrame]

    def __getitem__(self, member: str) -> pd.DataFrame:
        return self.frames[member]


def read_dump(source: str | os.PathLike[str] | bytes, name: str | None = None) -> Dump:
    """The dump at a path, or its bytes (`name`: where they came from), as typed frames; DumpError naming the
    file or member at fault."""
    if isinstance(source, bytes | bytearray):
        label = f"dump {name} ({len(source)} bytes)" if name else f"dump ({len(source)} bytes)"
    else:
        label = f"dump {os.fspath(source)}"
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
    except FileNotFoundError:
        raise DumpError(f"{label}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DumpError(f"{label}: not a readable zip archive (corrupt or truncated download?): {exc}") from None
    with archive:
        names: dict[str, list[str]] = {}
        for name in archive.namelist():
            names.setdefault(PurePosixPath(name).name, []).append(name)
        frames = {member: _read_member(archive, names, label, member, columns) for member, columns in MEMBERS.items()}
    return Dump(label, frames)


def _read_member(archive: zipfile.ZipFile, names: dict[str, list[str]], label: str, member: str,
                 columns: dict[str, str]) -> pd.DataFrame:
    where = f"{label}: member {member}"
    found = names.get(member, [])
    if len(found) != 1:
        problem = "is missing" if not found else f"appears {len(found)} times ({found})"
        raise DumpError(f"{where} {problem}; the archive holds {sorted(names)}")
    try:
        with archive.open(found[0]) as fh, warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row wider than the header
            raw = pd.read_csv(fh, dtype=str, keep_default_na=False, na_values=[""], index_col=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.ParserWarning, pd.errors.EmptyDataError) as exc:
        raise DumpError(f"{where}: unreadable (corrupt archive or not CSV): {exc}") from None
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DumpError(f"{where}: lacks columns {missing}")
    frame = pd.DataFrame({c: _typed(raw[c], kind, f"{where}, column {c}") for c, kind in columns.items()})
    dupes = frame["id"][frame["id"].duplicated()]
    if len(dupes):
        raise DumpError(f"{where}: id {dupes.iloc[0]} appears more than once")
    return frame


def _typed(values: pd.Series, kind: str, where: str) -> pd.Series:
    """The CSV text of one column as `kind`; DumpError naming the first value that is not one."""
    present = values.notna()
    if kind == "text":
        return values.astype(object).where(present, None)
    if kind == "bool":
        out = values.map({"t": True, "f": False}).astype("boolean")
    elif kind in ("int", "float"):
        out = pd.to_numeric(values, errors="coerce")
    elif kind == "duration":
        out = pd.to_timedelta(values, errors="coerce")
    elif kind == "timestamp":
        out = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    else:  # date
        out = pd.to_datetime(values, errors="coerce", format="%Y-%m-%d")
    bad = present & out.isna()
    if kind == "int":
        bad |= present & out.notna() & (out % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DumpError(f"{where}: data row {row + 1}: not {_KINDS[kind]}: {values.iloc[row]!r}")
    return out.astype("Int64") if kind == "int" else out


# ------------------------------------------------------------------------- joins

def _lookup(left: pd.DataFrame, key: str, dump: Dump, member: str, columns: dict[str, str],
            where: str) -> pd.DataFrame:
    """`left` with `columns` (renamed) of the `member` row whose id is `left[key]`; a key naming no row
    is a DumpError (a NULL key stays NULL)."""
    _dangling(dump, left, key, member, where)
    picked = dump[member][["id", *columns]].rename(columns={"id": key, **columns})
    return left.merge(picked, on=key, how="left", validate="many_to_one")


def _dangling(dump: Dump, left: pd.DataFrame, key: str, member: str, where: str) -> None:
    """DumpError when a (non-NULL) `left[key]` names no row of `member`."""
    dangling = left[key].notna() & ~left[key].isin(dump[member]["id"])
    if dangling.any():
        raise DumpError(f"{dump.source}: member {where}: {key} {left[key][dangling].iloc[0]} names no row of "
                        f"{member} ({int(dangling.sum())} rows do)")


def _rounds(dump: Dump) -> pd.DataFrame:
    """Every round with its race key (season, round) and calendar fields."""
    rounds = dump["formula_one_round.csv"].rename(columns={"id": "round_id", "number": "round"})
    rounds = _lookup(rounds, "season_id", dump, "formula_one_season.csv", {"year": "season"},
                     "formula_one_round.csv")
    return _lookup(rounds, "circuit_id", dump, "formula_one_circuit.csv",
                   {"reference": "circuit_ref", "name": "circuit_name", "locality": "locality",
                    "country": "country", "latitude": "lat", "longitude": "lng"}, "formula_one_round.csv")


def _entries(dump: Dump, rounds: pd.DataFrame) -> pd.DataFrame:
    """Every session entry with its session (type, order), race key, driver, car number and constructor."""
    entries = dump["formula_one_sessionentry.csv"].rename(columns={"id": "entry_id"})
    entries = _lookup(entries, "session_id", dump, "formula_one_session.csv",
                      {"type": "session_type", "number": "session_number", "timestamp": "session_start"},
                      "formula_one_sessionentry.csv")
    entries = _lookup(entries, "round_entry_id", dump, "formula_one_roundentry.csv",
                      {"round_id": "round_id", "team_driver_id": "team_driver_id", "car_number": "driver_number"},
                      "formula_one_sessionentry.csv")
    entries = _lookup(entries, "team_driver_id", dump, "formula_one_teamdriver.csv",
                      {"driver_id": "driver_key", "team_id": "team_key"}, "formula_one_roundentry.csv")
    entries = _lookup(entries, "driver_key", dump, "formula_one_driver.csv",
                      {"reference": "driver_id", "abbreviation": "driver_code", "forename": "given_name",
                       "surname": "family_name"}, "formula_one_teamdriver.csv")
    entries = _lookup(entries, "team_key", dump, "formula_one_team.csv", {"reference": "constructor_id"},
                      "formula_one_teamdriver.csv")
    _dangling(dump, entries, "round_id", "formula_one_round.csv", "formula_one_roundentry.csv")
    keys = rounds[["round_id", "season", "round"]]
    return entries.merge(keys, on="round_id", how="left", validate="many_to_one")


def _fastest_laps(dump: Dump) -> pd.DataFrame:
    """Per session entry, the lap Jolpica marks as its fastest (`is_entry_fastest_lap`): number and time."""
    laps = dump["formula_one_lap.csv"]
    fastest = laps[laps["is_entry_fastest_lap"].fillna(False)].sort_values("id", kind="stable")
    fastest = fastest.drop_duplicates("session_entry_id")
    return pd.DataFrame({"entry_id": fastest["session_entry_id"], "fastest_lap": fastest["number"],
                         "fastest_time": fastest["time"]})


def _ms(durations: pd.Series) -> pd.Series:
    """Durations → whole ms (Int64, NULL kept), cut as the API prints them (to the millisecond)."""
    return (durations // pd.Timedelta(milliseconds=1)).astype("Int64")


def _api_millis(durations: pd.Series) -> pd.Series:
    """A race time as the API prints `Time.millis`: Jolpica's `int(td.total_seconds() * 1000)`, the float
    product truncated, so 2:19:35.060 is 8375059, one ms under the time itself (3 rows of the shared dump)."""
    return np.trunc(durations.dt.total_seconds() * 1000).astype("Int64")


def _finish(df: pd.DataFrame, name: str, sort: list[str], dump: Dump) -> pd.DataFrame:
    """The rows as table `name`: conformed, sorted, exact duplicates dropped, NULL text None; a primary key
    held by two different rows is a DumpError."""
    decl = table(name)
    try:
        out = decl.conform(df)
    except ConformError as exc:
        raise DumpError(f"{dump.source}: {exc}") from None
    out = out.sort_values(sort, kind="stable").drop_duplicates().reset_index(drop=True)
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    dupes = out[out.duplicated(list(decl.primary_key), keep=False)]
    if len(dupes):
        first = dupes.iloc[0]
        raise DumpError(f"{dump.source}: {name}: {len(dupes)} rows share a primary key with different values, "
                        f"e.g. {', '.join(f'{k}={first[k]}' for k in decl.primary_key)}")
    return out


# ------------------------------------------------------------------------- the raw tables

def raw_tables(dump: Dump) -> dict[str, pd.DataFrame]:
    """The raw tables (`RAW_TABLES`) for every race of the dump, columns and dtypes as declared."""
    rounds = _rounds(dump)
    entries = _entries(dump, rounds)
    fastest = _fastest_laps(dump)
    race_entries = entries[entries["session_type"] == "R"]
    return {
        "raw_races": _races(dump, rounds),
        "raw_results": _classification(dump, race_entries, fastest, "raw_results"),
        "raw_qualifying": _qualifying(dump, entries, fastest),
        "raw_sprint_results": _classification(dump, entries[entries["session_type"] == "SR"], fastest,
                                              "raw_sprint_results"),
        "raw_laps": _laps(dump, race_entries),
        "raw_pit_stops": _pit_stops(dump, race_entries),
        "raw_driver_standings": _standings(dump, rounds, "raw_driver_standings"),
        "raw_constructor_standings": _standings(dump, rounds, "raw_constructor_standings"),
    }


def _races(dump: Dump, rounds: pd.DataFrame) -> pd.DataFrame:
    """raw_races: every round; its time is the race session's start (UTC) where the dump has the time of day."""
    sessions = dump["formula_one_session.csv"]
    _dangling(dump, sessions, "round_id", "formula_one_round.csv", "formula_one_session.csv")
    race = sessions[sessions["type"] == "R"].sort_values(["round_id", "number", "id"]).drop_duplicates("round_id")
    start = (race["timestamp"].dt.strftime("%H:%M:%S") + "Z").where(race["has_time_data"].fillna(False), None)
    df = rounds.assign(
        race_name=rounds["name"],
        circuit_id=rounds["circuit_ref"],
        race_date=rounds["date"].dt.date,
        race_time=rounds["round_id"].map(pd.Series(start.to_numpy(), index=race["round_id"].to_numpy())),
        # the schedule lists a Sprint for a round with a sprint race session
        has_sprint=rounds["round_id"].isin(sessions.loc[sessions["type"] == "SR", "round_id"]),
        url=rounds["wikipedia"],
    )
    return _finish(df, "raw_races", ["season", "round"], dump)


def _classification(dump: Dump, entries: pd.DataFrame, fastest: pd.DataFrame, name: str) -> pd.DataFrame:
    """raw_results / raw_sprint_results: a race's (sprint's) entries in the order of their position."""
    df = entries.merge(fastest, on="entry_id", how="left", validate="one_to_one")
    classified = df["is_classified"].fillna(False).to_numpy(dtype=bool) & df["position"].notna().to_numpy()
    has_fastest = df["fastest_time"].notna() | df["fastest_lap"].notna()
    df = df.assign(
        raw_position=df["position"],
        position_text=np.where(classified, df["position"].astype(str),
                               df["status"].map(_UNCLASSIFIED_TEXT).fillna("R").astype(str)),
        position=df["position"].where(classified),
        laps=df["laps_completed"],
        status=df["detail"],
        # the API prints a race time for classified entries only (Jolpica holds one for some retirements)
        time_ms=_api_millis(df["time"]).where(classified),
        # and the FastestLap object, with its rank, only for an entry that has a fastest lap
        fastest_lap_rank=df["fastest_lap_rank"].where(has_fastest),
        fastest_lap_time_ms=_ms(df["fastest_time"]),
    )
    # the API lists a race's entries by their position (NULL last); the entry id breaks a tie
    df = df.sort_values(["season", "round", "raw_position", "entry_id"], kind="stable", na_position="last")
    df["position_order"] = df.groupby(["season", "round"], sort=False).cumcount() + 1
    return _finish(df, name, ["season", "round", "position_order"], dump)


def _qualifying(dump: Dump, entries: pd.DataFrame, fastest: pd.DataFrame) -> pd.DataFrame:
    """raw_qualifying: one row per round entry with a qualifying session entry (types Q*), as the API
    builds it: the position of its last qualifying session, Q1–Q3 the fastest lap of each session."""
    q = entries[entries["session_type"].str.startswith("Q", na=False)].merge(fastest, on="entry_id", how="left")
    q = q.sort_values(["round_entry_id", "session_start", "session_number", "session_id"], kind="stable")
    q["ms"] = _ms(q["fastest_time"])
    # Q1/Q2/Q3 fill their own column; another type (QA, QB, QO) fills Q1 until one of them had a time, then Q2
    other = ~q["session_type"].isin(QUALIFYING_SESSIONS)
    timed = (other & q["ms"].notna()).astype(int)
    timed_before = timed.groupby(q["round_entry_id"]).cumsum() - timed
    q["slot"] = np.where(other, np.where(timed_before > 0, "Q2", "Q1"), q["session_type"])
    times = (q.drop_duplicates(["round_entry_id", "slot"], keep="last")
             .pivot(index="round_entry_id", columns="slot", values="ms")
             .reindex(columns=list(QUALIFYING_SESSIONS)))
    best = q.groupby("round_entry_id")["position"].min().rename("best_position")
    df = q.drop_duplicates("round_entry_id", keep="last").set_index("round_entry_id")
    df = df.join(best).assign(q1_ms=times["Q1"], q2_ms=times["Q2"], q3_ms=times["Q3"]).reset_index()
    df["q1_ms"], df["q2_ms"], df["q3_ms"] = (df[c].astype("Int64") for c in ("q1_ms", "q2_ms", "q3_ms"))
    # the API sorts a race's rows by position; equal positions stay in the order of their best position
    df = df.sort_values(["season", "round", "position", "best_position", "round_entry_id"], kind="stable")
    df["position_order"] = df.groupby(["season", "round"], sort=False).cumcount() + 1
    return _finish(df, "raw_qualifying", ["season", "round", "position_order"], dump)


def _laps(dump: Dump, race_entries: pd.DataFrame) -> pd.DataFrame:
    """raw_laps: the race session's laps that have a number and are not deleted."""
    laps = dump["formula_one_lap.csv"]
    _dangling(dump, laps, "session_entry_id", "formula_one_sessionentry.csv", "formula_one_lap.csv")
    laps = laps[laps["number"].notna() & ~laps["is_deleted"].fillna(False)]
    df = laps.merge(race_entries[["entry_id", "season", "round", "driver_id"]], left_on="session_entry_id",
                    right_on="entry_id", how="inner", validate="many_to_one")
    df = df.assign(lap_number=df["number"], lap_time_ms=_ms(df["time"]))
    return _finish(df, "raw_laps", ["season", "round", "lap_number", "position", "driver_id"], dump)


def _pit_stops(dump: Dump, race_entries: pd.DataFrame) -> pd.DataFrame:
    """raw_pit_stops: the race session's pit stops; the lap is the number of the stop's `lap_id`."""
    stops = dump["formula_one_pitstop.csv"]
    _dangling(dump, stops, "session_entry_id", "formula_one_sessionentry.csv", "formula_one_pitstop.csv")
    stops = _lookup(stops, "lap_id", dump, "formula_one_lap.csv", {"number": "lap"}, "formula_one_pitstop.csv")
    df = stops.merge(race_entries[["entry_id", "season", "round", "driver_id"]], left_on="session_entry_id",
                     right_on="entry_id", how="inner", validate="many_to_one")
    df = df.assign(stop=df["number"], time_of_day=df["local_timestamp"], duration_ms=_ms(df["duration"]))
    return _finish(df, "raw_pit_stops", ["season", "round", "lap", "driver_id", "stop"], dump)


# Jolpica's ChampionshipAdjustmentType → positionText (its StandingSerializer): disqualified from the
# championship D, excluded E; otherwise "-" when not eligible, else the position. (1 = a points deduction.)
_ADJUSTED_TEXT = {101: "D", 102: "E"}


def _standings(dump: Dump, rounds: pd.DataFrame, name: str) -> pd.DataFrame:
    """raw_driver_standings / raw_constructor_standings: the championship rows of each round, as the API's
    `/{season}/{round}/driverStandings` serves them. The dump also holds the standings after a sprint, with
    no round (the API filters on the round, so they never show); a driver's constructors are the teams of
    their round entries of the season up to the round, in the order of their first round (the API's)."""
    drivers = name == "raw_driver_standings"
    member = "formula_one_driverchampionship.csv" if drivers else "formula_one_teamchampionship.csv"
    champ = dump[member]
    champ = champ[champ["round_id"].notna()]
    _dangling(dump, champ, "round_id", "formula_one_round.csv", member)
    df = champ.merge(rounds[["round_id", "season", "round"]], on="round_id", how="left", validate="many_to_one")
    if drivers:
        df = _lookup(df.rename(columns={"driver_id": "driver_key"}), "driver_key", dump, "formula_one_driver.csv",
                     {"reference": "driver_id"}, member)
        df = df.merge(_constructors_so_far(dump, rounds, df), on=["season", "round", "driver_key"], how="left",
                      validate="many_to_one")
    else:
        df = _lookup(df.rename(columns={"team_id": "team_key"}), "team_key", dump, "formula_one_team.csv",
                     {"reference": "constructor_id"}, member)
    eligible = df["is_eligible"].fillna(False).to_numpy(dtype=bool)
    text = np.where(eligible & df["position"].notna().to_numpy(), df["position"].astype(str), "-")
    adjusted = df["adjustment_type"].map(_ADJUSTED_TEXT)
    df = df.assign(position_text=adjusted.where(adjusted.notna(), text), wins=df["win_count"])
    key = "driver_id" if drivers else "constructor_id"
    return _finish(df, name, ["season", "round", "position", key], dump)


def _constructors_so_far(dump: Dump, rounds: pd.DataFrame, standings: pd.DataFrame) -> pd.DataFrame:
    """(season, round, driver_key) of the standings → constructor_ids: the driver's teams with a round entry
    in the season up to that round, comma-joined by first round (then reference)."""
    entries = _lookup(dump["formula_one_roundentry.csv"][["round_id", "team_driver_id"]], "team_driver_id", dump,
                      "formula_one_teamdriver.csv", {"driver_id": "driver_key", "team_id": "team_key"},
                      "formula_one_roundentry.csv")
    entries = _lookup(entries, "team_key", dump, "formula_one_team.csv", {"reference": "team_ref"},
                      "formula_one_teamdriver.csv")
    entries = entries.merge(rounds[["round_id", "season", "round"]], on="round_id", how="inner")
    first = (entries.groupby(["season", "driver_key", "team_ref"], as_index=False)["round"].min()
             .rename(columns={"round": "first_round"}))
    wanted = standings[["season", "round", "driver_key"]].drop_duplicates()
    teams = wanted.merge(first, on=["season", "driver_key"], how="inner")
    teams = teams[teams["first_round"] <= teams["round"]].sort_values(["first_round", "team_ref"], kind="stable")
    joined = teams.groupby(["season", "round", "driver_key"], as_index=False)["team_ref"].agg(",".join)
    return joined.rename(columns={"team_ref": "constructor_ids"})


# ------------------------------------------------------------------------- coverage

def coverage(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per race (of raw_races, or of any race table) and race table: rows and state.

    `none`: no rows (an era or a weekend the upstream has nothing of: laps before 1996, pit stops before
    2011, no sprint); `partial`: laps whose timings fall short of the laps the results say each driver
    completed (`jolpica.lap_coverage`: fastest-lap-only races); `complete`: rows, and for laps all of them."""
    keys = ["season", "round"]
    races = pd.concat([tables[name][keys] for name in RAW_TABLES]).drop_duplicates()
    parts = []
    for name in RACE_TABLES:
        rows = tables[name].groupby(keys).size().rename("rows").reset_index()
        part = races.merge(rows, on=keys, how="left").assign(table=name)
        part["rows"] = part["rows"].fillna(0).astype("int64")
        parts.append(part)
    cov = pd.concat(parts, ignore_index=True)
    partial = races_with_partial_laps(tables["raw_laps"], tables["raw_results"])
    is_partial = (cov["table"] == "raw_laps") & cov.set_index(keys).index.isin(partial)
    cov["state"] = np.where(cov["rows"] == 0, "none", np.where(is_partial, "partial", "complete"))
    cov = cov.astype({"season": "int64", "round": "int64"})
    return cov[[*keys, "table", "rows", "state"]].sort_values([*keys, "table"]).reset_index(drop=True)


def coverage_by_season(per_race: pd.DataFrame) -> pd.DataFrame:
    """`coverage` summed per season: races, then per race table the races whose rows are complete
    (partial ones after a `+`, e.g. `12+3`); what a user reads to see which eras hold what."""
    races = per_race.groupby("season")["round"].nunique().rename("races")
    counts = per_race[per_race["state"] != "none"].pivot_table(
        index="season", columns=["table", "state"], values="round", aggfunc="count", fill_value=0)
    out = pd.DataFrame(index=races.index)
    out["races"] = races
    for name in RACE_TABLES:
        complete = counts.get((name, "complete"), pd.Series(0, index=counts.index))
        partial = counts.get((name, "partial"), pd.Series(0, index=counts.index))
        cell = complete.reindex(out.index, fill_value=0).astype(int).astype(str)
        extra = partial.reindex(out.index, fill_value=0).astype(int)
        out[name.removeprefix("raw_")] = cell.where(extra == 0, cell + "+" + extra.astype(str))
    return out.reset_index()


def data_date(tables: dict[str, pd.DataFrame]) -> dt.date | None:
    """The date of the newest race the dump has results for: what the database held when it was dumped
    (races after it are the API's to top up). None for a dump without results."""
    results = tables["raw_results"][["season", "round"]].drop_duplicates()
    races = tables["raw_races"].merge(results, on=["season", "round"])
    return None if races.empty else max(pd.Timestamp(d).date() for d in races["race_date"])
