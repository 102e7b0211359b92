"""FastF1 ingest assets, partitioned by race (2018+), with their asset checks.

- `fastf1_laps`: FastF1's session laps (stints, compounds, tyre life, pit in/out, track status, sector
  times, and each lap's weather from the optional WeatherData stream) → warehouse table `fastf1_laps`
  through the warehouse IO manager. A race without a weather stream still materializes (weather NULL,
  `weather_reason` in the metadata); the WARN rule `weather_ranges` flags implausible weather values.
- `raw_telemetry`: car data + position merged per driver and tagged with lap numbers → Parquet
  `telemetry/season=YYYY/round=RR/telemetry.parquet` through the Parquet IO manager (one race in
  memory at a time). Each sample also gets its track position (`Distance`) and, from FastF1's circuit
  info (`FastF1Resource.circuit_corners`, optional host F1_CIRCUIT_INFO_URL), its `Corner`; without
  circuit info `Corner` is NULL and the metadata's `corners_missing_reason` names the host and URL.

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
The rules are `f1_assets.checks.rules.FASTF1_LAPS` and `RAW_TELEMETRY`, declared with `check_specs` and
reported by the step, so `CHECKS` is empty; definitions import `ASSETS` and `CHECKS` from here. Both
assets also report their quality score (`rules.quality_check`, WARN) and record it in their metadata.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from f1_assets.assets.ingest_jolpica import drivers_in_results
from f1_assets.checks import rules
from f1_assets.checks.rules import COMPLETENESS_MIN, FASTF1_LAPS, LIVE_TIMING, RAW_TELEMETRY, gate, reject
from f1_assets.io_managers import stored_object, stored_rows
from f1_assets.io_managers.parquet import PREFIX_METADATA
from f1_assets.io_managers.warehouse import ALLOW_SHRINK_TAG, allow_shrink
from f1_assets.partitions import RaceKey, parse_race_key, races_partitions
from f1_assets.resources.fastf1 import (
    TELEMETRY_STREAMS,
    WEATHER_STREAM,
    CircuitCorners,
    FastF1DataError,
    FastF1NoSession,
    FastF1Resource,
    FastF1UpstreamError,
    LoadedRace,
)
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.tables import table
from f1_assets.transforms.fastf1_laps import empty_rows, laps_to_rows, stints_by_driver
from f1_assets.transforms.quality import quality_report
from f1_assets.transforms.telemetry import (
    TelemetryStats,
    completeness_by_driver,
    empty_telemetry,
    merge_race_telemetry,
)
from f1_assets.transforms.weather import race_weather_bin

GROUP = "ingest_fastf1"
MAX_FAILING_KEYS = 50  # failing keys listed in check metadata (the count is always complete)
# the streams each asset is made of (raw_telemetry tags samples with laps from TimingData)
TELEMETRY_ASSET_STREAMS = (*TELEMETRY_STREAMS, "TimingData", "DriverList")
TELEMETRY_PREFIX = "telemetry"  # raw_telemetry's objects: telemetry/season=YYYY/round=RR/telemetry.parquet


def _keys(values: Iterable[Any]) -> list[Any]:
    return list(values)[:MAX_FAILING_KEYS]


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
    # optional data the load lacked (the weather stream): the check still passes, and says so
    optional_missing: str | None = None

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
        weather = outcome.weather_reason if wanted is None else None  # the laps asset reads the weather
        optional = f"{WEATHER_STREAM}: {weather} (weather columns NULL, bins UNKNOWN)" if weather else None
        if missing:
            not_served = [s for s in missing if s in outcome.not_served]
            return cls("missing_streams", f"FastF1 got no usable {', '.join(missing)} from the live-timing host "
                       f"for {outcome.api_path or 'the race session'}"
                       + (f" (not served: {', '.join(not_served)})" if not_served else ""), missing=missing,
                       optional_missing=optional)
        return cls("complete", optional_missing=optional)

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
        if self.optional_missing:
            md["optional_missing"] = self.optional_missing
        if self.urls:
            md["unreachable_urls"] = dg.MetadataValue.json(_keys(self.urls))
            md["attempts"] = self.attempts
        return md

    def check(self, asset: str) -> dg.AssetCheckResult:
        description = {
            "complete": "every stream this asset reads was served"
                        + (f"; optional data missing: {self.optional_missing}" if self.optional_missing else ""),
            "not_applicable": f"not applicable: {self.reason}",
        }.get(self.state, self.reason or self.state)
        return LIVE_TIMING.outcome(self.passed, self.metadata(), description).result(asset)


def _refusal(what: str, race: RaceKey, reason: str, stored: str) -> str:
    return (f"{what} for race {race.key}: {reason}. What is already stored ({stored}) is kept; nothing was "
            f"written. Re-run when the upstream is complete (or with tag {ALLOW_SHRINK_TAG}=true to accept less).")


# ------------------------------------------------------------------------------------ fastf1_laps

LAPS_CHECK_SPECS = [*rules.specs("fastf1_laps", FASTF1_LAPS.values()), rules.quality_spec("fastf1_laps")]


def _fastf1_asset(description: str, check_specs: list[dg.AssetCheckSpec], **kwargs: Any):
    """The decorator of a FastF1 race asset: races partitions, pool `fastf1`, its group."""
    return dg.asset(partitions_def=races_partitions, pool="fastf1", group_name=GROUP, description=description,
                    check_specs=check_specs, **kwargs)


@_fastf1_asset("FastF1 session laps per race (2018+): stints, compounds, tyre life, pit in/out, track status, "
               "sector times.", LAPS_CHECK_SPECS, kinds={"pandas", "sql"}, io_manager_key="warehouse_io_manager",
               metadata={"dagster/column_schema": table("fastf1_laps").table_schema()})
def fastf1_laps(context: dg.AssetExecutionContext, fastf1: FastF1Resource, warehouse: WarehouseResource,
                raw_results: pd.DataFrame) -> Iterator[Any]:
    race = parse_race_key(context.partition_key)
    outcome = _load(fastf1, race, telemetry=False)
    live = LiveTiming.of(outcome, None)
    rows = _lap_rows(outcome, raw_results) if isinstance(outcome, LoadedRace) else empty_rows()
    total_laps = outcome.total_laps if isinstance(outcome, LoadedRace) else None
    quality = [quality_report(rows, table("fastf1_laps"), race.season, race.key)]
    checks = [*laps_checks(rows, raw_results, total_laps), live.check("fastf1_laps"),
              *rules.results("fastf1_laps", [weather_check(rows)]), rules.quality_check("fastf1_laps", quality)]

    stored = stored_rows(warehouse, "fastf1_laps", context.partition_key)
    kept = f"{stored} rows" if stored else "nothing"
    yield from gate(checks, LAPS_CHECK_SPECS, f"fastf1_laps for race {race.key}", kept)
    if stored and not allow_shrink(context.run.tags) and (not live.passed or len(rows) < stored):
        reason = live.reason if not live.passed else (
            f"{len(rows)} rows now, fewer than stored" + (f" ({live.reason})" if live.reason else ""))
        yield from reject([live.check("fastf1_laps")], _refusal("FastF1 laps", race, reason, kept))
    reason = None
    if not len(rows):
        reason = live.reason if live.state != "complete" else "FastF1 returned no laps"
    yield from checks
    yield dg.Output(rows, metadata={**_laps_metadata(race, rows, live, reason=reason),
                                    **_weather_metadata(outcome, rows), **rules.quality_metadata(quality)})


def _lap_rows(loaded: LoadedRace, results: pd.DataFrame) -> pd.DataFrame:
    driver_ids = {}
    if len(loaded.results) and "DriverId" in loaded.results:
        driver_ids = loaded.results["DriverId"].dropna().to_dict()
    if len(results):  # the warehouse's Jolpica results win over FastF1's copy
        driver_ids |= {str(int(n)): d for n, d in zip(results["driver_number"], results["driver_id"], strict=True)
                       if pd.notna(n)}
    return laps_to_rows(loaded.laps, loaded.race.season, loaded.race.round, driver_ids, loaded.weather)


# the WARN rule weather_ranges: column → (low, high), inclusive (physical bounds, not climate records)
WEATHER_BOUNDS = {"air_temp_c": (-20.0, 60.0), "track_temp_c": (-20.0, 80.0), "humidity_pct": (0.0, 100.0),
                  "pressure_mbar": (800.0, 1100.0), "wind_speed_mps": (0.0, 60.0), "wind_direction_deg": (0.0, 360.0)}


def weather_check(rows: pd.DataFrame) -> rules.CheckOutcome:
    """`weather_ranges` on a race's fastf1_laps rows: laps whose weather is outside `WEATHER_BOUNDS`
    (NULL weather is not judged: the stream is optional)."""
    bad = pd.Series(False, index=rows.index)
    failing_columns = {}
    for column, (low, high) in WEATHER_BOUNDS.items():
        values = pd.to_numeric(rows[column], errors="coerce")
        out = values.notna() & ~values.between(low, high)
        if out.any():
            failing_columns[column] = int(out.sum())
        bad |= out
    with_weather = int(rows["air_temp_c"].notna().sum()) if len(rows) else 0
    return rules.ALL["weather_ranges"].outcome(not bad.any(), {
        "rows": len(rows), "rows_with_weather": with_weather, "failing_rows": int(bad.sum()),
        "failing_columns": failing_columns,
        "failing_keys": _keys(f"{c}#{n}" for c, n in zip(rows.loc[bad, "driver_code"], rows.loc[bad, "lap_number"],
                                                          strict=True)),
    })


def _weather_metadata(outcome: Outcome, rows: pd.DataFrame) -> dict[str, Any]:
    """Whether the race had a weather stream (and why not), how many laps have weather, the race's bin."""
    if isinstance(outcome, LoadedRace):
        reason = outcome.weather_reason
        samples = len(outcome.weather)
    else:
        reason, samples = f"no FastF1 session loaded ({outcome.reason})", 0
    metadata: dict[str, Any] = {
        "weather_samples": samples,
        "laps_with_weather": int(rows["rainfall"].notna().sum()) if len(rows) else 0,
        "race_weather": race_weather_bin(rows["rainfall"]) if len(rows) else "UNKNOWN",
    }
    if reason:
        metadata["weather_reason"] = reason
    if isinstance(outcome, LoadedRace):
        said = [w for w in outcome.warnings if "weather" in w.lower()]
        if said:  # e.g. FastF1 could not parse the stream and the strict re-read recovered it
            metadata["weather_warnings"] = dg.MetadataValue.json(said[:5])
    return metadata


