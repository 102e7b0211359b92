"""FastF1 ingest assets, partitioned by race (2018+), with their asset checks.

- `fastf1_laps`: FastF1's session laps (stints, compounds, tyre life, pit in/out, track status) →
  Parquet `fastf1/laps/season=YYYY/round=RR/laps.parquet` in the blob store and warehouse table
  `fastf1_laps` (one partition swapped atomically).
- `raw_telemetry`: car data + position merged per driver and tagged with lap numbers → Parquet
  `telemetry/season=YYYY/round=RR/telemetry.parquet` (one race in memory at a time).

Both use the `fastf1` resource (`FastF1Resource`), pool `fastf1`. A race before 2018 or without data
materializes EMPTY with the reason in metadata; partly available data names the missing streams.
When the upstream now has less than what is stored (missing streams, malformed lines) the step fails
with a message and writes nothing, so the previous version stays. The checks are declared with
`check_specs` and their results returned with the materialization, so `CHECKS` is empty; definitions
import `ASSETS` and `CHECKS` from here.
"""


import io
from collections.abc import Iterable
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.partitions import RaceKey, parse_race_key, races_partitions
from f1_assets.resources.fastf1 import FastF1DataError, FastF1Resource, FastF1Unavailable, LoadedRace
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.storage.warehouse import Warehouse
from f1_assets.transforms.fastf1_laps import FASTF1_LAPS_COLUMNS, empty_rows, laps_to_rows, stints_by_driver
from f1_assets.transforms.telemetry import (
    TELEMETRY_COLUMNS,
    TelemetryStats,
    completeness_by_driver,
    empty_telemetry,
    merge_race_telemetry,
)

GROUP = "ingest_fastf1"
MAX_FAILING_KEYS = 50  # failing keys listed in check metadata (the count is always complete)
COMPLETENESS_MIN = 0.95

FASTF1_LAPS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn(name, type_)
        for name, type_ in zip(
            FASTF1_LAPS_COLUMNS,
            ["INTEGER", "INTEGER", "INTEGER", "TEXT", "TEXT", "INTEGER", "BIGINT", "INTEGER", "TEXT", "TEXT",
             "BOOLEAN", "INTEGER", "BIGINT", "BIGINT", "TEXT", "BOOLEAN", "BOOLEAN"],
            strict=True,
        )
    ]
)
TELEMETRY_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn(name, type_)
        for name, type_ in zip(
            TELEMETRY_COLUMNS,
            ["int64", "string", "Int64", "datetime64[ns]", "timedelta64[ns]"] + ["float64"] * 9 + ["bool"],
            strict=True,
        )
    ]
)


def laps_blob_key(race: RaceKey) -> str:
    return f"fastf1/laps/season={race.season:04d}/round={race.round:02d}/laps.parquet"


def telemetry_blob_key(race: RaceKey) -> str:
    return f"telemetry/season={race.season:04d}/round={race.round:02d}/telemetry.parquet"


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _keys(values: Iterable[Any]) -> list[Any]:
    return list(values)[:MAX_FAILING_KEYS]


def _results(warehouse: Warehouse, race: RaceKey) -> pd.DataFrame:
    return warehouse.query(
        "SELECT driver_number, driver_code, driver_id, laps FROM raw_results WHERE season = %s AND round = %s",
        [race.season, race.round],
    )


def _load(fastf1: FastF1Resource, race: RaceKey, *, telemetry: bool) -> LoadedRace | FastF1Unavailable:
    try:
        return fastf1.load_race(race, laps=True, telemetry=telemetry)
    except FastF1Unavailable as unavailable:
        return unavailable
    except FastF1DataError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _refuse_to_shrink(what: str, race: RaceKey, stored: str | None, reason: str) -> None:
    """Fail instead of replacing a stored version with less data than it holds."""
    if stored:
        raise dg.Failure(
            description=(
                f"{what} for race {race.key}: {reason}. What is already stored ({stored}) is kept; "
                "nothing was written. Re-run when the upstream is complete."
            ),
            allow_retries=False,
        )


# ------------------------------------------------------------------------------------ fastf1_laps


