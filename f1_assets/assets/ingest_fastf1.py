"""FastF1 ingest assets, partitioned by race (2018+), with their asset checks.

- `fastf1_laps`: FastF1's session laps (stints, compounds, tyre life, pit in/out, track status) →
  warehouse table `fastf1_laps` (one partition swapped atomically) and Parquet
  `fastf1/laps/season=YYYY/round=RR/laps.parquet` in the blob store.
- `raw_telemetry`: car data + position merged per driver and tagged with lap numbers → Parquet
  `telemetry/season=YYYY/round=RR/telemetry.parquet` (one race in memory at a time).

Both use the `fastf1` resource (`FastF1Resource`), pool `fastf1`, and report `live_timing_available`
(ERROR, deliberately not blocking: `lap_features` is built without FastF1 data):
- passes for a complete load, and as "not applicable" with the reason for a race before 2018 or one
  FastF1 has no session for (the asset materializes empty);
- fails, naming the streams, when the live-timing host answered without some of them; fails with
  `retryable: true` and the URLs when a host could not be reached after the resource's in-step
  retries (`fastf1_retry_sensor` tries again later). With nothing stored yet the asset materializes
  what exists (possibly nothing), so the rest of the race's run goes on.
When something is stored and the upstream now has less (missing streams, unreachable, no session,
fewer rows) the step fails with a message naming both and writes nothing, unless the run carries the
tag `f1/allow_shrink=true`. Malformed live-timing lines fail the step the same way. The ERROR rules on
the rows themselves are blocking checks, evaluated before writing (`f1_assets.assets.metadata.reject`).
The checks are declared with `check_specs` and their results returned with the materialization, so
`CHECKS` is empty; definitions import `ASSETS` and `CHECKS` from here.
"""

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.metadata import (
    ALLOW_SHRINK_TAG,
    allow_shrink,
    blocking_failures,
    check_specs,
    describe_failures,
    reject,
)
from f1_assets.partitions import RaceKey, parse_race_key, races_partitions
from f1_assets.resources.fastf1 import (
    TELEMETRY_STREAMS,
    FastF1DataError,
    FastF1NoSession,
    FastF1Resource,
    FastF1UpstreamError,
    LoadedRace,
)
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
LIVE_TIMING_CHECK = "live_timing_available"
# the streams each asset is made of (raw_telemetry tags samples with laps from TimingData)
TELEMETRY_ASSET_STREAMS = (*TELEMETRY_STREAMS, "TimingData", "DriverList")

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


Outcome = LoadedRace | FastF1NoSession | FastF1UpstreamError


def _load(fastf1: FastF1Resource, race: RaceKey, *, telemetry: bool) -> Outcome:
    try:
        return fastf1.load_race(race, laps=True, telemetry=telemetry)
    except (FastF1NoSession, FastF1UpstreamError) as outcome:
        return outcome
    except FastF1DataError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


@dataclass(frozen=True)
class LiveTiming:
    """What FastF1's upstream gave one asset for one race: the `live_timing_available` check.

    state: complete | not_applicable (before 2018, no session) | missing_streams (the host answered
    without them) | unreachable (retryable) | unavailable (no schedule backend has the season).
    """

    state: str
    reason: str | None = None
    missing: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    attempts: int = 1

    @classmethod
    def of(cls, outcome: Outcome, streams: Iterable[str] | None = None) -> "LiveTiming":
        """The state of `outcome`, judged on `streams` (None: every stream the load missed)."""
        if isinstance(outcome, FastF1NoSession):
            return cls("not_applicable", outcome.reason)
        if isinstance(outcome, FastF1UpstreamError):
            return cls("unreachable" if outcome.retryable else "unavailable", outcome.reason,
                       urls=outcome.urls, attempts=outcome.attempts)
        wanted = set(streams) if streams is not None else None
        missing = tuple(s for s in outcome.missing_streams if wanted is None or s in wanted)
        if missing:
            not_served = [s for s in missing if s in outcome.not_served]
            return cls("missing_streams", f"FastF1 got no usable {', '.join(missing)} from the live-timing host "
                       f"for {outcome.api_path or 'the race session'}"
                       + (f" (not served: {', '.join(not_served)})" if not_served else ""), missing=missing)
        return cls("complete")

    @property
    def passed(self) -> bool:
        return self.state in ("complete", "not_applicable")

    @property
    def retryable(self) -> bool:
        return self.state == "unreachable"

    def metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = {"live_timing": self.state, "retryable": self.retryable,
                              "missing_streams": ", ".join(self.missing) or "none"}
        if self.reason:
            md["live_timing_reason"] = self.reason
        if self.urls:
            md["unreachable_urls"] = dg.MetadataValue.json(_keys(self.urls))
            md["attempts"] = self.attempts
        return md

    def check(self, asset: str) -> dg.AssetCheckResult:
        description = {
            "complete": "every stream this asset reads was served",
            "not_applicable": f"not applicable: {self.reason}",
        }.get(self.state, self.reason or self.state)
        return dg.AssetCheckResult(check_name=LIVE_TIMING_CHECK, asset_key=asset, passed=self.passed,
                                   severity=dg.AssetCheckSeverity.ERROR, description=description,
                                   metadata=self.metadata())


