"""The one table declaration: declarations ↔ generated DDL ↔ pandera ↔ pandas dtypes ↔ what the writers produce.

Warehouse tables and the Parquet table `raw_telemetry` (no DDL: it lives in the blob store)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pytest

from f1_assets import schemas
from f1_assets.assets.ingest_fastf1 import raw_telemetry
from f1_assets.partitions import parse_race_key
from f1_assets.resources.fastf1 import FastF1Resource
from f1_assets.storage.warehouse import schema_sql, warehouse_from_url
from f1_assets.tables import TABLES, WAREHOUSE_TABLES, Column, ConformError, Table, table
from f1_assets.transforms import jolpica
from f1_assets.transforms.fastf1_laps import empty_rows, laps_to_rows
from f1_assets.transforms.telemetry import empty_telemetry, merge_race_telemetry
from f1_assets_tests.helpers import replay_pages
from f1_assets_tests.test_telemetry import make_fastf1_telemetry

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "sql" / "schema.sql"
EVERY_TABLE = ["raw_races", "raw_results", "raw_sprint_results", "raw_qualifying", "raw_laps", "raw_pit_stops",
               "raw_driver_standings", "raw_constructor_standings", "fastf1_laps", "raw_telemetry", "lap_features",
               "telemetry_features", "driver_profiles", "era_statistics", "circuit_versions", "jolpica_request_log",
               "pipeline_audit_log"]
PARQUET_TABLES = ["raw_telemetry"]
# information_schema.columns.data_type of each logical type, per engine
DATA_TYPES = {
    "postgres": {"int32": "integer", "int64": "bigint", "float64": "double precision", "text": "text",
                 "bool": "boolean", "date": "date", "timestamptz": "timestamp with time zone", "uuid": "uuid",
                 "json": "json", "varchar": "character varying"},
    "duckdb": {"int32": "INTEGER", "int64": "BIGINT", "float64": "DOUBLE", "text": "VARCHAR", "bool": "BOOLEAN",
               "date": "DATE", "timestamptz": "TIMESTAMP WITH TIME ZONE", "uuid": "UUID", "json": "JSON",
               "varchar": "VARCHAR"},
}


def test_every_table_is_declared_and_every_column_described():
    assert list(TABLES) == EVERY_TABLE
    assert [t.name for t in TABLES.values() if t.storage == "parquet"] == PARQUET_TABLES
    assert list(WAREHOUSE_TABLES) == [name for name in EVERY_TABLE if name not in PARQUET_TABLES]
    for declared in TABLES.values():
        assert declared.description, declared.name
        undescribed = [c.name for c in declared.columns if not c.description.strip()]
        assert not undescribed, f"{declared.name}: columns without a description {undescribed}"
        # a name that says milliseconds is declared in milliseconds
        assert all(c.unit == "ms" for c in declared.columns if c.name.endswith("_ms")), declared.name
    assert table("raw_laps") is TABLES["raw_laps"]
    with pytest.raises(KeyError, match=r"no table 'raw_lap' is declared; known tables: \['circuit_versions', 'dr"):
        table("raw_lap")


def test_sql_schema_file_is_the_generated_ddl():
    assert SCHEMA_FILE.read_text() == schema_sql(postgres=True), (
        "sql/schema.sql differs from the declarations' DDL: regenerate it with "
        "`f1-assets migrate --print-sql > sql/schema.sql`")
    for declared in WAREHOUSE_TABLES.values():
        assert declared.ddl("duckdb") in schema_sql(postgres=False)
    assert "CREATE TRIGGER" in schema_sql(postgres=True) and "CREATE TRIGGER" not in schema_sql(postgres=False)
    with pytest.raises(ValueError, match="unknown engine 'sqlite'"):
        table("raw_laps").ddl("sqlite")
    # the Parquet table is no warehouse table: no DDL, not in the script
    for name in PARQUET_TABLES:
        assert name not in schema_sql(postgres=True)
        with pytest.raises(ValueError, match=f"table {name} is stored as parquet, not in the warehouse: it has no DDL"):
            table(name).ddl("postgres")


def test_the_warehouse_has_the_declared_columns_types_and_keys(warehouse_url):
    wh = warehouse_from_url(warehouse_url)
    assert wh.apply_schema().action == "created"
    types = DATA_TYPES[wh.kind]
    got = wh.query(
        "SELECT table_name, column_name, data_type, is_nullable, character_maximum_length FROM "
        "information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")
    assert not set(got["table_name"]) & set(PARQUET_TABLES)
    for declared in WAREHOUSE_TABLES.values():
        rows = got[got["table_name"] == declared.name]
        assert rows["column_name"].tolist() == declared.column_names, declared.name
        for column, (_, row) in zip(declared.columns, rows.iterrows(), strict=True):
            logical = column.type.split("(")[0]
            assert row["data_type"] == types[logical], (declared.name, column.name, row["data_type"])
            assert (row["is_nullable"] == "YES") == column.nullable, (declared.name, column.name)
            if logical == "varchar" and wh.kind == "postgres":
                assert f"varchar({int(row['character_maximum_length'])})" == column.type
    keys = _primary_keys(wh)
    assert keys == {t.name: list(t.primary_key) for t in WAREHOUSE_TABLES.values() if t.primary_key}


def _primary_keys(wh) -> dict[str, list[str]]:
    if wh.kind == "duckdb":
        rows = wh.query("SELECT table_name, constraint_column_names AS cols FROM duckdb_constraints() "
                        "WHERE constraint_type = 'PRIMARY KEY'")
        return {r.table_name: list(r.cols) for r in rows.itertuples() if r.table_name in WAREHOUSE_TABLES}
    rows = wh.query(
        "SELECT tc.table_name, array_agg(k.column_name::text ORDER BY k.ordinal_position) AS cols "
        "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k "
        "USING (constraint_schema, constraint_name, table_name) WHERE tc.table_schema = current_schema() "
        "AND tc.constraint_type = 'PRIMARY KEY' GROUP BY tc.table_name")
    return {r.table_name: list(r.cols) for r in rows.itertuples() if r.table_name in WAREHOUSE_TABLES}


def test_empty_frames_have_the_dtypes_and_pass_their_pandera_schema():
    for declared in TABLES.values():
        empty = declared.empty_frame()
        assert list(empty.columns) == declared.column_names
        assert empty.dtypes.astype(str).to_dict() == declared.dtypes(), declared.name
        declared.pandera_schema().validate(empty)
    # the dtype rule, and the one family that overrides it
    assert table("raw_laps").dtypes() == {"season": "int64", "round": "int64", "driver_id": "object",
                                          "lap_number": "int64", "position": "Int64", "lap_time_ms": "Int64"}
    assert table("lap_features").dtypes()["safety_car"] == "boolean"
    assert table("lap_features").dtypes()["is_outlier"] == "bool"
    assert table("driver_profiles").dtypes()["updated_at"] == "datetime64[ns, UTC]"
    ff = table("fastf1_laps").dtypes()
    assert (ff["lap_number"], ff["stint"], ff["sector1_time_ms"]) == ("int32", "Int32", "Int64")


def test_pandera_schema_enforces_the_declaration():
    laps = table("raw_laps")
    good = pd.DataFrame({"season": [2023, 2023], "round": [1, 1], "driver_id": ["a", "b"], "lap_number": [1, 1],
                         "position": pd.array([1, None], dtype="Int64"),
                         "lap_time_ms": pd.array([95_000, -1], dtype="Int64")})
    laps.pandera_schema().validate(good)
    cases = {
        "driver_id": good.assign(driver_id=["a", None]),  # NOT NULL
        "lap_number": good.assign(lap_number=[1.0, 2.0]),  # dtype
        "'extra'": good.assign(extra=1),  # no undeclared column
        "'lap_number'": pd.concat([good, good.iloc[[0]]], ignore_index=True),  # primary key unique
    }
    for name, frame in cases.items():
        with pytest.raises(pa.errors.SchemaErrors, match=name):
            laps.pandera_schema().validate(frame, lazy=True)
    with pytest.raises(pa.errors.SchemaError, match="greater_than"):
        laps.pandera_schema({"lap_time_ms": [pa.Check.gt(0)]}).validate(good)
    with pytest.raises(KeyError, match=r"unknown columns \['lap'\] of table raw_laps"):
        laps.pandera_schema({"lap": [pa.Check.gt(0)]})


def test_conform_cuts_orders_and_casts_naming_what_is_wrong():
    laps = table("raw_laps")
    frame = pd.DataFrame({"lap_time_ms": [95_000.0, None], "driver_id": ["a", "b"], "season": [2023, 2023],
                          "round": [1, 1], "lap_number": [1, 2], "position": [1.0, 2.0], "helper": [0, 0]})
    out = laps.conform(frame)
    assert list(out.columns) == laps.column_names  # table order, the helper column left out
    assert out.dtypes.astype(str).to_dict() == laps.dtypes()
    assert out["lap_time_ms"].tolist()[0] == 95_000 and out["lap_time_ms"].isna().tolist() == [False, True]
    with pytest.raises(ConformError, match=r"raw_laps lacks columns \['position'\] .*columns the table does not: "
                                           r"\['positon', 'helper'\]"):
        laps.conform(frame.rename(columns={"position": "positon"}))
    with pytest.raises(ConformError, match="table raw_laps, column lap_number: values of dtype object"):
        laps.conform(frame.assign(lap_number=["1", "two"]))


def test_table_schema_for_the_catalog():
    declared = table("fastf1_laps")
    schema = declared.table_schema()
    assert isinstance(schema, dg.TableSchema)
    assert [c.name for c in schema.columns] == declared.column_names
    by_name = {c.name: c for c in schema.columns}
    assert by_name["sector1_time_ms"].type == "int64"
    assert by_name["sector1_time_ms"].description == "Sector 1 time (FastF1 Sector1Time) [ms]"
    assert by_name["driver_code"].constraints.nullable and not by_name["lap_number"].constraints.nullable
    assert schema.constraints.other == ["PRIMARY KEY (season, round, driver_number, lap_number)",
                                        "PARTITIONED BY (season, round)"]
    assert table("driver_profiles").table_schema().columns[0].constraints.unique  # a one-column key
    assert "UNIQUE (dag_run_id, event_type)" in table("pipeline_audit_log").table_schema().constraints.other


def test_a_declaration_that_contradicts_itself_is_refused():
    season = Column("season", "int32", False, "year")
    with pytest.raises(ValueError, match=r"primary_key names unknown columns \['round'\]"):
        Table("t", (season,), ("season", "round"), (), "t")
    with pytest.raises(ValueError, match=r"primary key columns \['season'\] must be NOT NULL"):
        Table("t", (Column("season", "int32", True, "year"),), ("season",), (), "t")
    with pytest.raises(ValueError, match="unknown logical type 'integer'"):
        Column("season", "integer")
    # a family file's mistakes name the file and the table
    spec = {"description": "t", "primary_key": ["season"], "columns": [{"name": "season", "type": "int32",
                                                                         "nullable": False, "descripton": "year"}]}
    with pytest.raises(ValueError, match=r"raw.yaml: table t: column 'season' has unknown keys \['descripton'\]"):
        Table.from_spec("t", spec, "raw.yaml")
    with pytest.raises(ValueError, match=r"raw.yaml: table t: keys \['primary'\] are unknown"):
        Table.from_spec("t", {"primary": ["season"], "columns": []}, "raw.yaml")
    spec["columns"][0]["description"] = spec["columns"][0].pop("descripton")
    assert Table.from_spec("t", spec, "raw.yaml").primary_key == ("season",)
    # storage: a type with no SQL type only in a Parquet table; a Parquet table's partition keys are its path's
    date = Column("Date", "timestamp", False, "sample time")
    with pytest.raises(ValueError, match=r"table t: columns \['Date \(timestamp\)'\] have a type with no SQL type"):
        Table("t", (date,), (), (), "t")
    with pytest.raises(ValueError, match=r"table t: partition_by names unknown columns \['season'\]"):
        Table("t", (Column("x", "float64"),), (), ("season",), "t")
    assert Table("t", (date,), (), ("season",), "t", storage="parquet").dtypes() == {"Date": "datetime64[ns]"}
    with pytest.raises(ValueError, match=r"raw.yaml: table t: unknown storage 'gcs': expected one of \('warehouse'"):
        Table.from_spec("t", {**spec, "storage": "gcs"}, "raw.yaml")


# ------------------------------------------------------------------------- the writers produce the declared tables


@pytest.mark.shared_data
def test_the_jolpica_parsers_write_the_declared_raw_tables(shared_data):
    replay = shared_data / "jolpica-replay"
    parsed = {
        "raw_races": (jolpica.parse_schedule(replay_pages(replay, "ergast@f1@2023.json")), schemas.RAW_RACES),
        "raw_results": (jolpica.parse_results(replay_pages(replay, "ergast@f1@2023@1@results.json")),
                        schemas.RAW_RESULTS),
        "raw_qualifying": (jolpica.parse_qualifying(replay_pages(replay, "ergast@f1@2023@1@qualifying.json")),
                           schemas.RAW_QUALIFYING),
        "raw_laps": (jolpica.parse_laps(replay_pages(replay, "ergast@f1@2023@1@laps.json")), schemas.RAW_LAPS),
        "raw_pit_stops": (jolpica.parse_pit_stops(replay_pages(replay, "ergast@f1@2023@1@pitstops.json")),
                          schemas.RAW_PIT_STOPS),
    }
    for name, (frame, schema) in parsed.items():
        assert len(frame) > 0, name
        assert frame.dtypes.astype(str).to_dict() == table(name).dtypes(), name
        schemas.validate(schema, frame, name, "recorded 2023 pages")
    assert len(parsed["raw_laps"][0]) == 1055
    assert parsed["raw_races"][0]["race_date"].iloc[0] == dt.date(2023, 3, 5)


@pytest.mark.shared_data
def test_fastf1_laps_rows_are_the_declared_table_with_sector_times(recorded_upstreams, tmp_path):
    baku = FastF1Resource(livetiming_url=recorded_upstreams.livetiming_url,
                          schedule_url=recorded_upstreams.schedule_url, jolpica_url=recorded_upstreams.jolpica_url,
                          cache_dir=str(tmp_path)).load_race(parse_race_key("2018-04"))
    rows = laps_to_rows(baku.session.laps, 2018, 4, baku.session.results["DriverId"].to_dict())
    assert rows.dtypes.astype(str).to_dict() == table("fastf1_laps").dtypes()
    assert empty_rows().dtypes.astype(str).to_dict() == table("fastf1_laps").dtypes()
    sectors = rows[["sector1_time_ms", "sector2_time_ms", "sector3_time_ms"]]
    assert len(rows) == 848 and sectors.notna().sum().tolist() == [820, 841, 841]
    ham_10 = rows[(rows["driver_code"] == "HAM") & (rows["lap_number"] == 10)].iloc[0]
    assert (ham_10["sector1_time_ms"], ham_10["sector2_time_ms"], ham_10["sector3_time_ms"]) == (37598, 43366, 26228)
    assert ham_10["lap_time_ms"] == 37598 + 43366 + 26228
    # the three sectors are the lap: they sum to the lap time (to the ms) wherever all four are known
    complete = sectors.notna().all(axis=1) & rows["lap_time_ms"].notna()
    off = (sectors[complete].sum(axis=1) - rows.loc[complete, "lap_time_ms"]).abs() > 1
    assert complete.sum() == 815 and off.sum() == 1


def test_raw_telemetry_is_the_declared_parquet_table():
    """The merge writes `raw_telemetry` as declared (dtype for dtype, on a generated race with a car without
    position, drivers without code, samples outside every lap) and the asset shows it in the catalog."""
    declared = table("raw_telemetry")
    assert declared.storage == "parquet" and declared.partition_by == ("season", "round")
    drivers = {"44": "HAM", "5": "VET", "77": "BOT"}
    car, pos, laps = make_fastf1_telemetry(drivers, laps=3)
    laps = laps[(laps["DriverNumber"] != "5") | (laps["LapNumber"] > 1)]  # VET's samples of lap 1: no lap
    race, _ = merge_race_telemetry(car, {k: v for k, v in pos.items() if k != "77"}, laps, {"44": "HAM"})
    assert race["Driver"].isna().any() and race["X"].isna().any() and race["LapNumber"].isna().any()
    assert list(race.columns) == declared.column_names
    assert race.dtypes.astype(str).to_dict() == declared.dtypes() == {
        "DriverNumber": "int64", "Driver": "object", "LapNumber": "Int64", "Date": "datetime64[ns]",
        "SessionTime": "timedelta64[ns]", **dict.fromkeys(["Speed", "RPM", "nGear", "Throttle", "Brake", "DRS",
                                                           "X", "Y", "Z"], "float64"), "Interpolated": "bool",
        "Distance": "float64", "Corner": "Int64"}
    declared.pandera_schema().validate(race)  # NOT NULL columns, (DriverNumber, SessionTime) unique
    pd.testing.assert_frame_equal(empty_telemetry(), declared.empty_frame())
    with pytest.raises(ConformError, match=r"raw_telemetry lacks columns \['Interpolated'\]"):
        declared.conform(race.drop(columns="Interpolated"))
    units = {c.name: c.unit for c in declared.columns if c.unit}
    assert units == {"Speed": "km/h", "RPM": "rpm", "Throttle": "%", "X": "1/10 m", "Y": "1/10 m", "Z": "1/10 m",
                     "Distance": "m"}

    schema = raw_telemetry.specs_by_key[dg.AssetKey("raw_telemetry")].metadata["dagster/column_schema"]
    assert schema == declared.table_schema()
    by_name = {c.name: c for c in schema.columns}
    assert [c.name for c in schema.columns] == declared.column_names
    assert all(c.description for c in schema.columns)
    assert (by_name["Date"].type, by_name["SessionTime"].type) == ("timestamp", "interval")
    assert by_name["Speed"].description == "Car speed (FastF1 Speed) [km/h]"
    assert "10, 12 or 14 open" in by_name["DRS"].description
    assert not by_name["DriverNumber"].constraints.nullable and by_name["LapNumber"].constraints.nullable
    assert schema.constraints.other == ["PRIMARY KEY (DriverNumber, SessionTime)",
                                        "PARTITIONED BY (season, round): one Parquet object per partition, "
                                        "Hive-style path"]
