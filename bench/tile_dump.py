"""A Jolpica CSV dump at full-history scale, tiled from the shared (small) dump: for bench/bench_history.py.

`tile_dump(src_zip, dst_zip)` writes a zip in exactly Jolpica's dump format (the source's 18 members, same
names, same columns, same order, same zip entry attributes; booleans `t`/`f`, NULL an empty field) and
returns what it wrote. Pure: reads `src_zip`, writes `dst_zip`, nothing else; deterministic (no randomness,
fixed zip timestamps: the same input gives the same bytes).

How it tiles. The calendar is kept as it is: every season, round, circuit and session of the source (the
shared dump: 1,149 races, 1950-2025). The two races that are complete in the shared dump (`TEMPLATES`:
2023 round 1, Bahrain, 1,055 lap timings, 50 pit stops; 2023 round 10, British, 970 and 24; each with its
20 race entries and Q1/Q2/Q3 entries and their fastest laps) are the templates: a round with an odd
number gets Bahrain's rows, an even one British's. Every round first loses its own race and qualifying
rows (session entries of its `R` session and of every `Q*` session, their laps and pit stops, and the
round entries nothing else refers to; sprint entries stay), then gets the template's rows by era:
- every season: the race session's entries (results);
- from `QUALIFYING_FROM` (1994): also the Q1-Q3 entries and their laps (the fastest laps that give the
  qualifying times);
- from `LAPS_FROM` (1996): also every lap of the race entries (`raw_laps`);
- from `PIT_STOPS_FROM` (2011): also the pit stops.
Re-keying: each copied row gets a fresh id (one counter per member, from the source's highest id + 1, in
calendar order) and a fresh `api_id`; references follow (session entry -> session and round entry; lap
and pit stop -> session entry; pit stop -> lap). A template session maps to the target round's own
session of that type where it has one (its `R` session always: the race's time of day stays the
calendar's), else to a new session row (fresh id, the template's session moved to the round's date). A
template round entry maps to the round's remaining (sprint) entry of the same team driver, else to a new
round entry of the round. Drivers and teams are the templates' (2023) ones.

Result on the shared dump: 1,149 races with results, 601 with qualifying, 568 with complete laps
(575,780 lap timings), 310 with pit stops (11,574); the 5 sprint results of 2023 as in the source.
`python bench/tile_dump.py SRC.zip DST.zip` writes it, checks it with `read_dump` + `raw_tables` and
prints the counts per table.
"""

from __future__ import annotations

import io
import string
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from f1_assets.transforms.dump import RAW_TABLES, coverage, raw_tables, read_dump  # noqa: E402

TEMPLATES = ((2023, 1), (2023, 10))  # the races complete in the shared dump: odd rounds, even rounds
QUALIFYING_FROM = 1994
LAPS_FROM = 1996
PIT_STOPS_FROM = 2011
QUALIFYING_TYPES = ("Q1", "Q2", "Q3")
_CHANGED = ("formula_one_session.csv", "formula_one_sessionentry.csv", "formula_one_roundentry.csv",
            "formula_one_lap.csv", "formula_one_pitstop.csv")
_ALPHABET = string.digits + string.ascii_letters