@dg.asset(
    partitions_def=races_partitions,
    kinds={"pandas", "parquet", "postgres"},
    pool="fastf1",
    group_name=GROUP,
    deps=["raw_results"],
    description="FastF1 session laps per race (2018+): stints, compounds, tyre life, pit in/out, track status.",
    check_specs=[
        dg.AssetCheckSpec("lap_numbers_within_race", asset="fastf1_laps",
                          description="Every lap number is 1..the race's laps (Jolpica results, else FastF1)."),
        dg.AssetCheckSpec("drivers_in_results", asset="fastf1_laps",
                          description="Every FastF1 driver is in the race's Jolpica results."),
    ],
)
def fastf1_laps(
    context: dg.AssetExecutionContext,
    fastf1: FastF1Resource,
    warehouse: WarehouseResource,
    blob_store: BlobStoreResource,
) -> dg.MaterializeResult:
    race = parse_race_key(context.partition_key)
    wh, store = warehouse.get(), blob_store.get()
    partition = {"season": race.season, "round": race.round}
    loaded = _load(fastf1, race, telemetry=False)
    results = _results(wh, race)

    if isinstance(loaded, FastF1Unavailable):
        stored = wh.count("fastf1_laps", partition)
        _refuse_to_shrink("FastF1 laps", race, f"{stored} rows" if stored else None, loaded.reason)
        return _laps_result(race, empty_rows(), results, None, reason=loaded.reason,
                            missing=loaded.missing_streams, url=None)

    session = loaded.session
    driver_ids = {}
    if len(session.results) and "DriverId" in session.results:
        driver_ids = session.results["DriverId"].dropna().to_dict()
    if len(results):  # the warehouse's Jolpica results win over FastF1's copy
        driver_ids |= {str(int(n)): d for n, d in zip(results["driver_number"], results["driver_id"], strict=True)
                       if pd.notna(n)}
    laps = session.laps if "TimingData" not in loaded.missing_streams else pd.DataFrame()
    rows = laps_to_rows(laps, race.season, race.round, driver_ids)
    if loaded.missing_streams:
        stored = wh.count("fastf1_laps", partition)
        _refuse_to_shrink("FastF1 laps", race, f"{stored} rows" if stored else None,
                          "missing streams " + ", ".join(loaded.missing_streams))
    url = None
    if len(rows):
        url = store.put(laps_blob_key(race), to_parquet_bytes(rows), "application/vnd.apache.parquet")
        wh.replace_partition("fastf1_laps", rows, partition)
    reason = None if len(rows) else "FastF1 returned no laps"
    total_laps = getattr(session, "total_laps", None)
    return _laps_result(race, rows, results, total_laps, reason=reason, missing=loaded.missing_streams, url=url)


def _laps_result(
    race: RaceKey,
    rows: pd.DataFrame,
    results: pd.DataFrame,
    fastf1_total_laps: Any,
    *,
    reason: str | None,
    missing: tuple[str, ...],
    url: str | None,
) -> dg.MaterializeResult:
    metadata: dict[str, Any] = {
        "dagster/row_count": len(rows),
        "dagster/column_schema": FASTF1_LAPS_SCHEMA,
        "race": race.key,
        "drivers": int(rows["driver_number"].nunique()) if len(rows) else 0,
        "missing_streams": ", ".join(missing) or "none",
    }
    if reason:
        metadata["empty_reason"] = reason
    if url:
        metadata["parquet"] = dg.MetadataValue.path(url)
    if len(rows):
        sc = rows["track_status"].fillna("").str.contains("4")
        metadata["safety_car_laps"] = sorted(int(n) for n in rows.loc[sc, "lap_number"].unique())
        metadata["stints"] = dg.MetadataValue.json(stints_by_driver(rows))
    return dg.MaterializeResult(metadata=metadata, check_results=laps_checks(rows, results, fastf1_total_laps))


def laps_checks(rows: pd.DataFrame, results: pd.DataFrame, fastf1_total_laps: Any = None) -> list[dg.AssetCheckResult]:
    """The two `fastf1_laps` checks on a race's rows and its Jolpica results (possibly empty)."""
    race_laps = int(results["laps"].max()) if len(results) else None
    source = "raw_results"
    if race_laps is None and fastf1_total_laps is not None and pd.notna(fastf1_total_laps):
        race_laps, source = int(fastf1_total_laps), "FastF1 LapCount"
    if race_laps is None:
        bad = rows.iloc[0:0]
    else:
        bad = rows[(rows["lap_number"] < 1) | (rows["lap_number"] > race_laps)]
    lap_check = dg.AssetCheckResult(
        check_name="lap_numbers_within_race",
        asset_key="fastf1_laps",
        passed=len(bad) == 0,
        metadata={
            "race_laps": race_laps if race_laps is not None else "unknown",
            "race_laps_from": source if race_laps is not None else "none",
            "rows": len(rows),
            "failing_rows": len(bad),
            "failing_keys": _keys(f"{c}#{n}" for c, n in zip(bad["driver_code"], bad["lap_number"], strict=True)),
        },
    )
    return [lap_check, _drivers_in_results("fastf1_laps", rows["driver_number"] if len(rows) else [], results)]


