"""`f1-assets history` (issue 11): all of F1 history from Jolpica's CSV dump, on real servers and both engines.

`history --dump … --no-api` run in this process (`f1_assets.cli.main`) over a dump cut from the shared one
(a few seasons, every member kept: the whole dump takes minutes) loads, per (table, season), the rows a
count of the CSVs with the `csv` module finds; registers every race of the dump that has run; a rerun makes
no race run and no request. The dump's rows equal the API's in the warehouse; rows loaded from the API are
not replaced by the dump's; a broken dump (corrupt, missing, a member missing, a size that differs from
the overview's) fails naming what is wrong and writes nothing; a dump URL is downloaded and checked
against the overview on its host. `Warehouse.replace_partitions` of many partitions is all or nothing.
Run by pytest (the suite); `test_dump.py` covers the pure transform.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import shutil
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from f1_assets import cli
from f1_assets.storage.warehouse import ShrinkRefused, warehouse_from_url
from f1_assets.tables import table
from f1_assets.transforms.dump import RACE_TABLES, RAW_TABLES
from f1_assets_tests.conftest import REPO, fresh_pg_schema
from f1_assets_tests.helpers import materialize_calendar, materialize_race, resources
from f1_assets_tests.jolpica_server import JolpicaReplayServer
from f1_assets_tests.test_dump import csv_rows, independent_counts

pytestmark = pytest.mark.shared_data

# the seasons of the cut dump: one without laps, one with fastest laps only, the dump's last season (its
# data date 2023-11-19: 2023-22 is after it), and one whose calendar only the dump has (no results)
SEASONS = (1958, 2009, 2023, 2024)
DATA_DATE = "2023-11-19"
API_RACES = ("2023-01", "2023-10")  # the races the recorded API pages hold in full


# ------------------------------------------------------------------------- a smaller dump

def _csv(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], rows[1:]


def cut_dump(source: Path, seasons: tuple[int, ...], dest: Path) -> Path:
    """The dump at `source` with only the rows of `seasons`: the same members in the same order, each
    member's rows whose foreign keys (season, round, session, round entry, session entry, lap) name a kept
    row (an empty key stays); the members no key reaches (drivers, teams, circuits) whole."""
    with zipfile.ZipFile(source) as src:
        members = [(info.filename, src.read(info.filename).decode("utf-8")) for info in src.infolist()]
    text = dict(members)
    kept: dict[str, set[str]] = {}
    # the key chain: each member filtered by the keys kept so far, then its ids are kept for its children
    chain = [("formula_one_season.csv", "season_id"), ("formula_one_round.csv", "round_id"),
             ("formula_one_session.csv", "session_id"), ("formula_one_roundentry.csv", "round_entry_id"),
             ("formula_one_sessionentry.csv", "session_entry_id"), ("formula_one_lap.csv", "lap_id")]
    wanted = {str(s) for s in seasons}

    def keep(header: list[str], rows: list[list[str]]) -> list[list[str]]:
        checks = [(i, kept[c]) for i, c in enumerate(header) if c in kept]
        return [r for r in rows if all(r[i] == "" or r[i] in ids for i, ids in checks)]

    out: dict[str, list[list[str]]] = {}
    for member, key in chain:
        header, rows = _csv(text[member])
        rows = keep(header, rows)
        if member == "formula_one_season.csv":
            rows = [r for r in rows if r[header.index("year")] in wanted]
        out[member] = [header, *rows]
        kept[key] = {r[header.index("id")] for r in rows}
    for member, body in members:
        if member not in out:
            header, rows = _csv(body)
            out[member] = [header, *keep(header, rows)]
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as dst:
        for member, _ in members:
            buffer = io.StringIO(newline="")
            csv.writer(buffer, lineterminator="\n").writerows(out[member])
            dst.writestr(member, buffer.getvalue())
    return dest


@pytest.fixture(scope="module")
def small_dump(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = cut_dump(shared_data / "jolpica-dump" / "jolpica-f1-csv.zip", SEASONS,
                    tmp_path_factory.mktemp("dump") / "jolpica-f1-csv.zip")
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(shared_data / "jolpica-dump" / "jolpica-f1-csv.zip") as full:
        assert archive.namelist() == full.namelist()
    return path


@pytest.fixture(scope="module")
def expected_counts(small_dump: Path) -> Counter:
    """(table, season) → rows the warehouse holds after `history --no-api`: every season up to the data date,
    and every calendar the dump holds (offline, 2023's and 2024's from the dump; 2023-22, after the data
    date, has no rows in the dump)."""
    counts = independent_counts(small_dump)
    seasons = {season for _, season in counts}
    assert seasons == set(SEASONS), seasons  # the cut kept exactly these seasons
    counts -= standings_after_the_data_date(small_dump)  # 2023-22: the API's to load, not the dump's
    return Counter({key: n for key, n in counts.items() if key[1] <= 2023 or key[0] == "raw_races"})


def standings_after_the_data_date(path: Path) -> Counter:
    """(table, season) → the dump's standings rows of rounds dated after its data date (the newest round with
    race results), counted with the `csv` module: the dump holds them, but the race is the API's to load."""
    with zipfile.ZipFile(path) as archive:
        m = {model: csv_rows(archive, model) for model in
             ("season", "round", "session", "sessionentry", "driverchampionship", "teamchampionship")}
    year = {s["id"]: int(s["year"]) for s in m["season"]}
    date = {r["id"]: dt.date.fromisoformat(r["date"]) for r in m["round"]}
    raced = {s["id"]: s["round_id"] for s in m["session"] if s["type"] == "R"}
    data_date = max(date[raced[e["session_id"]]] for e in m["sessionentry"] if e["session_id"] in raced)
    season_of = {r["id"]: year[r["season_id"]] for r in m["round"]}
    out: Counter = Counter()
    for model, name in (("driverchampionship", "raw_driver_standings"),
                        ("teamchampionship", "raw_constructor_standings")):
        out.update((name, season_of[c["round_id"]]) for c in m[model]
                   if c["round_id"] and date[c["round_id"]] > data_date)
    return out