def _laps_metadata(race: RaceKey, rows: pd.DataFrame, live: LiveTiming, *, reason: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "race": race.key,
        "drivers": int(rows["driver_number"].nunique()) if len(rows) else 0,
        **live.metadata(),
    }
    if reason:
        metadata["empty_reason"] = reason
    if len(rows):
        sc = rows["track_status"].fillna("").str.contains("4")
        metadata["safety_car_laps"] = dg.MetadataValue.json(sorted(int(n) for n in rows.loc[sc, "lap_number"].unique()))
        metadata["stints"] = dg.MetadataValue.json(stints_by_driver(rows))
    return metadata


def laps_checks(rows: pd.DataFrame, results: pd.DataFrame, fastf1_total_laps: Any = None) -> list[dg.AssetCheckResult]:
    """The two `fastf1_laps` row checks on a race's rows and its Jolpica results (possibly empty)."""
    race_laps = int(results["laps"].max()) if len(results) else None
    source = "raw_results"
    if race_laps is None and fastf1_total_laps is not None and pd.notna(fastf1_total_laps):
        race_laps, source = int(fastf1_total_laps), "FastF1 LapCount"
    if race_laps is None:
        bad = rows.iloc[0:0]
    else:
        bad = rows[(rows["lap_number"] < 1) | (rows["lap_number"] > race_laps)]
    lap_check = FASTF1_LAPS["lap_numbers_within_race"].outcome(len(bad) == 0, {
        "race_laps": race_laps if race_laps is not None else "unknown",
        "race_laps_from": source if race_laps is not None else "none",
        "rows": len(rows),
        "failing_rows": len(bad),
        "failing_keys": _keys(f"{c}#{n}" for c, n in zip(bad["driver_code"], bad["lap_number"], strict=True)),
    })
    drivers = drivers_in_results(rows["driver_number"], results, key="driver_number", without_results="WARN")
    return rules.results("fastf1_laps", [lap_check, drivers])