def _drivers_in_results(asset: str, driver_numbers: Iterable[Any], results: pd.DataFrame) -> dg.AssetCheckResult:
    present = sorted({int(n) for n in driver_numbers})
    if not present:
        return dg.AssetCheckResult(check_name="drivers_in_results", asset_key=asset, passed=True,
                                   metadata={"drivers": 0, "note": "no rows to check"})
    if len(results) == 0:
        return dg.AssetCheckResult(
            check_name="drivers_in_results", asset_key=asset, passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata={"drivers": len(present), "note": "no raw_results rows for this race: materialize raw_results"},
        )
    known = {int(n) for n in results["driver_number"].dropna()}
    unknown = [n for n in present if n not in known]
    return dg.AssetCheckResult(
        check_name="drivers_in_results", asset_key=asset, passed=not unknown,
        metadata={"drivers": len(present), "results_drivers": len(known), "failing_count": len(unknown),
                  "failing_keys": _keys(unknown)},
    )


# ---------------------------------------------------------------------------------- raw_telemetry

TELEMETRY_CHECKS = [
    dg.AssetCheckSpec("throttle_range", asset="raw_telemetry", description="Throttle is 0–100 %."),
    dg.AssetCheckSpec("speed_range", asset="raw_telemetry", description="Speed is 0–400 km/h."),
    dg.AssetCheckSpec("gear_range", asset="raw_telemetry", description="nGear is 0–8."),
    dg.AssetCheckSpec("lap_numbers_within_race", asset="raw_telemetry",
                      description="Tagged lap numbers are 1..the race's laps."),
    dg.AssetCheckSpec("completeness", asset="raw_telemetry",
                      description=f"Per driver, ≥ {COMPLETENESS_MIN:.0%} of samples have every channel (WARN)."),
    dg.AssetCheckSpec("drivers_in_results", asset="raw_telemetry",
                      description="Every telemetry driver is in the race's Jolpica results."),
]


@dg.asset(
    partitions_def=races_partitions,
    kinds={"pandas", "parquet"},
    pool="fastf1",
    group_name=GROUP,
    deps=[fastf1_laps],
    description="Car data + position merged per driver, tagged with lap numbers (one Parquet per race, 2018+).",
    check_specs=TELEMETRY_CHECKS,
)
def raw_telemetry(
    context: dg.AssetExecutionContext,
    fastf1: FastF1Resource,
    warehouse: WarehouseResource,
    blob_store: BlobStoreResource,
) -> dg.MaterializeResult:
    race = parse_race_key(context.partition_key)
    store = blob_store.get()
    key = telemetry_blob_key(race)
    loaded = _load(fastf1, race, telemetry=True)
    results = _results(warehouse.get(), race)

    def previous() -> str | None:
        return f"telemetry Parquet {store.url(key)}" if store.exists(key) else None

    if isinstance(loaded, FastF1Unavailable):
        _refuse_to_shrink("telemetry", race, previous(), loaded.reason)
        return _telemetry_result(race, empty_telemetry(), TelemetryStats(0, 0, 0, 0, 0), results, None,
                                 reason=loaded.reason, missing=loaded.missing_streams, url=None, size=0)
    session = loaded.session
    missing_tel = [s for s in loaded.missing_streams if s in ("CarData.z", "Position.z")]
    if missing_tel:
        _refuse_to_shrink("telemetry", race, previous(), "missing streams " + ", ".join(missing_tel))
    car = session.car_data if "CarData.z" not in missing_tel else {}
    pos = session.pos_data if "Position.z" not in missing_tel else {}
    if not car and not pos:
        return _telemetry_result(race, empty_telemetry(), TelemetryStats(0, 0, 0, 0, 0), results, None,
                                 reason="no car telemetry: " + ", ".join(missing_tel) + " missing",
                                 missing=loaded.missing_streams, url=None, size=0)
    codes = {}
    if len(session.results) and "Abbreviation" in session.results:
        codes = {str(k): v for k, v in session.results["Abbreviation"].dropna().items()}
    laps = session.laps if "TimingData" not in loaded.missing_streams else pd.DataFrame()
    frame, stats = merge_race_telemetry(car, pos, laps, codes)
    data = to_parquet_bytes(frame)
    url = store.put(key, data, "application/vnd.apache.parquet")
    race_laps = int(laps["LapNumber"].max()) if len(laps) else None
    return _telemetry_result(race, frame, stats, results, race_laps, reason=None,
                             missing=loaded.missing_streams, url=url, size=len(data))