def dump_rounds(path: Path) -> list[tuple[int, int, dt.date]]:
    """(season, round, date) of every round of the dump, from the CSVs."""
    with zipfile.ZipFile(path) as archive:
        season_header, seasons = _csv(archive.read("formula_one_season.csv").decode())
        header, rounds = _csv(archive.read("formula_one_round.csv").decode())
    year = {s[season_header.index("id")]: int(s[season_header.index("year")]) for s in seasons}
    return [(year[r[header.index("season_id")]], int(r[header.index("number")]),
             dt.date.fromisoformat(r[header.index("date")])) for r in rounds]


# ------------------------------------------------------------------------- the CLI in this process

def cli_env(monkeypatch: pytest.MonkeyPatch, root: Path, warehouse_url: str, jolpica_url: str) -> dg.DagsterInstance:
    """The environment of `f1-assets` (a DAGSTER_HOME with the repository's dagster.yaml, F1_HOME, the
    warehouse, a blob directory, the Jolpica URL) and the instance it records its runs in."""
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for name, value in {"DAGSTER_HOME": str(home), "F1_HOME": str(root / "f1_home"),
                        "F1_WAREHOUSE_URL": warehouse_url, "F1_BLOB_URL": str(root / "blobs"),
                        "F1_JOLPICA_URL": jolpica_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("F1_JOLPICA_DUMP_URL", raising=False)
    return dg.DagsterInstance.get()


def jobs(instance: dg.DagsterInstance) -> Counter:
    return Counter(run.job_name for run in instance.get_runs())


def counts_by_season(warehouse_url: str) -> Counter:
    wh = warehouse_from_url(warehouse_url)
    out: Counter = Counter()
    for name in RAW_TABLES:
        for _, row in wh.query(f"SELECT season, COUNT(*) AS n FROM {name} GROUP BY season").iterrows():
            out[name, int(row["season"])] = int(row["n"])
    return out


def latest(instance: dg.DagsterInstance, asset: str, partition: str) -> dg.EventLogRecord:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    assert records, f"no materialization of {asset} {partition}"
    return records[0]


def data_version(record: dg.EventLogRecord) -> str:
    return (record.asset_materialization.tags or {}).get("dagster/data_version", "")


def race_rows(warehouse_url: str, name: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """The rows of table `name` for the races `keys`, sorted by its primary key."""
    parts = [{"season": int(k[:4]), "round": int(k[5:])} for k in keys]
    df = warehouse_from_url(warehouse_url).read_partitions(name, parts)
    return df.sort_values(list(table(name).primary_key)).reset_index(drop=True)


# ------------------------------------------------------------------------- 1, 2: load, then a rerun

def test_history_loads_every_season_of_the_dump_and_a_rerun_loads_nothing(
        warehouse_url, small_dump, expected_counts, replay_datasets, tmp_path, monkeypatch, capsys):
    with JolpicaReplayServer(replay_datasets) as server:
        instance = cli_env(monkeypatch, tmp_path, warehouse_url, server.base_url)
        assert cli.main(["history", "--dump", str(small_dump), "--no-api"]) == 0, capsys.readouterr().err[-3000:]
        first = capsys.readouterr().err
        assert counts_by_season(warehouse_url) == expected_counts
        # every race of the dump that has run is a `races` partition; the ones after the data date hold no rows
        ran = {f"{s:04d}-{r:02d}" for s, r, day in dump_rounds(small_dump) if day < dt.date.today()}
        assert set(instance.get_dynamic_partitions("races")) == ran
        assert counts_by_season(warehouse_url)["raw_races", 2024] == 24  # offline: the dump's calendar
        assert counts_by_season(warehouse_url)["raw_results", 2024] == 0  # after the data date: not loaded
        wh = warehouse_from_url(warehouse_url)
        assert all(wh.count(name, {"season": 2023, "round": 22}) == 0 for name in RACE_TABLES)
        assert not instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("raw_results"), asset_partitions=["2023-22"]), limit=1).records
        assert "races after the dump's data date not loaded (--no-api)" in first
        record = instance.fetch_materializations(dg.AssetKey("jolpica_dump"), limit=1).records[0]
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        assert metadata["sha256"] == hashlib.sha256(small_dump.read_bytes()).hexdigest()
        assert metadata["data_date"] == DATA_DATE
        assert "| 2023 | 22 | 20 | 20 | 5 | 2+18 | 2 |" in metadata["coverage"]
        assert "| 2009 | 17 | 17 | 17 | 0 | 0+17 | 0 |" in metadata["coverage"]
        # the races' rows come from the dump: their data version names it (raw_results: no race is outside its era)
        for key in ("1958-01", "2009-01", "2023-01", "2023-21"):
            assert data_version(latest(instance, "raw_results", key)) == f"dump:{metadata['sha256']}", key
        before = jobs(instance)
        assert before["race_tables"] > 0 and before["season_calendar"] > 0

        # 2: the same dump again: no race run, no calendar run, no request, the same rows
        assert cli.main(["history", "--dump", str(small_dump), "--no-api"]) == 0, capsys.readouterr().err[-3000:]
        after = jobs(instance)
        assert after == before + Counter({"load_jolpica_dump": 1})
        assert server.state.requests == []
        assert counts_by_season(warehouse_url) == expected_counts
        assert "0 to load from it" in capsys.readouterr().err