def _refusal(what: str, race: RaceKey, reason: str, stored: str) -> str:
    return (f"{what} for race {race.key}: {reason}. What is already stored ({stored}) is kept; nothing was "
            f"written. Re-run when the upstream is complete (or with tag {ALLOW_SHRINK_TAG}=true to accept less).")


# ------------------------------------------------------------------------------------ fastf1_laps

LAPS_RULES = {
    "lap_numbers_within_race": ("ERROR", "Every lap number is 1..the race's laps (Jolpica results, else FastF1)"),
    "drivers_in_results": ("ERROR", "Every FastF1 driver is in the race's Jolpica results"),
    LIVE_TIMING_CHECK: ("ERROR", "FastF1 served every stream the laps are made of (2018+ races FastF1 "
                                 "has a session for); failures name the missing streams or the unreachable host"),
}
LAPS_CHECK_SPECS = check_specs("fastf1_laps", LAPS_RULES, non_blocking=[LIVE_TIMING_CHECK])


@dg.asset(
    partitions_def=races_partitions,
    kinds={"pandas", "parquet", "postgres"},
    pool="fastf1",
    group_name=GROUP,
    deps=["raw_results"],
    description="FastF1 session laps per race (2018+): stints, compounds, tyre life, pit in/out, track status.",
    check_specs=LAPS_CHECK_SPECS,
)
def fastf1_laps(
    context: dg.AssetExecutionContext,
    fastf1: FastF1Resource,
    warehouse: WarehouseResource,
    blob_store: BlobStoreResource,
) -> Iterator[Any]:
    race = parse_race_key(context.partition_key)
    wh, store = warehouse.get(), blob_store.get()
    partition = {"season": race.season, "round": race.round}
    outcome = _load(fastf1, race, telemetry=False)
    live = LiveTiming.of(outcome, None)
    results = _results(wh, race)
    rows = _lap_rows(outcome, results) if isinstance(outcome, LoadedRace) else empty_rows()
    total_laps = outcome.total_laps if isinstance(outcome, LoadedRace) else None
    checks = [*laps_checks(rows, results, total_laps), live.check("fastf1_laps")]

    stored = wh.count("fastf1_laps", partition)
    kept = f"{stored} rows" if stored else "nothing"
    blocked = blocking_failures(checks, LAPS_CHECK_SPECS)
    if blocked:
        yield from reject(checks, f"fastf1_laps for race {race.key}: {describe_failures(blocked)}. Nothing was "
                                  f"written; what is stored ({kept}) is kept.")
    shrink = allow_shrink(context)
    if stored and not shrink and (not live.passed or len(rows) < stored):
        reason = live.reason if not live.passed else (
            f"{len(rows)} rows now, fewer than stored" + (f" ({live.reason})" if live.reason else ""))
        yield from reject([live.check("fastf1_laps")], _refusal("FastF1 laps", race, reason, kept))

    url = None
    if len(rows) or stored:
        wh.replace_partition("fastf1_laps", rows, partition, allow_shrink=shrink)
    if len(rows):
        url = store.put(laps_blob_key(race), to_parquet_bytes(rows), "application/vnd.apache.parquet")
    elif stored:
        store.delete(laps_blob_key(race))
    reason = None
    if not len(rows):
        reason = live.reason if live.state != "complete" else "FastF1 returned no laps"
    yield _laps_result(race, rows, checks, live, reason=reason, url=url)


def _lap_rows(loaded: LoadedRace, results: pd.DataFrame) -> pd.DataFrame:
    driver_ids = {}
    if len(loaded.results) and "DriverId" in loaded.results:
        driver_ids = loaded.results["DriverId"].dropna().to_dict()
    if len(results):  # the warehouse's Jolpica results win over FastF1's copy
        driver_ids |= {str(int(n)): d for n, d in zip(results["driver_number"], results["driver_id"], strict=True)
                       if pd.notna(n)}
    return laps_to_rows(loaded.laps, loaded.race.season, loaded.race.round, driver_ids)