def _telemetry_result(
    race: RaceKey,
    frame: pd.DataFrame,
    stats: TelemetryStats,
    results: pd.DataFrame,
    fastf1_race_laps: int | None,
    *,
    reason: str | None,
    missing: tuple[str, ...],
    url: str | None,
    size: int,
) -> dg.MaterializeResult:
    metadata: dict[str, Any] = {
        "dagster/row_count": stats.rows,
        "dagster/column_schema": TELEMETRY_SCHEMA,
        "race": race.key,
        "rows": stats.rows,
        "drivers": stats.drivers,
        "samples": stats.samples,
        "interpolated": stats.interpolated,
        "gap_samples": stats.gap_samples,
        "bytes": size,
        "missing_streams": ", ".join(missing) or "none",
    }
    if reason:
        metadata["empty_reason"] = reason
    if url:
        metadata["parquet"] = dg.MetadataValue.path(url)
    return dg.MaterializeResult(metadata=metadata,
                                check_results=telemetry_checks(frame, results, fastf1_race_laps))


def telemetry_checks(
    frame: pd.DataFrame, results: pd.DataFrame, fastf1_race_laps: int | None = None
) -> list[dg.AssetCheckResult]:
    """The `raw_telemetry` checks on one race's merged frame and its Jolpica results (possibly empty)."""
    asset = "raw_telemetry"

    def sample_keys(mask: pd.Series) -> list[str]:
        bad = frame.loc[mask, ["Driver", "DriverNumber", "SessionTime"]].head(MAX_FAILING_KEYS)
        return [f"{d or n}@{t}" for d, n, t in zip(bad["Driver"], bad["DriverNumber"], bad["SessionTime"], strict=True)]

    def range_check(name: str, column: str, low: float, high: float, unit: str) -> dg.AssetCheckResult:
        values = frame[column]
        mask = values.notna() & ((values < low) | (values > high))
        return dg.AssetCheckResult(
            check_name=name, asset_key=asset, passed=not mask.any(),
            metadata={"range": f"{low:g}–{high:g} {unit}", "checked": int(values.notna().sum()),
                      "failing_count": int(mask.sum()), "failing_keys": sample_keys(mask),
                      "min": float(values.min()) if values.notna().any() else None,
                      "max": float(values.max()) if values.notna().any() else None},
        )

    checks = [
        range_check("throttle_range", "Throttle", 0, 100, "%"),
        range_check("speed_range", "Speed", 0, 400, "km/h"),
        range_check("gear_range", "nGear", 0, 8, "gears"),
    ]
    race_laps = int(results["laps"].max()) if len(results) else fastf1_race_laps
    laps = frame["LapNumber"]
    lap_mask = laps.notna() & ((laps < 1) | (laps > (race_laps if race_laps is not None else float("inf"))))
    checks.append(dg.AssetCheckResult(
        check_name="lap_numbers_within_race", asset_key=asset, passed=not lap_mask.any(),
        metadata={"race_laps": race_laps if race_laps is not None else "unknown",
                  "untagged_samples": int(laps.isna().sum()), "failing_count": int(lap_mask.sum()),
                  "failing_keys": sample_keys(lap_mask)},
    ))
    completeness = completeness_by_driver(frame)
    low = completeness[completeness["complete"] < COMPLETENESS_MIN]
    checks.append(dg.AssetCheckResult(
        check_name="completeness", asset_key=asset, passed=low.empty, severity=dg.AssetCheckSeverity.WARN,
        metadata={"threshold": COMPLETENESS_MIN, "drivers": len(completeness), "failing_count": len(low),
                  "failing_keys": _keys(f"{d or n}:{c:.3f}" for d, n, c in
                                        zip(low["Driver"], low["DriverNumber"], low["complete"], strict=True)),
                  "worst": float(completeness["complete"].min()) if len(completeness) else None},
    ))
    checks.append(_drivers_in_results(asset, frame["DriverNumber"].unique(), results))
    return checks


ASSETS = [fastf1_laps, raw_telemetry]
CHECKS: list[dg.AssetChecksDefinition] = []  # the checks run inside the assets (check_specs above)