# ------------------------------------------------------------------------- 3: dump rows = API rows

@contextlib.contextmanager
def another_warehouse(warehouse_url: str, root: Path) -> Iterator[str]:
    """A second, empty warehouse of the same engine as `warehouse_url`."""
    if warehouse_url.startswith("duckdb:"):
        yield f"duckdb:///{root / 'other.duckdb'}"
        return
    with fresh_pg_schema() as url:
        yield url


def test_dump_rows_equal_api_rows_in_the_warehouse(warehouse_url, small_dump, instance, replay_server, tmp_path,
                                                   monkeypatch, capsys):
    # the API path: the 2023 calendar, then each recorded race, from the replayed pages
    res = resources(warehouse_url, str(tmp_path / "api_blobs"), replay_server.base_url)
    materialize_calendar(instance, 2023, res)
    for key in API_RACES:
        materialize_race(instance, key, res)
    # the dump path, offline, into a warehouse of the same engine
    with another_warehouse(warehouse_url, tmp_path) as dump_url:
        cli_env(monkeypatch, tmp_path / "cli", dump_url, replay_server.base_url)
        replay_server.reset_counts()
        assert cli.main(["history", "--dump", str(small_dump), "--no-api"]) == 0, capsys.readouterr().err[-3000:]
        assert replay_server.state.requests == []
        for name in RACE_TABLES:
            api, dump = race_rows(warehouse_url, name, API_RACES), race_rows(dump_url, name, API_RACES)
            pd.testing.assert_frame_equal(dump, api, obj=name)
        calendar = [{"season": 2023}]
        pd.testing.assert_frame_equal(warehouse_from_url(dump_url).read_partitions("raw_races", calendar),
                                      warehouse_from_url(warehouse_url).read_partitions("raw_races", calendar))
        laps = race_rows(dump_url, "raw_laps", API_RACES)
    assert laps.groupby("round").size().to_dict() == {1: 1055, 10: 970}  # not two empty frames alike


