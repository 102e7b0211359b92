"""The raw layer: Jolpica (Ergast) tables, as the parsers in `f1_assets.transforms.jolpica` write them.

Times and durations are whole milliseconds (suffix _ms). Every race table carries the partition
columns season and round; `raw_races` is partitioned by season (one calendar per season).
"""

from __future__ import annotations

from f1_assets.tables.contract import Column, Table

RACE_PARTITION = ("season", "round")


def race_key_columns() -> tuple[Column, Column]:
    return (
        Column("season", "int32", False, "Championship year"),
        Column("round", "int32", False, "Round of the race within the season (1-based)"),
    )


RAW_RACES = Table(
    name="raw_races",
    description="The season calendar: one row per race of a season's schedule (Jolpica `/{season}`).",
    columns=(
        *race_key_columns(),
        Column("race_name", "text", False, "Grand Prix name as published, e.g. 'Bahrain Grand Prix'"),
        Column("circuit_id", "text", False, "Jolpica circuitId, e.g. 'bahrain'"),
        Column("circuit_name", "text", True, "Circuit name as published"),
        Column("locality", "text", True, "Town or region of the circuit"),
        Column("country", "text", True, "Country of the circuit"),
        Column("lat", "float64", True, "Latitude of the circuit", unit="deg"),
        Column("lng", "float64", True, "Longitude of the circuit", unit="deg"),
        Column("race_date", "date", False, "Race day as published"),
        Column("race_time", "text", True, "Race start time as published (UTC, e.g. '15:00:00Z'); NULL for old races"),
        Column("has_sprint", "bool", False, "The weekend has a sprint (the schedule lists a Sprint session)"),
        Column("url", "text", True, "Wikipedia page of the race"),
    ),
    primary_key=("season", "round"),
    partition_by=("season",),
)


def _classification(name: str, what: str) -> Table:
    """raw_results and raw_sprint_results share one shape (a classification)."""
    return Table(
        name=name,
        description=f"The {what} classification of a race: one row per entry, in classification order.",
        columns=(
            *race_key_columns(),
            Column("position_order", "int32", False, "1-based order of the classification, always set"),
            Column("driver_id", "text", False, "Jolpica driverId"),
            Column("driver_code", "text", True, "Three-letter driver code, e.g. 'VER'"),
            Column("driver_number", "int32", True, "Car number raced with"),
            Column("given_name", "text", True, "Driver's given name"),
            Column("family_name", "text", True, "Driver's family name"),
            Column("constructor_id", "text", False, "Jolpica constructorId of the car"),
            Column("grid", "int32", True, "Starting grid slot; 0 = pit lane start"),
            Column("position", "int32", True, "Finishing position; NULL when not classified"),
            Column("position_text", "text", False, "Position as published: a number, or R retired, D disqualified, "
                   "W withdrawn, N not classified, E excluded, F failed to qualify"),
            Column("points", "float64", False, "Championship points scored"),
            Column("laps", "int32", False, "Laps completed"),
            Column("status", "text", False, "Finishing status as published, e.g. 'Finished', '+1 Lap', 'Engine'"),
            Column("time_ms", "int64", True, "Total race time; set for the winner and the cars on the lead lap",
                   unit="ms"),
            Column("fastest_lap", "int32", True, "Lap on which the driver set their fastest lap"),
            Column("fastest_lap_rank", "int32", True, "Rank of the driver's fastest lap in the race (1 = fastest)"),
            Column("fastest_lap_time_ms", "int64", True, "The driver's fastest lap time", unit="ms"),
        ),
        primary_key=("season", "round", "position_order"),
        partition_by=RACE_PARTITION,
    )


RAW_RESULTS = _classification("raw_results", "race")
RAW_SPRINT_RESULTS = _classification("raw_sprint_results", "sprint")

RAW_QUALIFYING = Table(
    name="raw_qualifying",
    description="Qualifying of a race: one row per entry, in classification order, with Q1/Q2/Q3 times.",
    columns=(
        *race_key_columns(),
        Column("position_order", "int32", False, "1-based order of the qualifying classification, always set"),
        Column("driver_id", "text", False, "Jolpica driverId"),
        Column("driver_number", "int32", True, "Car number"),
        Column("constructor_id", "text", False, "Jolpica constructorId of the car"),
        Column("position", "int32", True, "Qualifying position; NULL when not given"),
        Column("q1_ms", "int64", True, "Best lap time in Q1; NULL without a time", unit="ms"),
        Column("q2_ms", "int64", True, "Best lap time in Q2; NULL when not in or no time in Q2", unit="ms"),
        Column("q3_ms", "int64", True, "Best lap time in Q3; NULL when not in or no time in Q3", unit="ms"),
    ),
    primary_key=("season", "round", "position_order"),
    partition_by=RACE_PARTITION,
)

RAW_LAPS = Table(
    name="raw_laps",
    description="Lap timings of a race: one row per driver-lap (pages merged by driver and lap).",
    columns=(
        *race_key_columns(),
        Column("driver_id", "text", False, "Jolpica driverId"),
        Column("lap_number", "int32", False, "Lap number (1-based)"),
        Column("position", "int32", True, "Running position at the end of the lap"),
        Column("lap_time_ms", "int64", True, "Lap time; NULL when not published", unit="ms"),
    ),
    primary_key=("season", "round", "driver_id", "lap_number"),
    partition_by=RACE_PARTITION,
)

RAW_PIT_STOPS = Table(
    name="raw_pit_stops",
    description="Pit stops of a race: one row per stop.",
    columns=(
        *race_key_columns(),
        Column("driver_id", "text", False, "Jolpica driverId"),
        Column("stop", "int32", False, "The driver's stop number in the race (1-based)"),
        Column("lap", "int32", False, "Lap on which the driver entered the pit lane (the in-lap)"),
        Column("time_of_day", "text", True, "Local wall-clock time of the stop as published (HH:MM:SS)"),
        Column("duration_ms", "int64", True, "Pit lane time, entry to exit", unit="ms"),
    ),
    primary_key=("season", "round", "driver_id", "stop"),
    partition_by=RACE_PARTITION,
)

TABLES = (RAW_RACES, RAW_RESULTS, RAW_SPRINT_RESULTS, RAW_QUALIFYING, RAW_LAPS, RAW_PIT_STOPS)
