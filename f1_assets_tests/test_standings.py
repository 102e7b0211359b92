"""Championship standings after each round (issue 14): raw_driver_standings / raw_constructor_standings.

There are no recorded standings API pages: the replay server serves pages built from the real rows of the
Jolpica dump in the recorded data (`jolpica_server.standings_datasets`), in the API's shape (MRData.StandingsTable.
StandingsLists[0].DriverStandings / ConstructorStandings, paged like the replay server pages the rest).
Proves: the parsers read those pages back to the dump's rows; the dump mapping equals the API rows for
2023-01 and 2023-10; both assets materialize 2023-01 and 2023-10 through the replay server (2 requests a
race) with rows equal to the dump's and `standings_agree_with_results` passing (compared against the
results of rounds 1..R); a page with one driver's points off by one fails the check naming the driver and
the round, and writes nothing; the era constants of the check restate the dump's championship systems.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from f1_assets.assets import ingest_jolpica
from f1_assets.storage.warehouse import warehouse_from_url
from f1_assets.tables import table
from f1_assets.transforms import jolpica, standings
from f1_assets.transforms.dump import raw_tables, read_dump
from f1_assets_tests.helpers import check_results, materialize, materialize_calendar, metadata_of, resources
from f1_assets_tests.jolpica_server import STANDINGS_ENDPOINTS, standings_datasets

pytestmark = pytest.mark.shared_data

KINDS = STANDINGS_ENDPOINTS


@pytest.fixture(scope="module")
def dump_path(shared_data: Path) -> Path:
    return shared_data / "jolpica-dump" / "jolpica-f1-csv.zip"


@pytest.fixture(scope="module")
def tables(dump_path: Path) -> dict[str, pd.DataFrame]:
    return raw_tables(read_dump(dump_path))


def race_rows(tables: dict[str, pd.DataFrame], name: str, season: int, rnd: int) -> pd.DataFrame:
    df = tables[name]
    return df[(df["season"] == season) & (df["round"] == rnd)].reset_index(drop=True)


def by_key(df: pd.DataFrame, name: str) -> pd.DataFrame:
    return df.sort_values(list(table(name).primary_key)).reset_index(drop=True)


@pytest.mark.parametrize("season,rnd,drivers,constructors", [(2023, 1, 20, 10), (2023, 10, 20, 10)])
def test_parsed_pages_equal_the_dump_rows(tables, season, rnd, drivers, constructors):
    """Pure parsers on pages built from the real dump rows (two pages of 15: paging merges), and the
    dump mapping = the API rows for 2023-01 and 2023-10."""
    datasets = standings_datasets(tables, [(season, rnd)])
    for name, count in (("raw_driver_standings", drivers), ("raw_constructor_standings", constructors)):
        endpoint, _ = KINDS[name]
        data = datasets[f"{season}/{rnd}/{endpoint}"]
        pages = [(f"p{o}", data.page("u", 15, o)) for o in range(0, len(data.items), 15)]
        api = ingest_jolpica.STANDINGS_TABLES[name].parser(pages)
        assert len(api) == count and jolpica.page_total("p0", pages[0][1]) == count
        assert api.dtypes.astype(str).to_dict() == table(name).dtypes()
        pd.testing.assert_frame_equal(by_key(race_rows(tables, name, season, rnd), name), by_key(api, name))
    drivers_1 = race_rows(tables, "raw_driver_standings", 2023, 1).set_index("driver_id")
    assert drivers_1.loc["max_verstappen", ["position", "points", "wins"]].tolist() == [1, 25.0, 1]
    assert drivers_1.loc["leclerc", "position_text"] == "-" and pd.isna(drivers_1.loc["leclerc", "position"])


def test_dump_mapping_follows_the_api_rules(tables):
    d, c = tables["raw_driver_standings"], tables["raw_constructor_standings"]
    # standings after a sprint have no round in the dump: one row per driver and round
    assert not d.duplicated(["season", "round", "driver_id"]).any()
    assert len(race_rows(tables, "raw_driver_standings", 2023, 4)) == 20
    schumacher = d[(d["season"] == 1997) & (d["driver_id"] == "michael_schumacher")]
    assert set(schumacher["position_text"]) == {"D"}  # disqualified from the 1997 championship
    mclaren = c[(c["season"] == 2007) & (c["constructor_id"] == "mclaren")]
    assert set(mclaren["position_text"]) == {"E"} and set(mclaren["points"]) == {0.0}
    assert c["season"].min() == 1958
    # the constructors of a driver are those of their races up to the round (ricciardo joined at round 11)
    assert race_rows(tables, "raw_driver_standings", 2023, 12).set_index("driver_id").loc[
        "ricciardo", "constructor_ids"] == "alphatauri"
    assert "ricciardo" not in set(race_rows(tables, "raw_driver_standings", 2023, 10)["driver_id"])
    assert d["constructor_ids"].str.contains(",").any()  # some drivers changed teams within a season


def test_era_constants_restate_the_dumps_championship_systems(dump_path):
    with zipfile.ZipFile(dump_path) as archive:
        def rows(member: str) -> list[dict[str, str]]:
            return list(csv.DictReader(io.StringIO(archive.read(member).decode(), newline="")))
        systems = {s["id"]: s for s in rows("formula_one_championshipsystem.csv")}
        seasons = {int(s["year"]): systems[s["championship_system_id"]] for s in rows("formula_one_season.csv")
                   if s["championship_system_id"]}
        adjustments = rows("formula_one_championshipadjustment.csv")
    every = {kind: min(y for y, s in seasons.items() if all(
        seasons[x][f"{kind}_best_results"] == "-1" and seasons[x].get(f"{kind}_season_split", "0") == "0"
        and (kind == "driver" or seasons[x]["team_points_per_session"] == "0") for x in seasons if x >= y))
        for kind in ("driver", "team")}
    assert every == {"driver": standings.ALL_RESULTS_COUNT["driver"],
                     "team": standings.ALL_RESULTS_COUNT["constructor"]}
    assert len(adjustments) == len(standings.ADJUSTED) == 3


# ------------------------------------------------------------------------- the check on every dump round


def test_every_dump_round_agrees_and_each_kind_of_contradiction_fails(tables):
    """The pure check on the dump's real rows: every round of every season (9 seasons, 148 rounds) passes,
    compared with results where every result counts and all earlier rounds are there; then one
    contradiction at a time in 2023 round 10 fails naming the entity."""
    calendar, results, sprint = tables["raw_races"], tables["raw_results"], tables["raw_sprint_results"]
    compared = 0
    for name, kind in (("raw_driver_standings", "driver"), ("raw_constructor_standings", "constructor")):
        for (season, rnd), rows in tables[name].groupby(["season", "round"]):
            verdict = standings.standings_agree(rows.reset_index(drop=True), kind, int(season), int(rnd), calendar,
                                                results, sprint)
            assert verdict.passed, (name, season, rnd, verdict.metadata)
            compared += bool(verdict.metadata["compared"])
    assert compared > 100

    base = race_rows(tables, "raw_driver_standings", 2023, 10)

    def fails(changed: pd.DataFrame, kind: str = "driver") -> list[str]:
        verdict = standings.standings_agree(changed, kind, 2023, 10, calendar, results, sprint)
        assert not verdict.passed
        return verdict.metadata["failing_keys"]

    swapped = base.copy()
    first, third = swapped["position"] == 1, swapped["position"] == 3
    swapped.loc[first, "position"], swapped.loc[third, "position"] = 3, 1
    assert "max_verstappen: position 3 with 255 points, more than the position above (156) after round 10" in fails(
        swapped)
    twice = base.copy()
    twice["position"] = 1
    assert any("position 1 given twice" in k for k in fails(twice))
    wins = base.copy()
    wins.loc[wins["driver_id"] == "perez", "wins"] += 1
    assert fails(wins) == ["perez after round 10: standings 3 wins, results 2"]
    team = base.copy()
    team.loc[team["driver_id"] == "hamilton", "constructor_ids"] = "ferrari"
    assert fails(team) == ["hamilton after round 10: constructor(s) ferrari in no result of the driver"]
    teams = race_rows(tables, "raw_constructor_standings", 2023, 10)
    teams.loc[teams["constructor_id"] == "red_bull", "wins"] = 0
    assert fails(teams, "constructor") == ["red_bull after round 10: standings 0 wins, results 10"]


def test_infinite_points_are_refused_by_the_schema():
    """A 1985 page (a season the sum check skips) with points "inf": refused before any write, naming it."""
    entry = {"position": "1", "positionText": "1", "points": "inf", "wins": "1", "Driver": {"driverId": "prost"},
             "Constructors": [{"constructorId": "mclaren"}]}
    page = {"MRData": {"total": "1", "limit": "100", "offset": "0", "StandingsTable": {
        "season": "1985", "round": "3", "StandingsLists": [{"season": "1985", "round": "3",
                                                            "DriverStandings": [entry]}]}}}
    rows = jolpica.parse_driver_standings([("u", page)])
    with pytest.raises(Exception, match="points") as refused:
        ingest_jolpica.RAW_DRIVER_STANDINGS.validate(rows)
    assert "inf" in str(refused.value)


# ------------------------------------------------------------------------- through the replay server

@pytest.fixture
def served(replay_server):
    """The replay server serves the dump's standings of every recorded race (`load_replay_dir`)."""
    assert "2023/10/driverStandings" in replay_server.state.datasets
    return replay_server