# ------------------------------------------------------------------------- 4: API rows stay

def test_rows_loaded_from_the_api_are_not_replaced_by_the_dump(warehouse_url, small_dump, replay_server, tmp_path,
                                                               monkeypatch, capsys):
    instance = cli_env(monkeypatch, tmp_path, warehouse_url, replay_server.base_url)
    res = resources(warehouse_url, str(tmp_path / "blobs"), replay_server.base_url)
    materialize_calendar(instance, 2023, res)
    materialize_race(instance, "2023-01", res)
    before = {name: latest(instance, name, "2023-01") for name in RACE_TABLES}
    assert not any(data_version(r).startswith("dump:") for r in before.values())
    rows = {name: race_rows(warehouse_url, name, ("2023-01",)) for name in RACE_TABLES}
    assert len(rows["raw_laps"]) == 1055

    replay_server.reset_counts()
    assert cli.main(["history", "--dump", str(small_dump), "--no-api"]) == 0, capsys.readouterr().err[-3000:]
    assert replay_server.state.requests == []
    for name in RACE_TABLES:
        after = latest(instance, name, "2023-01")
        assert (after.storage_id, data_version(after)) == (before[name].storage_id, data_version(before[name])), name
        pd.testing.assert_frame_equal(race_rows(warehouse_url, name, ("2023-01",)), rows[name], obj=name)
    # the history did load the dump's other races of 2023
    assert data_version(latest(instance, "raw_results", "2023-10")).startswith("dump:")
    assert warehouse_from_url(warehouse_url).count("raw_laps", {"season": 2023, "round": 10}) == 970


# ------------------------------------------------------------------------- 5: bad input

def rezip_without(path: Path, member: str, dest: Path) -> Path:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != member:
                dst.writestr(info.filename, src.read(info.filename))
    return dest


def assert_nothing_loaded(instance: dg.DagsterInstance, warehouse_url: str) -> None:
    wh = warehouse_from_url(warehouse_url)
    assert {name: wh.count(name) for name in RAW_TABLES} == dict.fromkeys(RAW_TABLES, 0)
    assert instance.get_dynamic_partitions("races") == []
    assert set(jobs(instance)) == {"load_jolpica_dump"}  # no calendar, no race run after the failed dump


