"""FastF1 tables (2018+): `fastf1_laps`, as `f1_assets.transforms.fastf1_laps.laps_to_rows` writes it.

Its integer columns are 32-bit in pandas (`dtype` overrides): FastF1's frame is converted as such,
unlike the Jolpica parsers' 64-bit integers. Session times are milliseconds since the session began.
"""

from __future__ import annotations

from f1_assets.tables.contract import Column, Table

FASTF1_LAPS = Table(
    name="fastf1_laps",
    description="FastF1 session laps of a race: one row per driver-lap (stints, tyres, track status, sectors).",
    columns=(
        Column("season", "int32", False, "Championship year", dtype="int32"),
        Column("round", "int32", False, "Round of the race within the season (1-based)", dtype="int32"),
        Column("driver_number", "int32", False, "Car number", dtype="int32"),
        Column("driver_code", "text", True, "Three-letter driver code as FastF1 reports it, e.g. 'HAM'"),
        Column("driver_id", "text", True, "Jolpica driverId when known (joined on the car number)"),
        Column("lap_number", "int32", False, "Lap number (1-based)", dtype="int32"),
        Column("lap_time_ms", "int64", True, "Lap time; NULL when FastF1 has none", unit="ms"),
        Column("stint", "int32", True, "Stint number (1-based), from FastF1", dtype="Int32"),
        Column("compound", "text", True, "Tyre compound as reported (era-specific), e.g. 'HYPERSOFT'"),
        Column("compound_std", "text", True, "SOFT/MEDIUM/HARD/INTERMEDIATE/WET/UNKNOWN: the weekend's "
               "softest/middle/hardest dry compound where derivable"),
        Column("fresh_tyre", "bool", True, "The tyre was new when fitted"),
        Column("tyre_life", "int32", True, "Laps driven on this tyre, earlier sessions included",
               unit="laps", dtype="Int32"),
        Column("pit_in_time_ms", "int64", True, "Session time at which the car entered the pit lane (in-lap)",
               unit="ms"),
        Column("pit_out_time_ms", "int64", True, "Session time at which the car left the pit lane (out-lap)",
               unit="ms"),
        Column("track_status", "text", True, "FastF1's track status codes seen during the lap, e.g. '14' "
               "(1 clear, 2 yellow, 4 safety car, 5 red, 6 VSC, 7 VSC ending)"),
        Column("is_accurate", "bool", True, "FastF1 judged the lap's timing accurate"),
        Column("deleted", "bool", True, "The lap time was deleted by the stewards (e.g. track limits)"),
        # added by migration 0002: at the end, where ALTER TABLE ADD COLUMN puts them in old warehouses
        Column("sector1_time_ms", "int64", True, "Sector 1 time (FastF1 Sector1Time)", unit="ms"),
        Column("sector2_time_ms", "int64", True, "Sector 2 time (FastF1 Sector2Time)", unit="ms"),
        Column("sector3_time_ms", "int64", True, "Sector 3 time (FastF1 Sector3Time)", unit="ms"),
    ),
    primary_key=("season", "round", "driver_number", "lap_number"),
    partition_by=("season", "round"),
)

TABLES = (FASTF1_LAPS,)
