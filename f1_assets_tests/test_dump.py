"""Jolpica's CSV dump → raw tables (f1_assets/transforms/dump.py), on the real dump in the recorded data.

The dump's rows for a race equal what the API parsers make of the recorded pages of the same race;
every table's row count equals a count of the CSVs made with the `csv` module alone; a broken dump is a
DumpError naming what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from f1_assets.tables import table
from f1_assets.transforms import jolpica
from f1_assets.transforms.dump import RAW_TABLES, DumpError, coverage, raw_tables, read_dump

pytestmark = pytest.mark.shared_data

PARSERS = {
    "results": ("raw_results", jolpica.parse_results),
    "qualifying": ("raw_qualifying", jolpica.parse_qualifying),
    "sprint": ("raw_sprint_results", jolpica.parse_sprint),
    "laps": ("raw_laps", jolpica.parse_laps),
    "pitstops": ("raw_pit_stops", jolpica.parse_pit_stops),
}


@pytest.fixture(scope="module")
def dump_path(shared_data: Path) -> Path:
    return shared_data / "jolpica-dump" / "jolpica-f1-csv.zip"


@pytest.fixture(scope="module")
def tables(dump_path: Path) -> dict[str, pd.DataFrame]:
    return raw_tables(read_dump(dump_path))


def replay_pages(shared_data: Path, request: str) -> list[jolpica.Page]:
    """Every recorded page of `GET /ergast/f1/{request}.json` as (file name, payload)."""
    files = sorted((shared_data / "jolpica-replay").glob(f"ergast@f1@{request.replace('/', '@')}.json@*"))
    return [(f.name, json.loads(f.read_text())) for f in files]


def by_key(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df.sort_values(list(table(name).primary_key)).reset_index(drop=True)


# ------------------------------------------------------------------------- dump rows = API rows

@pytest.mark.parametrize("season,rnd,endpoint,rows", [
    (2023, 1, "results", 20), (2023, 1, "qualifying", 20), (2023, 1, "sprint", 0), (2023, 1, "laps", 1055),
    (2023, 1, "pitstops", 50),
    (2023, 10, "results", 20), (2023, 10, "qualifying", 20), (2023, 10, "sprint", 0), (2023, 10, "laps", 970),
    (2023, 10, "pitstops", 24),
    # the partial race: the upstream holds each driver's fastest lap only, and no pit stops
    (2009, 1, "results", 20), (2009, 1, "qualifying", 20), (2009, 1, "laps", 19), (2009, 1, "pitstops", 0),
])
def test_dump_rows_equal_api_rows(tables, shared_data, season, rnd, endpoint, rows):
    name, parse = PARSERS[endpoint]
    api = parse(replay_pages(shared_data, f"{season}/{rnd}/{endpoint}"))  # no pages (no sprint): no rows
    dump = tables[name][(tables[name]["season"] == season) & (tables[name]["round"] == rnd)]
    assert len(api) == rows
    pd.testing.assert_frame_equal(by_key(dump, name), by_key(api, name))


def test_dump_calendar_equals_api_schedule(tables, shared_data):
    api = jolpica.parse_schedule(replay_pages(shared_data, "2023"))
    dump = tables["raw_races"][tables["raw_races"]["season"] == 2023]
    assert len(api) == 22
    pd.testing.assert_frame_equal(by_key(dump, "raw_races"), by_key(api, "raw_races"))


def test_frames_have_the_declared_columns_and_dtypes(tables):
    assert set(tables) == set(RAW_TABLES)
    for name, df in tables.items():
        assert df.dtypes.astype(str).to_dict() == table(name).dtypes(), name
        assert not df.duplicated(list(table(name).primary_key)).any(), name


def test_coverage_says_what_the_dump_holds(tables):
    cov = coverage(tables).set_index(["season", "round", "table"])
    assert len(cov) == len(tables["raw_races"]) * 5
    assert set(cov["state"]) <= {"complete", "partial", "none"}
    assert cov.loc[(2023, 1, "raw_laps")].tolist() == [1055, "complete"]
    assert cov.loc[(2023, 1, "raw_pit_stops")].tolist() == [50, "complete"]
    assert cov.loc[(2023, 1, "raw_sprint_results")].tolist() == [0, "none"]
    assert cov.loc[(2009, 1, "raw_laps")].tolist() == [19, "partial"]  # fastest laps only
    assert cov.loc[(2009, 1, "raw_pit_stops")].tolist() == [0, "none"]
    assert cov.loc[(1958, 1, "raw_laps")].tolist() == [0, "none"]
    assert cov.loc[(1958, 1, "raw_results")].tolist() == [10, "complete"]
    assert cov.loc[(2023, 18, "raw_results")].tolist() == [0, "none"]  # its entries were removed from the dump


# ------------------------------------------------------------------------- counts against the CSVs

def csv_rows(archive: zipfile.ZipFile, model: str) -> list[dict[str, str]]:
    with archive.open(f"formula_one_{model}.csv") as fh:
        return list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))


def independent_counts(path: Path) -> Counter:
    """(table, season) → rows, counted from the CSVs with the `csv` module only."""
    with zipfile.ZipFile(path) as archive:
        m = {model: csv_rows(archive, model) for model in
             ("season", "round", "session", "sessionentry", "roundentry", "lap", "pitstop", "driverchampionship",
              "teamchampionship")}
    year = {s["id"]: int(s["year"]) for s in m["season"]}
    round_year = {r["id"]: year[r["season_id"]] for r in m["round"]}
    session = {s["id"]: (s["type"], round_year[s["round_id"]]) for s in m["session"]}
    entry = {e["id"]: session[e["session_id"]] for e in m["sessionentry"]}
    counts = Counter(("raw_races", round_year[r["id"]]) for r in m["round"])
    for e in m["sessionentry"]:
        kind, season = session[e["session_id"]]
        if kind in ("R", "SR"):
            counts["raw_results" if kind == "R" else "raw_sprint_results", season] += 1
    counted = {(e["round_entry_id"], session[e["session_id"]][1]) for e in m["sessionentry"]
               if session[e["session_id"]][0].startswith("Q")}
    counts.update(("raw_qualifying", season) for _, season in counted)
    counts.update(("raw_laps", entry[lap["session_entry_id"]][1]) for lap in m["lap"]
                  if entry[lap["session_entry_id"]][0] == "R" and lap["number"] and lap["is_deleted"] != "t")
    counts.update(("raw_pit_stops", entry[s["session_entry_id"]][1]) for s in m["pitstop"]
                  if entry[s["session_entry_id"]][0] == "R")
    # standings after each round (the rows after a sprint carry no round: the API never serves them)
    for model, name in (("driverchampionship", "raw_driver_standings"),
                        ("teamchampionship", "raw_constructor_standings")):
        counts.update((name, round_year[c["round_id"]]) for c in m[model] if c["round_id"])
    return counts


def test_every_season_and_table_count_equals_the_csvs(tables, dump_path):
    expected = independent_counts(dump_path)
    got = Counter({(name, int(season)): int(n) for name, df in tables.items()
                   for season, n in df.groupby("season").size().items()})
    assert got == expected
    seasons = {season for name, season in expected if name == "raw_races"}
    assert seasons == set(range(1950, 2026))  # every season's calendar, results or not
    assert sum(n for (name, _), n in expected.items() if name == "raw_races") == 1149


# ------------------------------------------------------------------------- broken dumps

def rezip(path: Path, drop: str | None = None, replace: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != drop:
                dst.writestr(info.filename, (replace or {}).get(info.filename, src.read(info.filename)))
    return out.getvalue()


def test_truncated_zip_is_a_dump_error(dump_path):
    data = dump_path.read_bytes()
    with pytest.raises(DumpError, match=r"not a readable zip archive \(corrupt or truncated"):
        read_dump(data[: len(data) // 2])


def test_corrupt_member_is_a_dump_error_naming_it(dump_path):
    data = bytearray(rezip(dump_path))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("formula_one_lap.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 100, start + 110):
        data[i] ^= 0xFF
    with pytest.raises(DumpError, match=r"member formula_one_lap\.csv: unreadable"):
        read_dump(bytes(data))


def test_missing_member_is_a_dump_error_naming_it(dump_path):
    with pytest.raises(DumpError, match=r"member formula_one_lap\.csv is missing"):
        read_dump(rezip(dump_path, drop="formula_one_lap.csv"))


def test_bad_value_and_dangling_id_are_dump_errors_naming_them(dump_path):
    with zipfile.ZipFile(dump_path) as archive:
        laps = archive.read("formula_one_lap.csv").decode()
        stops = archive.read("formula_one_pitstop.csv").decode()
    bad_time = laps.replace(",00:01:31.531\n", ",1:31;5\n", 1)
    with pytest.raises(DumpError, match=r"formula_one_lap\.csv, column time: data row 1: not a duration.*'1:31;5'"):
        read_dump(rezip(dump_path, replace={"formula_one_lap.csv": bad_time.encode()}))
    wide_row = laps.replace(",00:01:31.531\n", ",1:31,5\n", 1)  # an unquoted comma: one field too many
    with pytest.raises(DumpError, match=r"member formula_one_lap\.csv: unreadable"):
        read_dump(rezip(dump_path, replace={"formula_one_lap.csv": wide_row.encode()}))
    dangling = stops.replace(",556041,", ",999999999,", 1)
    with pytest.raises(DumpError, match=r"lap_id 999999999 names no row of formula_one_lap\.csv"):
        raw_tables(read_dump(rezip(dump_path, replace={"formula_one_pitstop.csv": dangling.encode()})))


def test_dump_coverage_command_prints_each_season(dump_path, capsys):
    from f1_assets import cli

    assert cli.main(["dump-coverage", str(dump_path)]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    # 2023: 22 races, 20 with results, 5 sprints, laps complete for 2 and fastest-lap-only for 18, 2 with pit stops
    assert lines["2023"] == ["2023", "22", "20", "20", "5", "2+18", "2"]
    assert lines["1950"][1:3] == ["7", "0"]  # races in the calendar, no results in this small dump
    assert cli.main(["dump-coverage", str(dump_path.parent / "missing.zip")]) == 2
    assert "missing.zip: no such file" in capsys.readouterr().err


def test_dump_coverage_into_a_closed_pipe_is_quiet(dump_path):
    """`f1-assets dump-coverage DUMP | head -0`: the reader is gone; no BrokenPipeError, exit 0."""
    import subprocess
    import sys

    cli = Path(sys.executable).parent / "f1-assets"
    proc = subprocess.Popen([str(cli), "dump-coverage", str(dump_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the table is written (reading the dump takes ~1 s)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=60) == 0 and "Error" not in err, err