def _load_results_from_dump(url: str, tables: dict[str, pd.DataFrame], rounds: range) -> None:
    """The real results (and sprint results) of 2023 rounds the API recordings lack, written from the dump."""
    wh = warehouse_from_url(url)
    for name in ("raw_results", "raw_sprint_results"):
        df = tables[name][(tables[name]["season"] == 2023) & tables[name]["round"].isin(rounds)]
        wh.replace_partitions(name, df.reset_index(drop=True), [{"season": 2023, "round": r} for r in rounds])


STANDINGS = ingest_jolpica.STANDINGS_ASSETS


def test_2023_01_and_10_materialize_with_rows_equal_to_the_dump(instance, warehouse_url, served, tables, tmp_path):
    res = resources(warehouse_url, str(tmp_path / "blobs"), served.base_url)
    materialize_calendar(instance, 2023, res, prefetch=False)
    wh = warehouse_from_url(warehouse_url)
    _load_results_from_dump(warehouse_url, tables, range(2, 10))
    for key, rnd in (("2023-01", 1), ("2023-10", 10)):
        served.reset_counts()
        result = materialize([*ingest_jolpica.RACE_ASSETS, *STANDINGS], partition_key=key, instance=instance,
                             resources=res)
        made = served.state.requests
        # one page each (≤ 100 entries): a race costs 2 requests more than before
        assert len([r for r in made if "Standings" in r]) == 2, made
        checks = check_results(result)
        assert all(c.passed for c in checks.values()), [k for k, c in checks.items() if not c.passed]
        for name in KINDS:
            agree = checks[(name, "standings_agree_with_results")].metadata
            assert agree["compared"].value is True and agree["rounds_summed"].value == rnd
            assert metadata_of(result, name)["upstream_requests"] == 1
            stored = wh.query(f"SELECT * FROM {name} WHERE season = 2023 AND round = {rnd}")
            pd.testing.assert_frame_equal(by_key(table(name).conform(stored), name),
                                          by_key(race_rows(tables, name, 2023, rnd), name))


