"""FastF1 session laps → rows of the warehouse table `fastf1_laps` (pure pandas, no I/O).

Called by the `fastf1_laps` asset (`f1_assets.assets.ingest_fastf1`) and by tests. The input is
FastF1's `session.laps` frame (columns Driver, DriverNumber, LapNumber, LapTime, Stint, Compound,
TyreLife, FreshTyre, PitInTime, PitOutTime, Sector1Time..Sector3Time, TrackStatus, IsAccurate,
Deleted, LapStartTime, Time, …) and, optionally, FastF1's `session.weather_data` (the weather columns
of each lap, `f1_assets.transforms.weather.lap_weather`: NULL without it); the output is the declared
table `fastf1_laps` (`f1_assets/tables/fastf1.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from f1_assets.tables import table
from f1_assets.transforms.weather import lap_weather

FASTF1_LAPS = table("fastf1_laps")

# Pirelli dry compounds, softest first, across eras (2018 names; 2019+ reports SOFT/MEDIUM/HARD)
DRY_COMPOUNDS_SOFTEST_FIRST = ["HYPERSOFT", "ULTRASOFT", "SUPERSOFT", "SOFT", "MEDIUM", "HARD", "SUPERHARD"]
WET_COMPOUNDS = {"INTERMEDIATE", "WET"}
STANDARD_DRY = ["SOFT", "MEDIUM", "HARD"]
FIRST_RELATIVE_NAMES_SEASON = 2019  # from 2019 the reported names are already the weekend's S/M/H


def standardize_compounds(compounds: pd.Series, season: int) -> pd.Series:
    """The seed's standardized compound per lap: SOFT/MEDIUM/HARD/INTERMEDIATE/WET/UNKNOWN.

    Dry compounds become the weekend's softest/middle/hardest where derivable: from 2019 the
    reported names already are; before, when the race used exactly three dry compounds, they rank
    softest → SOFT, middle → MEDIUM, hardest → HARD. With fewer, which of the three nominated ones
    they were is not in the data, so they are UNKNOWN rather than a guess.
    """
    names = compounds.astype("string").str.upper().str.strip()
    out = pd.Series("UNKNOWN", index=compounds.index, dtype="string")
    wet = names.isin(WET_COMPOUNDS).fillna(False).astype(bool)
    out[wet] = names[wet]
    dry = names.isin(DRY_COMPOUNDS_SOFTEST_FIRST).fillna(False).astype(bool)
    used = sorted(set(names[dry]), key=DRY_COMPOUNDS_SOFTEST_FIRST.index)
    if season >= FIRST_RELATIVE_NAMES_SEASON and set(used) <= set(STANDARD_DRY):
        out[dry] = names[dry]
    elif len(used) == 3:
        out[dry] = names[dry].map(dict(zip(used, STANDARD_DRY, strict=True)))
    return out.astype(object)


def _compound(values: pd.Series) -> pd.Series:
    """The compound as reported; FastF1's stringified missing values ('nan', '') become NULL."""
    text = values.astype(object).where(values.notna(), None)
    return text.where(~text.astype(str).str.strip().str.lower().isin(["nan", "none", ""]), None)


def _ms(values: pd.Series) -> pd.Series:
    """Timedeltas as whole milliseconds (nullable BIGINT)."""
    td = pd.to_timedelta(values)
    return (td.dt.total_seconds() * 1000).round().astype("Int64")


def _bool(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None).astype("boolean")


def laps_to_rows(
    laps: pd.DataFrame,
    season: int,
    round_: int,
    driver_ids: Mapping[str, str] | None = None,
    weather: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """FastF1 `session.laps` → `fastf1_laps` rows; `driver_ids` maps car number → Jolpica driverId;
    `weather` is FastF1's `session.weather_data` (None or empty: the weather columns are NULL)."""
    if len(laps) == 0:
        return empty_rows()
    driver_ids = {str(k): v for k, v in (driver_ids or {}).items()}
    numbers = laps["DriverNumber"].astype(str)
    rows = pd.DataFrame(
        {
            "season": np.full(len(laps), season, dtype="int32"),
            "round": np.full(len(laps), round_, dtype="int32"),
            "driver_number": pd.to_numeric(numbers).astype("int32"),
            "driver_code": laps["Driver"].astype(object),
            "driver_id": numbers.map(driver_ids).astype(object),
            "lap_number": pd.to_numeric(laps["LapNumber"]).astype("int32"),
            "lap_time_ms": _ms(laps["LapTime"]),
            "stint": pd.to_numeric(laps["Stint"]).round().astype("Int32"),
            "compound": _compound(laps["Compound"]),
            "compound_std": standardize_compounds(_compound(laps["Compound"]), season),
            "fresh_tyre": _bool(laps["FreshTyre"]),
            "tyre_life": pd.to_numeric(laps["TyreLife"]).round().astype("Int32"),
            "pit_in_time_ms": _ms(laps["PitInTime"]),
            "pit_out_time_ms": _ms(laps["PitOutTime"]),
            "track_status": laps["TrackStatus"].astype(object).where(laps["TrackStatus"].notna(), None),
            "is_accurate": _bool(laps["IsAccurate"]),
            "deleted": _bool(laps["Deleted"]),
            **{f"sector{n}_time_ms": _ms(laps[f"Sector{n}Time"]) for n in (1, 2, 3)},
        }
    )
    start = laps["LapStartTime"] if "LapStartTime" in laps else pd.Series(pd.NaT, index=laps.index)
    end = laps["Time"] if "Time" in laps else pd.Series(pd.NaT, index=laps.index)
    rows = pd.concat([rows, lap_weather(start, end, weather).set_axis(rows.index)], axis=1)
    rows["driver_id"] = rows["driver_id"].where(rows["driver_id"].notna(), None)
    return FASTF1_LAPS.conform(rows.sort_values(["driver_number", "lap_number"]).reset_index(drop=True))


def empty_rows() -> pd.DataFrame:
    return FASTF1_LAPS.empty_frame()


def stints_by_driver(rows: pd.DataFrame) -> dict[str, list[tuple[int, str | None]]]:
    """{driver_code: [(stint, compound), …]} in stint order: a compact view for metadata and tests."""
    firsts = rows.dropna(subset=["stint"]).groupby(["driver_code", "stint"], sort=True)["compound"].first()
    out: dict[str, list[tuple[int, str | None]]] = {}
    for (code, stint), compound in firsts.items():
        out.setdefault(str(code), []).append((int(stint), None if pd.isna(compound) else str(compound)))
    return out
