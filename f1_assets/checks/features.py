"""Quality rules of the feature layer: pandera schemas and pure check functions.

Each check takes DataFrames and returns a `CheckOutcome` of its rule in `f1_assets.checks.rules`
(`LAP_FEATURES`, `TELEMETRY_FEATURES`: name, severity, description declared once), with counts and
at most `MAX_KEYS` failing keys; the feature assets turn outcomes into `AssetCheckResult`s.

Rules (DESIGN.md "Quality rules"):
- lap time 30 s–300 s: WARN — such laps stay in the table, flagged `is_outlier`.
- fuel_remaining 0–150 kg: ERROR.
- position ≥ 1 and ≤ the race's number of starters: ERROR. Starters = result rows with a grid slot
  (`grid` not NULL; 0 = pit-lane start counts) that did not withdraw / fail to start or qualify
  (`position_text` not 'W'/'F', `status` not 'Did not start'/'Withdrawn'/'Did not qualify'/
  'Did not prequalify'). Era-independent: 30+ starters in the 1950s are fine.
- pit stops per result 0–5: WARN above 5 (wet races have more).
- feature completeness > 95 % non-NULL per feature column: ERROR. The FastF1-only columns
  (`track_status`, `safety_car`) are reported but not judged: lap_features is built from Jolpica
  whether or not FastF1 delivered, so its FastF1 columns are optional (issue 9).
- FastF1 coverage: with FastF1 laps for the race, > 95 % of rows carry FastF1's track status: WARN
  (FastF1's own availability is the ERROR check `live_timing_available` on fastf1_laps).
- every lap_features row joins its race (season, round in raw_races, race_id = 'YYYY-RR'): ERROR.
- telemetry: throttle 0–100 %, speed 0–400 km/h on the per-lap aggregates: ERROR.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa

from f1_assets.checks.rules import COMPLETENESS_MIN, LAP_FEATURES, MAX_KEYS, TELEMETRY_FEATURES, CheckOutcome
from f1_assets.tables import table
from f1_assets.transforms.jolpica import starters

LAP_KEY = list(table("lap_features").primary_key)
TELEMETRY_KEY = list(table("telemetry_features").primary_key)
FASTF1_ONLY_COLUMNS = ("track_status", "safety_car", "sector1_ms", "sector2_ms", "sector3_ms", "air_temp_c",
                       "track_temp_c", "humidity_pct", "rainfall")
# columns NULL by design on most rows: not a completeness matter
COMPLETENESS_EXEMPT = ("outlier_reason",)
RULES = {**LAP_FEATURES, **TELEMETRY_FEATURES}


def _keys(frame: pd.DataFrame, cols: list[str]) -> list[str]:
    cols = [c for c in cols if c in frame.columns]
    head = frame[cols].head(MAX_KEYS)
    return ["/".join(str(v) for v in row) for row in head.itertuples(index=False, name=None)]


def _outcome(name: str, description: str, bad: pd.DataFrame, total: int, key: list[str], **extra: Any
             ) -> CheckOutcome:
    meta = {"rows_checked": int(total), "failing_rows": int(len(bad)), "failing_keys": _keys(bad, key), **extra}
    return RULES[name].outcome(len(bad) == 0, meta, description)


# ------------------------------------------------------------------------- pandera schemas

# dtypes, nullability, the unique primary key and strictness come from the table declarations;
# these are the value rules on top
LAP_FEATURES_SCHEMA = table("lap_features").pandera_schema({
    "round": [pa.Check.in_range(1, 30)],
    "race_id": [pa.Check.str_matches(r"^\d{4}-\d{2}$")],
    "lap_number": [pa.Check.ge(1)],
    "lap_time_ms": [pa.Check.gt(0)],
    "tire_compound_std": [pa.Check.isin(["SOFT", "MEDIUM", "HARD", "INTERMEDIATE", "WET", "UNKNOWN"])],
    "stint": [pa.Check.ge(1)],
    "tire_age": [pa.Check.ge(1)],
})

TELEMETRY_FEATURES_SCHEMA = table("telemetry_features").pandera_schema({
    "lap_number": [pa.Check.ge(0)],
    "brake_events": [pa.Check.ge(0)],
    "drs_open_share": [pa.Check.in_range(0, 1)],
    "sample_count": [pa.Check.ge(1)],
    "gap_samples": [pa.Check.ge(0)],
    "interpolated_samples": [pa.Check.ge(0)],
})


def check_schema(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> CheckOutcome:
    """Pandera validation (lazy: every violation counted): ERROR."""
    name = f"{schema.name}_schema"
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        failures = [f"{r.column}: {r.check} ({r.failure_case})" for r in cases.head(MAX_KEYS).itertuples()]
        return RULES[name].outcome(False, {"rows_checked": len(frame), "failing_rows": int(len(cases)),
                                           "failing_keys": failures})
    return RULES[name].outcome(True, {"rows_checked": len(frame), "failing_rows": 0, "failing_keys": []})


# ------------------------------------------------------------------------- lap_features rules


def check_lap_time_range(lap_features: pd.DataFrame, lo_ms: int = 30_000, hi_ms: int = 300_000) -> CheckOutcome:
    """Lap times outside 30–300 s: WARN (kept and flagged as outliers, not dropped)."""
    t = lap_features["lap_time_ms"]
    bad = lap_features[t.notna() & ((t < lo_ms) | (t > hi_ms))]
    unflagged = int((~bad["is_outlier"].astype(bool)).sum()) if "is_outlier" in bad else len(bad)
    return _outcome("lap_time_range", f"lap_time_ms in [{lo_ms}, {hi_ms}] (outliers flagged, kept)",
                    bad, len(lap_features), LAP_KEY, unflagged_rows=unflagged,
                    outlier_rows=int(lap_features["is_outlier"].sum()) if "is_outlier" in lap_features else 0)


def check_fuel_range(lap_features: pd.DataFrame, lo: float = 0.0, hi: float = 150.0) -> CheckOutcome:
    """fuel_remaining (kg, estimate) in [0, 150]: ERROR."""
    f = lap_features["fuel_remaining"]
    bad = lap_features[f.notna() & ((f < lo) | (f > hi))]
    return _outcome("fuel_range", f"fuel_remaining in [{lo}, {hi}] kg", bad, len(lap_features), LAP_KEY)


def check_position_range(lap_features: pd.DataFrame, results: pd.DataFrame) -> CheckOutcome:
    """1 ≤ position ≤ starters (see `starters`): ERROR."""
    n = starters(results)
    p = lap_features["position"]
    bad = lap_features[p.notna() & ((p < 1) | (p > n))]
    return _outcome("position_range", "1 <= position <= starters", bad, len(lap_features), LAP_KEY,
                    starters=n)


def check_pit_stops_per_result(pit_stops: pd.DataFrame, results: pd.DataFrame, max_stops: int = 5) -> CheckOutcome:
    """0–5 pit stops per result row: WARN above 5 (wet races have more)."""
    per = pit_stops.groupby("driver_id").size() if len(pit_stops) else pd.Series(dtype="int64")
    per = per.reindex(results["driver_id"].unique(), fill_value=0).rename("stops").reset_index()
    per.columns = ["driver_id", "stops"]
    bad = per[per["stops"] > max_stops]
    return _outcome("pit_stops_per_result", f"0..{max_stops} pit stops per result", bad, len(per),
                    ["driver_id", "stops"], max_stops_seen=int(per["stops"].max()) if len(per) else 0)


def check_completeness(lap_features: pd.DataFrame, has_fastf1: bool, minimum: float = COMPLETENESS_MIN
                       ) -> CheckOutcome:
    """Every feature column > 95 % non-NULL: ERROR; failing keys are the columns below the bar.

    `outlier_reason` is NULL by design (not an outlier); `track_status`/`safety_car` come from FastF1
    only and are optional (see `check_fastf1_coverage`): both are reported, not judged. An empty frame
    passes (a race without lap timings has no features; the row-count metadata shows it).
    """
    exempt = set(COMPLETENESS_EXEMPT) | set(FASTF1_ONLY_COLUMNS)
    if lap_features.empty:
        share = {c: None for c in lap_features.columns}
    else:
        share = {c: round(float(v), 4) for c, v in lap_features.notna().mean().items()}
    judged = {c: s for c, s in share.items() if c not in exempt and s is not None}
    bad = sorted(c for c, s in judged.items() if s <= minimum)
    return RULES["feature_completeness"].outcome(not bad, description=f"non-NULL share > {minimum} per column",
                                                 metadata={
        "rows_checked": len(lap_features),
        "failing_columns": len(bad),
        "failing_keys": bad[:MAX_KEYS],
        "completeness": share,
        "excluded_columns": sorted(exempt),
        "has_fastf1": has_fastf1,
    })


def check_fastf1_coverage(lap_features: pd.DataFrame, has_fastf1: bool, minimum: float = COMPLETENESS_MIN
                          ) -> CheckOutcome:
    """With FastF1 laps for the race, > 95 % of rows have FastF1's track status: WARN (failing keys are
    rows without it). Without FastF1 laps the FastF1 columns are NULL by design: passes, says so."""
    if not has_fastf1:
        return RULES["fastf1_coverage"].outcome(True, {"rows_checked": len(lap_features), "failing_rows": 0,
                                                       "failing_keys": [], "has_fastf1": False},
                                                "no FastF1 laps for this race: FastF1 columns NULL")
    bad = lap_features[lap_features["track_status"].isna()]
    share = 1 - len(bad) / len(lap_features) if len(lap_features) else 1.0
    return RULES["fastf1_coverage"].outcome(share > minimum, {
        "rows_checked": len(lap_features), "failing_rows": int(len(bad)), "failing_keys": _keys(bad, LAP_KEY),
        "coverage": round(share, 4), "has_fastf1": True}, f"FastF1 track status on > {minimum} of rows")


def check_rows_join_race(lap_features: pd.DataFrame, races: pd.DataFrame) -> CheckOutcome:
    """Every row's (season, round) is a raw_races row and its race_id is that race's key: ERROR."""
    known = races[["season", "round"]].drop_duplicates().astype("int64")
    merged = lap_features.merge(known.assign(_race=True), on=["season", "round"], how="left")
    expected = (merged["season"].astype("int64").map("{:04d}".format) + "-"
                + merged["round"].astype("int64").map("{:02d}".format)) if len(merged) else merged["race_id"]
    bad = merged[merged["_race"].isna().to_numpy() | (merged["race_id"] != expected).to_numpy()]
    return _outcome("rows_join_race", "every row joins its raw_races row", bad, len(lap_features),
                    LAP_KEY)


# ------------------------------------------------------------------------- telemetry_features rules


def check_telemetry_ranges(telemetry_features: pd.DataFrame) -> CheckOutcome:
    """throttle_mean in [0, 100] %, speed_max/speed_mean in [0, 400] km/h: ERROR (NULL = a gap, ok)."""
    tf = telemetry_features

    def out(col: str, lo: float, hi: float) -> pd.Series:
        v = tf[col]
        return v.notna() & ((v < lo) | (v > hi))

    mask = out("throttle_mean", 0, 100) | out("speed_max", 0, 400) | out("speed_mean", 0, 400)
    bad = tf[mask]
    return _outcome("telemetry_ranges", "throttle 0-100 %, speed 0-400 km/h", bad, len(tf),
                    TELEMETRY_KEY, throttle_out_of_range=int(out("throttle_mean", 0, 100).sum()),
                    speed_out_of_range=int((out("speed_max", 0, 400) | out("speed_mean", 0, 400)).sum()))


def lap_feature_checks(lap_features: pd.DataFrame, results: pd.DataFrame, pit_stops: pd.DataFrame,
                       races: pd.DataFrame, has_fastf1: bool) -> list[CheckOutcome]:
    """Every lap_features rule, in the order of `LAP_FEATURE_CHECK_NAMES`."""
    return [
        check_schema(lap_features, LAP_FEATURES_SCHEMA),
        check_lap_time_range(lap_features),
        check_fuel_range(lap_features),
        check_position_range(lap_features, results),
        check_pit_stops_per_result(pit_stops, results),
        check_completeness(lap_features, has_fastf1),
        check_rows_join_race(lap_features, races),
        check_fastf1_coverage(lap_features, has_fastf1),
    ]


def check_g_force_range(telemetry_features: pd.DataFrame) -> CheckOutcome:
    """Laps with samples beyond |g| <= 6 (g_over_limit_samples > 0): WARN, flagged, never dropped."""
    over = telemetry_features["g_over_limit_samples"].fillna(0)
    return _outcome("g_force_range", "|lateral g|, |longitudinal g| <= 6", telemetry_features[over > 0],
                    len(telemetry_features), TELEMETRY_KEY, samples_over_limit=int(over.sum()))


def telemetry_feature_checks(telemetry_features: pd.DataFrame) -> list[CheckOutcome]:
    return [check_schema(telemetry_features, TELEMETRY_FEATURES_SCHEMA), check_telemetry_ranges(telemetry_features),
            check_g_force_range(telemetry_features)]