def test_a_gap_in_earlier_rounds_says_it_cannot_compare(instance, duckdb_url, served, tmp_path):
    res = resources(duckdb_url, str(tmp_path / "blobs"), served.base_url)
    materialize_calendar(instance, 2023, res, prefetch=False)
    result = materialize([ingest_jolpica.raw_results, ingest_jolpica.raw_sprint_results, *STANDINGS],
                         partition_key="2023-10", instance=instance, resources=res)
    agree = check_results(result)[("raw_driver_standings", "standings_agree_with_results")]
    assert agree.passed and agree.metadata["compared"].value is False
    assert "2023-01" in agree.metadata["reason"].value and "2023-09" in agree.metadata["reason"].value
    assert warehouse_from_url(duckdb_url).count("raw_driver_standings", {"season": 2023, "round": 10}) == 20


def test_points_off_by_one_fail_naming_the_driver_and_round(instance, duckdb_url, served, tables, tmp_path):
    res = resources(duckdb_url, str(tmp_path / "blobs"), served.base_url)
    materialize_calendar(instance, 2023, res, prefetch=False)
    _load_results_from_dump(duckdb_url, tables, range(1, 10))
    assert materialize([ingest_jolpica.raw_results], partition_key="2023-10", instance=instance,
                       resources=res).success
    items = served.state.datasets["2023/10/driverStandings"].items
    hamilton = next(i for i in items if i["Driver"]["driverId"] == "hamilton")
    hamilton["points"] = str(int(hamilton["points"]) + 1)
    result = materialize(STANDINGS, partition_key="2023-10", instance=instance, resources=res, raise_on_error=False)
    assert not result.success
    agree = check_results(result)[("raw_driver_standings", "standings_agree_with_results")]
    assert not agree.passed and agree.metadata["failing_count"].value == 1
    assert agree.metadata["failing_keys"].value == ["hamilton after round 10: standings 122 points, results 121"]
    assert warehouse_from_url(duckdb_url).count("raw_driver_standings", {"season": 2023, "round": 10}) == 0