def _laps_result(
    race: RaceKey,
    rows: pd.DataFrame,
    checks: list[dg.AssetCheckResult],
    live: LiveTiming,
    *,
    reason: str | None,
    url: str | None,
) -> dg.MaterializeResult:
    metadata: dict[str, Any] = {
        "dagster/row_count": len(rows),
        "dagster/column_schema": FASTF1_LAPS_SCHEMA,
        "race": race.key,
        "drivers": int(rows["driver_number"].nunique()) if len(rows) else 0,
        **live.metadata(),
    }
    if reason:
        metadata["empty_reason"] = reason
    if url:
        metadata["parquet"] = dg.MetadataValue.path(url)
    if len(rows):
        sc = rows["track_status"].fillna("").str.contains("4")
        metadata["safety_car_laps"] = sorted(int(n) for n in rows.loc[sc, "lap_number"].unique())
        metadata["stints"] = dg.MetadataValue.json(stints_by_driver(rows))
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


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

TELEMETRY_RULES = {
    "throttle_range": ("ERROR", "Throttle is 0–100 %"),
    "speed_range": ("ERROR", "Speed is 0–400 km/h"),
    "gear_range": ("ERROR", "nGear is 0–8"),
    "lap_numbers_within_race": ("ERROR", "Tagged lap numbers are 1..the race's laps"),
    "completeness": ("WARN", f"Per driver, ≥ {COMPLETENESS_MIN:.0%} of samples have every channel"),
    "drivers_in_results": ("ERROR", "Every telemetry driver is in the race's Jolpica results"),
    LIVE_TIMING_CHECK: ("ERROR", "FastF1 served car data, position and timing data (2018+ races FastF1 has "
                                 "a session for); failures name the missing streams or the unreachable host"),
}
TELEMETRY_CHECK_SPECS = check_specs("raw_telemetry", TELEMETRY_RULES, non_blocking=[LIVE_TIMING_CHECK])
NO_TELEMETRY = TelemetryStats(0, 0, 0, 0, 0)


@dg.asset(
    partitions_def=races_partitions,
    kinds={"pandas", "parquet"},
    pool="fastf1",
    group_name=GROUP,
    deps=[fastf1_laps],
    description="Car data + position merged per driver, tagged with lap numbers (one Parquet per race, 2018+).",
    check_specs=TELEMETRY_CHECK_SPECS,
)
def raw_telemetry(
    context: dg.AssetExecutionContext,
    fastf1: FastF1Resource,
    warehouse: WarehouseResource,
    blob_store: BlobStoreResource,
) -> Iterator[Any]:
    race = parse_race_key(context.partition_key)
    store = blob_store.get()
    key = telemetry_blob_key(race)
    outcome = _load(fastf1, race, telemetry=True)
    live = LiveTiming.of(outcome, TELEMETRY_ASSET_STREAMS)
    results = _results(warehouse.get(), race)

    frame, stats, race_laps = empty_telemetry(), NO_TELEMETRY, None
    if isinstance(outcome, LoadedRace) and (outcome.car_data or outcome.pos_data):
        codes = {}
        if len(outcome.results) and "Abbreviation" in outcome.results:
            codes = {str(k): v for k, v in outcome.results["Abbreviation"].dropna().items()}
        laps = outcome.laps
        frame, stats = merge_race_telemetry(outcome.car_data, outcome.pos_data, laps, codes)
        race_laps = int(laps["LapNumber"].max()) if len(laps) else outcome.total_laps
    checks = [*telemetry_checks(frame, results, race_laps), live.check("raw_telemetry")]

    stored = f"telemetry Parquet {store.url(key)}" if store.exists(key) else None
    blocked = blocking_failures(checks, TELEMETRY_CHECK_SPECS)
    if blocked:
        yield from reject(checks, f"raw_telemetry for race {race.key}: {describe_failures(blocked)}. Nothing "
                                  f"was written; what is stored ({stored or 'nothing'}) is kept.")
    if stored and not allow_shrink(context) and (not live.passed or frame.empty):
        yield from reject([live.check("raw_telemetry")],
                          _refusal("telemetry", race, live.reason or "no telemetry now", stored))

    url, size = None, 0
    if len(frame):
        data = to_parquet_bytes(frame)
        url, size = store.put(key, data, "application/vnd.apache.parquet"), len(data)
    elif stored:
        store.delete(key)
    reason = None
    if frame.empty:
        reason = live.reason if live.state != "complete" else "FastF1 returned no car telemetry"
    yield _telemetry_result(race, stats, checks, live, reason=reason, url=url, size=size)


def _telemetry_result(
    race: RaceKey,
    stats: TelemetryStats,
    checks: list[dg.AssetCheckResult],
    live: LiveTiming,
    *,
    reason: str | None,
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
        **live.metadata(),
    }
    if reason:
        metadata["empty_reason"] = reason
    if url:
        metadata["parquet"] = dg.MetadataValue.path(url)
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


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
