"""The feature layer: `lap_features` and `telemetry_features`, built by `f1_assets.transforms.features`
(formulas in its module docstring). Names and units follow the seed's lap_features (year → season;
race_id is the race key 'YYYY-RR'). Outliers are flagged, never dropped.
"""

from __future__ import annotations

from f1_assets.tables.contract import Column, Table
from f1_assets.tables.raw import RACE_PARTITION, race_key_columns

LAP_FEATURES = Table(
    name="lap_features",
    description="One row per driver-lap of raw_laps, with tyre, pit, fuel, gap and track-status features "
    "and outlier flags (outliers are flagged, never dropped).",
    columns=(
        *race_key_columns(),
        Column("race_id", "text", False, "Race partition key 'YYYY-RR'"),
        Column("race_date", "date", True, "Race day (raw_races)"),
        Column("circuit_id", "text", True, "Jolpica circuitId (raw_races)"),
        Column("driver_id", "text", False, "Jolpica driverId"),
        Column("driver_code", "text", True, "Three-letter driver code (raw_results)"),
        Column("driver_number", "int32", True, "Car number raced with (raw_results)"),
        Column("lap_number", "int32", False, "Lap number (1-based)"),
        Column("lap_time_ms", "int64", True, "Lap time (raw_laps)", unit="ms"),
        Column("position", "int32", True, "Running position at the end of the lap"),
        Column("tire_compound", "text", False, "FastF1 compound as reported, else 'UNKNOWN'"),
        Column("tire_compound_std", "text", False, "SOFT/MEDIUM/HARD/INTERMEDIATE/WET, else 'UNKNOWN'"),
        Column("stint", "int32", True, "FastF1 stint, else 1 + the driver's pit stops on laps before this one"),
        Column("tire_age", "int32", True, "Laps since the stint began (the stint's first lap = 1)", unit="laps"),
        Column("pit_stop", "bool", False, "The lap is in the pit-stop log (the in-lap)", default="FALSE"),
        Column("fuel_remaining", "float64", True, "ESTIMATE: 110 * (1 - lap / scheduled laps), clipped to "
               "[0, 110]; no team publishes fuel loads", unit="kg"),
        Column("gap_to_leader_ms", "int64", True, "Cumulative race time minus the leader's after the same lap",
               unit="ms"),
        Column("delta_to_next_ms", "int64", True, "Cumulative race time minus that of the car one position ahead "
               "on the same lap (0 for the leader)", unit="ms"),
        Column("laps_remaining", "int32", True, "Scheduled laps - lap_number", unit="laps"),
        Column("track_status", "text", True, "FastF1 track status codes seen in the lap ('1','2','4','5','6','7'); "
               "NULL without FastF1"),
        Column("safety_car", "bool", True, "Status has 4, 5, 6 or 7 (safety car, red flag, VSC); NULL without "
               "FastF1"),
        Column("is_outlier", "bool", False, "The lap is flagged as an outlier (see outlier_reason)"),
        Column("outlier_reason", "text", True, "Comma-joined reasons (no_time, too_fast, too_slow, statistical, "
               "first_lap, in_lap, out_lap, safety_car, red_flag, vsc, neutralised); NULL when not an outlier"),
    ),
    primary_key=("season", "round", "driver_id", "lap_number"),
    partition_by=RACE_PARTITION,
    indexes=(("race_date",), ("driver_id",)),
)

TELEMETRY_FEATURES = Table(
    name="telemetry_features",
    description="One row per (driver, lap) aggregate of the raw telemetry Parquet (the per-sample table "
    "lives in the blob store).",
    columns=(
        *race_key_columns(),
        Column("race_id", "text", False, "Race partition key 'YYYY-RR'"),
        Column("driver_number", "int32", False, "Car number"),
        Column("driver_code", "text", True, "Three-letter driver code"),
        Column("lap_number", "int32", False, "Lap number (1-based)"),
        Column("throttle_mean", "float64", True, "Mean throttle over the lap's samples (NaN samples skipped)",
               unit="%"),
        Column("throttle_std", "float64", True, "Population standard deviation of throttle over the lap",
               unit="%"),
        Column("speed_max", "float64", True, "Highest speed in the lap", unit="km/h"),
        Column("speed_mean", "float64", True, "Mean speed over the lap's samples", unit="km/h"),
        Column("brake_events", "int32", False, "Brake off→on transitions within the lap"),
        Column("drs_open_share", "float64", True, "Share of samples with a known DRS code that is open (10/12/14)"),
        Column("sample_count", "int32", False, "Telemetry samples in the lap"),
        Column("gap_samples", "int32", False, "Samples with a NULL channel (long gaps)"),
        Column("interpolated_samples", "int32", False, "Samples interpolated over a short gap (< 1 s)"),
    ),
    primary_key=("season", "round", "driver_number", "lap_number"),
    partition_by=RACE_PARTITION,
)

TABLES = (LAP_FEATURES, TELEMETRY_FEATURES)