# ---------------------------------------------------------------------------------- raw_telemetry

TELEMETRY_CHECK_SPECS = [*rules.specs("raw_telemetry", RAW_TELEMETRY.values()), rules.quality_spec("raw_telemetry")]
NO_TELEMETRY = TelemetryStats(0, 0, 0, 0, 0)


@_fastf1_asset("Car data + position merged per driver, tagged with lap numbers (one Parquet per race, 2018+).",
               TELEMETRY_CHECK_SPECS, kinds={"pandas", "parquet"}, deps=[fastf1_laps],
               io_manager_key="parquet_io_manager",
               metadata={PREFIX_METADATA: TELEMETRY_PREFIX,
                         "dagster/column_schema": table("raw_telemetry").table_schema()})
def raw_telemetry(context: dg.AssetExecutionContext, fastf1: FastF1Resource, blob_store: BlobStoreResource,
                  raw_results: pd.DataFrame) -> Iterator[Any]:
    race = parse_race_key(context.partition_key)
    outcome = _load(fastf1, race, telemetry=True)
    live = LiveTiming.of(outcome, TELEMETRY_ASSET_STREAMS)

    frame, stats, race_laps = empty_telemetry(), NO_TELEMETRY, None
    # corners (FastF1 circuit info, another host) are optional: without them `Corner` stays NULL, and why is in
    # the metadata; asked for only when there are samples to match
    circuit = CircuitCorners(None, None, "no telemetry samples: circuit info not asked for")
    if isinstance(outcome, LoadedRace) and (outcome.car_data or outcome.pos_data):
        codes = {}
        if len(outcome.results) and "Abbreviation" in outcome.results:
            codes = {str(k): v for k, v in outcome.results["Abbreviation"].dropna().items()}
        laps = outcome.laps
        circuit = fastf1.circuit_corners(outcome)
        frame, stats = merge_race_telemetry(outcome.car_data, outcome.pos_data, laps, codes, circuit.corners)
        race_laps = int(laps["LapNumber"].max()) if len(laps) else outcome.total_laps
    quality = [quality_report(frame, table("raw_telemetry"), race.season, race.key)]
    checks = [*telemetry_checks(frame, raw_results, race_laps), live.check("raw_telemetry"),
              rules.quality_check("raw_telemetry", quality)]

    url = stored_object(blob_store, TELEMETRY_PREFIX, context.partition_key)
    stored = f"telemetry Parquet {url}" if url else "nothing"
    yield from gate(checks, TELEMETRY_CHECK_SPECS, f"raw_telemetry for race {race.key}", stored)
    if url and not allow_shrink(context.run.tags) and (not live.passed or frame.empty):
        yield from reject([live.check("raw_telemetry")],
                          _refusal("telemetry", race, live.reason or "no telemetry now", stored))
    reason = None
    if frame.empty:
        reason = live.reason if live.state != "complete" else "FastF1 returned no car telemetry"
    metadata: dict[str, Any] = {"race": race.key, "rows": stats.rows, "drivers": stats.drivers,
                                "samples": stats.samples, "interpolated": stats.interpolated,
                                "gap_samples": stats.gap_samples, **live.metadata(), **circuit.metadata(),
                                # the Parquet IO manager does not report it: the schema-drift check reads it here
                                "dagster/column_schema": table("raw_telemetry").table_schema(),
                                **rules.quality_metadata(quality)}
    if reason:
        metadata["empty_reason"] = reason
    yield from checks
    yield dg.Output(frame, metadata=metadata)  # empty: the IO manager removes a stale object