@pytest.mark.parametrize("case", ["truncated", "missing_path", "missing_member"])
def test_a_bad_dump_fails_naming_what_is_wrong_and_loads_nothing(case, warehouse_url, small_dump, replay_server,
                                                                 tmp_path, monkeypatch, capsys):
    instance = cli_env(monkeypatch, tmp_path, warehouse_url, replay_server.base_url)
    if case == "truncated":
        path = tmp_path / "truncated.zip"
        path.write_bytes(small_dump.read_bytes()[: small_dump.stat().st_size // 2])
        expected = [str(path), "not a readable zip"]
    elif case == "missing_path":
        path = tmp_path / "nowhere" / "jolpica-f1-csv.zip"
        expected = [str(path), "cannot read the dump"]
    else:
        path = rezip_without(small_dump, "formula_one_lap.csv", tmp_path / "no-laps.zip")
        expected = ["member formula_one_lap.csv is missing"]
    assert cli.main(["history", "--dump", str(path), "--no-api"]) == 1
    err = capsys.readouterr().err
    failure = [line for line in err.splitlines() if line.startswith("  jolpica_dump: ")]
    assert failure, err[-3000:]
    for text in expected:
        assert text in failure[0], failure[0]
    assert "Traceback" not in err
    assert replay_server.state.requests == []
    assert_nothing_loaded(instance, warehouse_url)


# ------------------------------------------------------------------------- 6: a dump URL

@contextlib.contextmanager
def dump_host(data: bytes, announced: dict) -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 with the dump at /files/jolpica-f1-csv.zip and Jolpica's dump overview at
    /data/dumps/download/ announcing `announced`; yields the dump's URL and the paths requested."""
    requested: list[str] = []
    overview = json.dumps([{"dump_type": "csv", "uploaded_at": "2023-11-20T03:00:00Z", **announced}]).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            requested.append(self.path)
            body = {"/data/dumps/download/": overview, "/files/jolpica-f1-csv.zip": data}.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/files/jolpica-f1-csv.zip", requested
    finally:
        server.shutdown()
        server.server_close()


def test_a_dump_url_is_downloaded_and_checked_against_the_overview(duckdb_url, small_dump, expected_counts,
                                                                   replay_server, tmp_path, monkeypatch, capsys):
    data = small_dump.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    instance = cli_env(monkeypatch, tmp_path, duckdb_url, replay_server.base_url)
    with dump_host(data, {"file_size": len(data), "file_hash": sha}) as (url, requested):
        assert cli.main(["history", "--dump", url, "--no-api"]) == 0, capsys.readouterr().err[-3000:]
    assert requested == ["/data/dumps/download/", "/files/jolpica-f1-csv.zip"]
    record = instance.fetch_materializations(dg.AssetKey("jolpica_dump"), limit=1).records[0]
    metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert (metadata["sha256"], metadata["source"], metadata["upstream_requests"]) == (sha, url, 2)
    assert metadata["uploaded_at"] == "2023-11-20T03:00:00Z"
    assert (tmp_path / "blobs" / "jolpica-dump" / f"{sha}.zip").read_bytes() == data
    assert counts_by_season(duckdb_url) == expected_counts
    assert replay_server.state.requests == []


@pytest.mark.parametrize("announced, message", [
    ({"file_size": -1}, "{size} bytes, the overview announces {wrong}"),
    ({"file_hash": "sha256:" + "0" * 64}, "sha256 {sha} differs from the overview's " + "0" * 64),
])
def test_a_dump_url_that_differs_from_the_overview_fails_naming_it(announced, message, duckdb_url, small_dump,
                                                                   replay_server, tmp_path, monkeypatch, capsys):
    data = small_dump.read_bytes()
    wrong = len(data) - 1
    announced = {k: (wrong if v == -1 else v) for k, v in announced.items()}
    instance = cli_env(monkeypatch, tmp_path, duckdb_url, replay_server.base_url)
    with dump_host(data, announced) as (url, requested):
        assert cli.main(["history", "--dump", url, "--no-api"]) == 1
    err = capsys.readouterr().err
    expected = message.format(size=len(data), wrong=wrong, sha=hashlib.sha256(data).hexdigest())
    assert f"jolpica_dump: dump {url}: {expected}" in err, err[-3000:]
    assert requested == ["/data/dumps/download/", "/files/jolpica-f1-csv.zip"]
    assert not (tmp_path / "blobs" / "jolpica-dump").exists()  # not archived
    assert_nothing_loaded(instance, duckdb_url)


# ------------------------------------------------------------------------- 7: a batch is all or nothing

def laps(season: int, rnd: int, n: int, marker: int = 0) -> pd.DataFrame:
    """`n` raw_laps rows of one race (20 drivers a lap), every lap time 90 000 + marker ms."""
    return pd.DataFrame({
        "season": season, "round": rnd,
        "driver_id": [f"d{i % 20}" for i in range(n)],
        "lap_number": [i // 20 + 1 for i in range(n)],
        "position": pd.array([i % 20 + 1 for i in range(n)], dtype="Int64"),
        "lap_time_ms": pd.array([90_000 + marker] * n, dtype="Int64"),
    })


def stored(wh, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, set[int]]]:
    """(season, round) → (rows, the lap times stored) for each race."""
    df = wh.read_partitions("raw_laps", [{"season": s, "round": r} for s, r in keys])
    return {k: (len(g), set(g["lap_time_ms"].astype(int))) for k, g in df.groupby(["season", "round"])}


def test_a_batch_of_partitions_is_written_whole_or_not_at_all(warehouse_url):
    wh = warehouse_from_url(warehouse_url)
    races = [(2022, 1), (2022, 2), (2023, 1), (2023, 2), (2023, 3)]
    for season, rnd in races:
        wh.replace_partitions("raw_laps", laps(season, rnd, 40), [{"season": season, "round": rnd}])
    start = {k: (40, {90_000}) for k in races}
    assert stored(wh, races) == start
    batch = [(2022, 1), (2023, 2), (2023, 3)]  # across seasons; 2022-02 and 2023-01 share their numbers
    parts = [{"season": s, "round": r} for s, r in batch]

    # one race of three would shrink: the whole batch is refused, none of the three changed
    shrinking = pd.concat([laps(2022, 1, 60, 1), laps(2023, 2, 20, 1), laps(2023, 3, 60, 1)], ignore_index=True)
    with pytest.raises(ShrinkRefused, match=r"season=2023, round=2\): the new version has 20 rows, fewer than the 40"):
        wh.replace_partitions("raw_laps", shrinking, parts, allow_shrink=False)
    assert stored(wh, races) == start

    # a row the table refuses (NOT NULL driver_id) in the last race: the deletes of the batch are rolled back
    broken = pd.concat([laps(2022, 1, 60, 2), laps(2023, 2, 60, 2), laps(2023, 3, 60, 2)], ignore_index=True)
    broken.loc[len(broken) - 1, "driver_id"] = None
    with pytest.raises(Exception, match=r"(?i)null"):
        wh.replace_partitions("raw_laps", broken, parts, allow_shrink=False)
    assert stored(wh, races) == start

    # a batch that may grow: exactly its partitions replaced, the others intact; a race without rows is emptied
    grown = pd.concat([laps(2022, 1, 60, 3), laps(2023, 3, 80, 3)], ignore_index=True)
    assert wh.replace_partitions("raw_laps", grown, parts, allow_shrink=True) == 140
    assert stored(wh, races) == {(2022, 1): (60, {90_003}), (2022, 2): (40, {90_000}), (2023, 1): (40, {90_000}),
                                 (2023, 3): (80, {90_003})}
    assert wh.count("raw_laps") == 60 + 40 + 40 + 80


def test_an_older_dump_never_replaces_a_newer_one(duckdb_url, small_dump, shared_data, replay_datasets, tmp_path,
                                                  monkeypatch, capsys):
    """A dump whose data date is older than the loaded one's is refused (nothing archived or loaded); a bad
    `--dump` scheme is refused before any run."""
    older = cut_dump(shared_data / "jolpica-dump" / "jolpica-f1-csv.zip", (1958, 2009), tmp_path / "older.zip")
    with JolpicaReplayServer(replay_datasets) as server:
        instance = cli_env(monkeypatch, tmp_path, duckdb_url, server.base_url)
        assert cli.main(["history", "--dump", str(small_dump), "--no-api"]) == 0
        capsys.readouterr()
        loaded = counts_by_season(duckdb_url)
        assert cli.main(["history", "--dump", str(older), "--no-api"]) == 1
        err = capsys.readouterr().err
        assert "is older than the loaded dump's 2023-11-19" in err and "allow_older" in err, err[-2000:]
        assert counts_by_season(duckdb_url) == loaded
        record = instance.fetch_materializations(dg.AssetKey("jolpica_dump"), limit=1).records[0]
        sha = hashlib.sha256(small_dump.read_bytes()).hexdigest()
        assert record.asset_materialization.metadata["sha256"].value == sha  # the newer dump stays the source
        assert cli.main(["history", "--dump", "ftp://example.org/dump.zip", "--no-api"]) == 2
        assert "expected a local path or an http(s) URL" in capsys.readouterr().err
