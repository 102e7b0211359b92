"""The ML layer's table: `driver_profiles`, formulas in `f1_assets.transforms.profiles`.

The split views `train`, `validation`, `test` over lap_features are created by the `split_views`
asset (boundaries are run config); they are views, not tables, and are not declared here.
"""

from __future__ import annotations

from f1_assets.tables.contract import Column, Table

DRIVER_PROFILES = Table(
    name="driver_profiles",
    description="One row per driver seen in the train split; replaced whole. A score is NULL when the "
    "driver has too little train-split data for it, and null_reason says which and why.",
    columns=(
        Column("driver_id", "text", False, "Jolpica driverId"),
        Column("driver_code", "text", True, "Three-letter driver code (latest train-split result, else laps)"),
        Column("name", "text", True, "Given and family name (latest train-split result)"),
        Column("aggression", "float64", True, "On-track passes made / passes expected at the race field's rate "
               "(1 = field-typical)"),
        Column("consistency", "float64", True, "Field's median lap-to-lap spread / driver's spread, geometric mean "
               "over races (1 = field-typical, higher = steadier)"),
        Column("pressure_response", "float64", True, "Share of pressure laps (car behind within the gap) held, "
               "minus the race field's share (0 = field-typical)"),
        Column("tire_management", "float64", True, "Team-mates' degradation minus the driver's, per lap of tyre "
               "age (> 0 = degrades less)", unit="ms/lap"),
        Column("career_races", "int32", False, "Train-split races with a classification row"),
        Column("data_quality", "float64", True, "Clean laps / laps completed per raw_results, in [0, 1]"),
        Column("laps_used", "int32", False, "Clean (non-outlier, timed) train-split laps"),
        Column("races_used", "int32", False, "Train-split races with lap data"),
        Column("first_race_id", "text", True, "First train-split race of the driver ('YYYY-RR')"),
        Column("last_race_id", "text", True, "Last train-split race of the driver ('YYYY-RR')"),
        Column("null_reason", "text", True, "'; '-joined '<score>: <reason>' for every NULL score, else NULL"),
        Column("updated_at", "timestamptz", True, "When the profiles were written", default="CURRENT_TIMESTAMP"),
    ),
    primary_key=("driver_id",),
    partition_by=(),
)

TABLES = (DRIVER_PROFILES,)