def telemetry_checks(
    frame: pd.DataFrame, results: pd.DataFrame, fastf1_race_laps: int | None = None
) -> list[dg.AssetCheckResult]:
    """The `raw_telemetry` checks on one race's merged frame and its Jolpica results (possibly empty)."""
    asset = "raw_telemetry"

    def sample_keys(mask: pd.Series) -> list[str]:
        bad = frame.loc[mask, ["Driver", "DriverNumber", "SessionTime"]].head(MAX_FAILING_KEYS)
        return [f"{d or n}@{t}" for d, n, t in zip(bad["Driver"], bad["DriverNumber"], bad["SessionTime"], strict=True)]

    def range_check(name: str, column: str, low: float, high: float, unit: str) -> rules.CheckOutcome:
        values = frame[column]
        mask = values.notna() & ((values < low) | (values > high))
        return RAW_TELEMETRY[name].outcome(not mask.any(), {
            "range": f"{low:g}–{high:g} {unit}", "checked": int(values.notna().sum()),
            "failing_count": int(mask.sum()), "failing_keys": sample_keys(mask),
            "min": float(values.min()) if values.notna().any() else None,
            "max": float(values.max()) if values.notna().any() else None})

    checks = [
        range_check("throttle_range", "Throttle", 0, 100, "%"),
        range_check("speed_range", "Speed", 0, 400, "km/h"),
        range_check("gear_range", "nGear", 0, 8, "gears"),
    ]
    race_laps = int(results["laps"].max()) if len(results) else fastf1_race_laps
    laps = frame["LapNumber"]
    lap_mask = laps.notna() & ((laps < 1) | (laps > (race_laps if race_laps is not None else float("inf"))))
    checks.append(RAW_TELEMETRY["lap_numbers_within_race"].outcome(not lap_mask.any(), {
        "race_laps": race_laps if race_laps is not None else "unknown",
        "untagged_samples": int(laps.isna().sum()), "failing_count": int(lap_mask.sum()),
        "failing_keys": sample_keys(lap_mask)}))
    completeness = completeness_by_driver(frame)
    low = completeness[completeness["complete"] < COMPLETENESS_MIN]
    checks.append(RAW_TELEMETRY["completeness"].outcome(low.empty, {
        "threshold": COMPLETENESS_MIN, "drivers": len(completeness), "failing_count": len(low),
        "failing_keys": _keys(f"{d or n}:{c:.3f}" for d, n, c in
                              zip(low["Driver"], low["DriverNumber"], low["complete"], strict=True)),
        "worst": float(completeness["complete"].min()) if len(completeness) else None}))
    checks.append(drivers_in_results(pd.Series(frame["DriverNumber"].unique()), results, key="driver_number",
                                     without_results="WARN"))
    return rules.results(asset, checks)


ASSETS = [fastf1_laps, raw_telemetry]
CHECKS: list[dg.AssetChecksDefinition] = []  # the checks run inside the assets (check_specs above)