def _api_id(prefix: str, number: int) -> str:
    """A fresh `api_id` in Jolpica's shape (`<model>_` + 8 letters/digits): the id in base 62, 'T'-led."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _ALPHABET[rest] + digits
    return f"{prefix}_T{digits.rjust(7, '0')}"


def _read(archive: zipfile.ZipFile, name: str) -> pd.DataFrame:
    with archive.open(name) as fh:
        return pd.read_csv(fh, dtype=str, keep_default_na=False, index_col=False)


def _ids(frame: pd.DataFrame, column: str = "id") -> pd.Series:
    return pd.to_numeric(frame[column].where(frame[column] != "", None)).astype("Int64")


class _Counter:
    """Fresh ids of one member: from its highest id + 1, in the order asked."""

    def __init__(self, frame: pd.DataFrame):
        self.next = int(_ids(frame).max()) + 1

    def take(self, n: int) -> list[int]:
        out = list(range(self.next, self.next + n))
        self.next += n
        return out


def tile_dump(src_zip: Path, dst_zip: Path, *, templates: tuple[tuple[int, int], ...] = TEMPLATES,
              qualifying_from: int = QUALIFYING_FROM, laps_from: int = LAPS_FROM,
              pit_stops_from: int = PIT_STOPS_FROM, verify: bool = True) -> dict:
    """Write the tiled dump (module docstring: how) to `dst_zip`; return its member row counts, byte size,
    seconds taken and — with `verify` — the row counts of the six raw tables `raw_tables` makes of it
    (a DumpError if it does not read as Jolpica's dump)."""
    t0 = time.perf_counter()
    with zipfile.ZipFile(src_zip) as archive:
        infos = archive.infolist()
        by_name = {Path(i.filename).name: i.filename for i in infos}
        frames = {m: _read(archive, by_name[m]) for m in (*_CHANGED, "formula_one_round.csv",
                                                              "formula_one_season.csv")}
        raw_members = {i.filename: archive.read(i.filename) for i in infos if Path(i.filename).name not in _CHANGED}
    session, entry, rentry, lap, stop = (frames[m] for m in _CHANGED)
    rounds = frames["formula_one_round.csv"].merge(
        frames["formula_one_season.csv"][["id", "year"]].rename(columns={"id": "season_id"}), on="season_id")
    rounds = rounds.assign(year=rounds["year"].astype(int), number=rounds["number"].astype(int))
    rounds = rounds.sort_values(["year", "number"], kind="stable")

    session_type = dict(zip(session["id"], session["type"], strict=True))
    entry_type = entry["session_id"].map(session_type)
    replaced = entry_type.eq("R") | entry_type.str.startswith("Q", na=False)

    # the templates' rows: sessions R/Q1-Q3, their entries, round entries, laps, pit stops
    tpl = {}
    for season, rnd in templates:
        round_id = rounds.loc[(rounds["year"] == season) & (rounds["number"] == rnd), "id"]
        if len(round_id) != 1:
            raise ValueError(f"{src_zip}: template race {season}-{rnd:02d} is not in the dump")
        rid = round_id.iloc[0]
        round_date = pd.Timestamp(rounds.loc[round_id.index[0], "date"])
        ses = session[(session["round_id"] == rid) & session["type"].isin(("R", *QUALIFYING_TYPES))]
        ses = ses.assign(_n=_ids(ses, "number"), _id=_ids(ses)).sort_values(["_n", "_id"]).drop_duplicates("type")
        ent = entry[entry["session_id"].isin(ses["id"])]
        laps = lap[lap["session_entry_id"].isin(ent["id"])]
        race_entries = ent[ent["session_id"] == ses.loc[ses["type"] == "R", "id"].iloc[0]]
        tpl[(season, rnd)] = {
            "sessions": ses.drop(columns=["_n", "_id"]),
            "offset": {t: pd.Timestamp(ts.removesuffix("+00")) - round_date
                       for t, ts in zip(ses["type"], ses["timestamp"], strict=True)},
            "entries": ent, "race_entries": race_entries,
            "round_entries": rentry[rentry["id"].isin(ent["round_entry_id"])],
            "race_laps": laps[laps["session_entry_id"].isin(race_entries["id"])],
            "quali_laps": laps[~laps["session_entry_id"].isin(race_entries["id"])],
            "pit_stops": stop[stop["session_entry_id"].isin(race_entries["id"])],
        }
        if len(tpl[(season, rnd)]["race_laps"]) == 0:
            raise ValueError(f"{src_zip}: template race {season}-{rnd:02d} has no laps")

    # every round loses its race and qualifying rows (sprint entries and their round entries stay)
    kept_entries = entry[~replaced]
    dropped_entries = set(entry.loc[replaced, "id"])
    kept_laps = lap[~lap["session_entry_id"].isin(dropped_entries)]
    kept_stops = stop[~stop["session_entry_id"].isin(dropped_entries)]
    kept_rentries = rentry[rentry["id"].isin(kept_entries["round_entry_id"])]

    counters = {m: _Counter(frames[m]) for m in _CHANGED}
    new: dict[str, list[pd.DataFrame]] = {m: [] for m in _CHANGED}
    sessions_of_round = {rid: grp.assign(_n=_ids(grp, "number"), _id=_ids(grp)).sort_values(["_n", "_id"])
                         for rid, grp in session.groupby("round_id")}
    rentries_of_round = {rid: dict(zip(grp["team_driver_id"], grp["id"], strict=True))
                         for rid, grp in kept_rentries.groupby("round_id")}

    for rid, year, number, date in rounds[["id", "year", "number", "date"]].itertuples(index=False):
        t = tpl[templates[(number - 1) % len(templates)]]  # odd rounds the first template, even the second
        types = ["R", *(QUALIFYING_TYPES if year >= qualifying_from else ())]
        # sessions: the round's own of each type, else a new one (the template's, moved to the round's date)
        own = sessions_of_round.get(rid, session.iloc[0:0].assign(_n=[], _id=[])).drop_duplicates("type")
        own = dict(zip(own["type"], own["id"], strict=True))
        session_map = {}
        for _, s in t["sessions"][t["sessions"]["type"].isin(types)].iterrows():
            if s["type"] in own:
                session_map[s["id"]] = own[s["type"]]
                continue
            (sid,) = counters["formula_one_session.csv"].take(1)
            ts = pd.Timestamp(date) + t["offset"][s["type"]]
            new["formula_one_session.csv"].append(s.to_frame().T.assign(
                id=str(sid), api_id=_api_id("session", sid), round_id=rid,
                timestamp=ts.strftime("%Y-%m-%d %H:%M:%S") + "+00"))
            session_map[s["id"]] = str(sid)
        ent = t["entries"][t["entries"]["session_id"].isin(session_map)]
        # round entries: the round's remaining one of the same team driver, else a new one
        have = rentries_of_round.get(rid, {})
        tre = t["round_entries"][t["round_entries"]["id"].isin(ent["round_entry_id"])]
        fresh = tre[~tre["team_driver_id"].isin(have)]
        fresh_ids = [str(i) for i in counters["formula_one_roundentry.csv"].take(len(fresh))]
        rentry_map = {old: have[td] for old, td in zip(tre["id"], tre["team_driver_id"], strict=True) if td in have}
        rentry_map.update(zip(fresh["id"], fresh_ids, strict=True))
        new["formula_one_roundentry.csv"].append(fresh.assign(
            id=fresh_ids, api_id=[_api_id("roundentry", int(i)) for i in fresh_ids], round_id=rid))
        # session entries, laps, pit stops: fresh ids, references mapped
        entry_ids = [str(i) for i in counters["formula_one_sessionentry.csv"].take(len(ent))]
        entry_map = dict(zip(ent["id"], entry_ids, strict=True))
        new["formula_one_sessionentry.csv"].append(ent.assign(
            id=entry_ids, api_id=[_api_id("sessionentry", int(i)) for i in entry_ids],
            session_id=ent["session_id"].map(session_map), round_entry_id=ent["round_entry_id"].map(rentry_map)))
        laps = pd.concat([t["quali_laps"] if year >= qualifying_from else t["quali_laps"].iloc[0:0],
                          t["race_laps"] if year >= laps_from else t["race_laps"].iloc[0:0]])
        laps = laps[laps["session_entry_id"].isin(entry_map)]
        lap_ids = [str(i) for i in counters["formula_one_lap.csv"].take(len(laps))]
        lap_map = dict(zip(laps["id"], lap_ids, strict=True))
        new["formula_one_lap.csv"].append(laps.assign(
            id=lap_ids, api_id=[_api_id("lap", int(i)) for i in lap_ids],
            session_entry_id=laps["session_entry_id"].map(entry_map)))
        if year >= pit_stops_from and year >= laps_from:
            ps = t["pit_stops"]
            stop_ids = [str(i) for i in counters["formula_one_pitstop.csv"].take(len(ps))]
            new["formula_one_pitstop.csv"].append(ps.assign(
                id=stop_ids, api_id=[_api_id("pitstop", int(i)) for i in stop_ids],
                session_entry_id=ps["session_entry_id"].map(entry_map),
                lap_id=ps["lap_id"].map({**lap_map, "": ""})))

    out = {
        "formula_one_session.csv": pd.concat([session, *new["formula_one_session.csv"]], ignore_index=True),
        "formula_one_sessionentry.csv": pd.concat([kept_entries, *new["formula_one_sessionentry.csv"]],
                                                  ignore_index=True),
        "formula_one_roundentry.csv": pd.concat([kept_rentries, *new["formula_one_roundentry.csv"]],
                                                ignore_index=True),
        "formula_one_lap.csv": pd.concat([kept_laps, *new["formula_one_lap.csv"]], ignore_index=True),
        "formula_one_pitstop.csv": pd.concat([kept_stops, *new["formula_one_pitstop.csv"]], ignore_index=True),
    }
    for member, frame in out.items():
        if frame.isna().any().any():
            raise ValueError(f"tile_dump: {member}: a reference was not mapped")
        for column in ("id", "api_id"):
            if frame[column].duplicated().any():
                raise ValueError(f"tile_dump: {member}: {column} {frame[column][frame[column].duplicated()].iloc[0]} "
                                 "twice")

    dst_zip = Path(dst_zip)
    dst_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dst_zip, "w") as dst:
        for info in infos:
            member = Path(info.filename).name
            if member in out:
                buffer = io.StringIO()
                out[member].to_csv(buffer, index=False, lineterminator="\n")
                data = buffer.getvalue().encode()
            else:
                data = raw_members[info.filename]
            entry_info = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry_info.compress_type = zipfile.ZIP_DEFLATED
            entry_info.external_attr = info.external_attr
            entry_info.create_system = info.create_system
            dst.writestr(entry_info, data)
    result: dict = {
        "dst": str(dst_zip), "bytes": dst_zip.stat().st_size, "races": len(rounds),
        "members": {m: len(f) for m, f in out.items()}, "seconds_to_write": round(time.perf_counter() - t0, 2),
    }
    if verify:
        t1 = time.perf_counter()
        tables = raw_tables(read_dump(dst_zip))
        cov = coverage(tables)
        result["tables"] = {name: len(tables[name]) for name in RAW_TABLES}
        result["races_with"] = {f"{name} {state}": int(n) for (name, state), n in
                                cov[cov["state"] != "none"].groupby(["table", "state"]).size().items()}
        result["seconds_to_verify"] = round(time.perf_counter() - t1, 2)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python bench/tile_dump.py SRC.zip DST.zip", file=sys.stderr)
        return 2
    result = tile_dump(Path(argv[0]), Path(argv[1]))
    print(f"{result['dst']}: {result['bytes']:,} bytes, {result['races']} races, written in "
          f"{result['seconds_to_write']} s, read back with read_dump + raw_tables in {result['seconds_to_verify']} s")
    for name, rows in result["members"].items():
        print(f"  member {name}: {rows:,} rows")
    for name, rows in result["tables"].items():
        print(f"  table {name}: {rows:,} rows")
    for what, n in result["races_with"].items():
        print(f"  races with {what}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
