"""Raw Jolpica (Ergast) assets: the season calendar and, per race, results, qualifying, sprint, laps
and pit stops — typed tables in the warehouse, every upstream page in the raw archive.

Data provided by Jolpica/Ergast. Loaded by `f1_assets.definitions`.
"""


import datetime as dt
import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pydantic import Field

from f1_assets import schemas, settings
from f1_assets.assets.metadata import (
    ALLOW_SHRINK_TAG,
    allow_shrink,
    blocking_failures,
    describe_failures,
    reject,
    table_schema,
)
from f1_assets.partitions import (
    RaceKey,
    current_season,
    parse_race_key,
    parse_season,
    race_key,
    races_partitions,
    seasons_partitions,
)
from f1_assets.resources.jolpica import (
    FetchResult,
    JolpicaClient,
    JolpicaResource,
    JolpicaResponseError,
    JolpicaTransientError,
    JolpicaUnreachable,
)
from f1_assets.resources.rate_budget import RateBudgetExhausted
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import ShrinkRefused, Warehouse
from f1_assets.transforms import jolpica as parse

GROUP = "ingest_jolpica"
KINDS = {"python", "pandas", "sql"}
# How long after the scheduled start a race counts as run (results are published within hours)
RACE_DONE_AFTER = dt.timedelta(hours=4)
TRANSIENT_RETRIES = 3

# Unexpected errors (a database blip) retry with backoff and jitter; data errors raise
# Failure(allow_retries=False) and upstream trouble RetryRequested, so neither goes through this policy.
RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

ERA_START = {
    # endpoint: (first season upstream has it, why earlier races are empty)
    "qualifying": (1994, "Jolpica has qualifying results from 1994 on"),
    "laps": (1996, "Jolpica has lap timings from 1996 on"),
    "pitstops": (2011, "Jolpica has pit stops from 2011 on"),
}


def race_started_at(row: pd.Series | dict) -> dt.datetime:
    date = pd.Timestamp(row["race_date"]).date()
    clock = (row.get("race_time") or "12:00:00Z").rstrip("Z")
    return dt.datetime.combine(date, dt.time.fromisoformat(clock), tzinfo=dt.UTC)


@dataclass
class RaceInfo:
    key: RaceKey
    race_date: dt.date
    has_sprint: bool
    circuit_id: str


def _fetch(client: JolpicaClient, path: str, settled: bool) -> FetchResult:
    """Upstream call with Dagster's retry semantics: transient trouble → RetryRequested; data errors fail."""
    try:
        return client.fetch(path, settled=settled)
    except RateBudgetExhausted as exc:
        # jitter: the runs of a backfill that hit the budget together must not come back together
        wait = exc.seconds_to_wait * random.uniform(1.0, 1.2)
        raise dg.RetryRequested(max_retries=TRANSIENT_RETRIES, seconds_to_wait=wait) from exc
    except JolpicaTransientError as exc:
        wait = (600 if exc.status == 429 else 60) * random.uniform(0.8, 1.2)
        raise dg.RetryRequested(max_retries=TRANSIENT_RETRIES, seconds_to_wait=wait) from exc
    except (JolpicaResponseError, JolpicaUnreachable) as exc:
        raise dg.Failure(description=str(exc), metadata={"url": exc.url}, allow_retries=False) from exc


# ------------------------------------------------------------------------- accept, then archive

def _validated_frame(
    fetched: FetchResult, parser: Callable[[Sequence[parse.Page]], pd.DataFrame], schema: pa.DataFrameSchema,
    table: str, expect: dict | None = None,
) -> pd.DataFrame:
    """The pages' rows, accepted only if they parse, hold exactly MRData.total rows and meet the schema.

    Errors name the page the bad bytes came from (its URL, or the raw-archive object it was read from)."""
    try:
        df = parser(fetched.pages)
    except parse.UpstreamDataError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except (AttributeError, TypeError, KeyError, IndexError) as exc:  # valid JSON of another shape
        raise dg.Failure(description=f"{table}: the pages do not have Jolpica's shape ({type(exc).__name__}: {exc}): "
                         f"{', '.join(src for src, _ in fetched.pages)}", allow_retries=False) from exc
    for column, value in (expect or {}).items():
        wrong = sorted(set(df[column]) - {value})
        if wrong:
            raise dg.Failure(description=f"{table}: the pages hold {column} {wrong}, not {value} "
                             f"({', '.join(src for src, _ in fetched.pages)})", allow_retries=False)
    if len(df) != fetched.total:
        raise dg.Failure(
            description=f"{table}: the pages announce MRData.total {fetched.total} but hold {len(df)} rows "
            f"({', '.join(src for src, _ in fetched.pages)}); nothing was written, the stored rows are kept",
            allow_retries=False,
        )
    try:
        return schemas.validate(schema, df, table, fetched.source(0))
    except schemas.SchemaViolation as whole:
        # name the first page that violates the schema on its own (the error path only)
        for source, payload in fetched.pages:
            try:
                schemas.validate(schema, parser([(source, payload)]), table, source)
            except (schemas.SchemaViolation, parse.UpstreamDataError) as exc:
                raise dg.Failure(description=str(exc), metadata={"url": source}, allow_retries=False) from exc
        raise dg.Failure(description=str(whole), metadata={"url": fetched.source(0)}, allow_retries=False) from whole


def accept(
    client: JolpicaClient,
    fetched: FetchResult,
    parser: Callable[[Sequence[parse.Page]], pd.DataFrame],
    schema: pa.DataFrameSchema,
    table: str,
    log: Callable[[str], None],
    expect: dict | None = None,
) -> tuple[pd.DataFrame, FetchResult]:
    """Validate fetched pages (totals agree, rows = total, schema). The caller archives them with
    `client.archive_accepted` once they are written (never before).

    Pages served from the raw archive that fail validation are quarantined and fetched once more from
    upstream; a failure then names the upstream URL."""
    try:
        df = _validated_frame(fetched, parser, schema, table, expect)
    except dg.Failure as failure:
        if not fetched.from_archive:
            raise
        moved = client.quarantine(fetched, failure.description or "failed validation")
        log(f"{table}: archived pages failed validation ({failure.description}); quarantined {moved}, "
            "fetching from upstream")
        again = _fetch(client, fetched.path, settled=False)
        again.archive_hits += fetched.archive_hits
        df, fetched = _validated_frame(again, parser, schema, table, expect), again
    return df, fetched


def write_partition(
    context: dg.AssetExecutionContext, warehouse: Warehouse, table: str, df: pd.DataFrame, partition: dict
) -> int:
    """Replace the partition's rows; a smaller version than the stored one fails (unless the run allows it)."""
    try:
        return warehouse.replace_partition(table, df, partition, allow_shrink=allow_shrink(context))
    except ShrinkRefused as exc:
        raise dg.Failure(
            description=f"partition {context.partition_key}: {exc}",
            metadata={"stored_rows": exc.stored, "new_rows": exc.new, "allow_shrink_tag": ALLOW_SHRINK_TAG},
            allow_retries=False,
        ) from exc


def race_info(warehouse: Warehouse, client: JolpicaClient, key: RaceKey) -> RaceInfo:
    """The race's calendar row: from raw_races, else from the season schedule (archived)."""
    rows = warehouse.read_partition("raw_races", {"season": key.season, "round": key.round})
    if rows.empty:
        fetched = _fetch(client, str(key.season), settled=key.season < current_season())
        schedule, fetched = accept(client, fetched, parse.parse_schedule, schemas.RAW_RACES, "raw_races",
                                   lambda _m: None)
        client.archive_accepted(fetched)
        rows = schedule[schedule["round"] == key.round]
        if rows.empty:
            raise dg.Failure(
                description=f"race partition {key.key}: round {key.round} is not in the {key.season} schedule",
                allow_retries=False,
            )
    row = rows.iloc[0]
    return RaceInfo(key, pd.Timestamp(row["race_date"]).date(), bool(row["has_sprint"]), str(row["circuit_id"]))


def _fetch_metadata(fetched: Sequence[FetchResult], settled: bool) -> dict:
    return {
        "upstream_requests": sum(f.requests for f in fetched),
        "archive_hits": sum(f.archive_hits for f in fetched),
        "bytes_read": sum(f.bytes_read for f in fetched),
        "upstream_total": sum(f.total for f in fetched),
        "settled": settled,
        "source_urls": dg.MetadataValue.json([f.source(0) for f in fetched]),
        "payload_hash": ",".join(f.payload_hash for f in fetched),
    }


# ------------------------------------------------------------------------- calendar

# Endpoints Jolpica serves for a whole season in a few pages; laps and pit stops exist only per race.
SEASON_TABLES = ("results", "qualifying", "sprint")


class CalendarConfig(dg.Config):
    prefetch_season_tables: bool = Field(
        default=True,
        description="For a settled season, also fetch results, qualifying and sprint for the whole season "
        "(a few pages) into the raw archive, so its races need requests only for laps and pit stops.",
    )


def season_settled(schedule: pd.DataFrame, settle_days: int, today: dt.date | None = None) -> bool:
    """Every race of the season is past the settle period."""
    today = today or dt.date.today()
    if schedule.empty:
        return False
    last = max(pd.Timestamp(d).date() for d in schedule["race_date"])
    return today - last > dt.timedelta(days=settle_days)


def prefetch_season_tables(
    client: JolpicaClient, season: int, schedule: pd.DataFrame, log: Callable[[str], None]
) -> tuple[list[FetchResult], dict[str, str]]:
    """Season pages of results/qualifying/sprint, validated before they are archived. A page set that
    fails validation is not archived (its races then fetch their own pages); returns (accepted, rejected)."""
    endpoints = [e for e in SEASON_TABLES if e != "sprint" or bool(schedule["has_sprint"].any())]
    endpoints = [e for e in endpoints if season >= ERA_START.get(e, (0, ""))[0]]
    accepted, rejected = [], {}
    for endpoint in endpoints:
        spec = next(t for t in RACE_TABLES.values() if t.endpoint == endpoint)
        path = f"{season}/{endpoint}"
        try:  # an optimisation only: whatever goes wrong, the races fetch their own pages instead
            fetched = _fetch(client, path, settled=True)
            _, fetched = accept(client, fetched, spec.parser, spec.schema, spec.table, log)
            client.archive_accepted(fetched)
        except (dg.Failure, dg.RetryRequested, OSError) as problem:
            why = getattr(problem, "description", None) or repr(problem.__cause__ or problem)
            rejected[path] = why
            log(f"season pages {path} not prefetched (its races fetch their own pages): {why}")
            continue
        accepted.append(fetched)
    return accepted, rejected


@dg.asset(
    partitions_def=seasons_partitions,
    group_name=GROUP,
    kinds=KINDS,
    pool="jolpica",
    retry_policy=RETRY_POLICY,
    description="Season schedule (raw races). Registers the `races` partitions of races that have run, "
    "in chronological order. Data provided by Jolpica/Ergast.",
    check_specs=[dg.AssetCheckSpec("row_count_matches_upstream", asset="raw_races", blocking=True,
                                   description="Rows equal MRData.total, and the season has races (ERROR).")],
)
def raw_races(
    context: dg.AssetExecutionContext, config: CalendarConfig, jolpica: JolpicaResource, warehouse: WarehouseResource
):
    season = parse_season(context.partition_key)
    client = jolpica.client(log=context.log.info)
    fetched = _fetch(client, str(season), settled=season < current_season())
    df, fetched = accept(client, fetched, parse.parse_schedule, schemas.RAW_RACES, "raw_races", context.log.warning)
    checks = [dg.AssetCheckResult(
        check_name="row_count_matches_upstream", passed=len(df) == fetched.total and len(df) > 0,
        metadata={"rows": len(df), "upstream_total": fetched.total, "url": fetched.source(0)},
    )]
    if not checks[0].passed:
        stored = warehouse.get().count("raw_races", {"season": season})
        yield from reject(checks, f"raw_races {season}: the schedule has {len(df)} races ({fetched.source(0)}); "
                          f"nothing was written, the {stored} stored rows are kept")
    written = write_partition(context, warehouse.get(), "raw_races", df, {"season": season})
    archive_note: dict = {}
    _archive(context, client, fetched, archive_note)
    prefetched: list[FetchResult] = []
    rejected: dict[str, str] = {}
    if config.prefetch_season_tables and season_settled(df, jolpica.effective_settle_days()):
        prefetched, rejected = prefetch_season_tables(client, season, df, context.log.warning)

    now = dt.datetime.now(dt.UTC)
    run = df[[race_started_at(r) + RACE_DONE_AFTER <= now for _, r in df.iterrows()]]
    keys = [race_key(int(r.season), int(r.round)) for r in run.itertuples()]
    existing = set(context.instance.get_dynamic_partitions(races_partitions.name))
    new_keys = [k for k in keys if k not in existing]
    if new_keys:
        context.instance.add_dynamic_partitions(races_partitions.name, new_keys)
    context.log.info(f"season {season}: {len(df)} races scheduled, {len(keys)} run, {len(new_keys)} new partitions")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "dagster/column_schema": table_schema(df),
            **_fetch_metadata([fetched, *prefetched], season < current_season()),
            "upstream_total": fetched.total,
            "season_tables_prefetched": dg.MetadataValue.json({f.path: f.total for f in prefetched}),
            **({"season_tables_rejected": dg.MetadataValue.json(rejected)} if rejected else {}),
            "allow_shrink": allow_shrink(context),
            **archive_note,
            "races_run": len(keys),
            "partitions_added": dg.MetadataValue.json(new_keys),
        },
        data_version=dg.DataVersion(fetched.payload_hash),
        check_results=checks,
    )


# ------------------------------------------------------------------------- per race

@dataclass(frozen=True)
class RaceTable:
    asset: str
    table: str
    endpoint: str  # Jolpica path after {season}/{round}/
    parser: Callable[[Sequence[parse.Page]], pd.DataFrame]
    schema: pa.DataFrameSchema
    description: str


RACE_TABLES = {
    t.asset: t
    for t in [
        RaceTable("raw_results", "raw_results", "results", parse.parse_results, schemas.RAW_RESULTS,
                  "Race classification per driver (positions, points, laps completed, status, times)."),
        RaceTable("raw_qualifying", "raw_qualifying", "qualifying", parse.parse_qualifying, schemas.RAW_QUALIFYING,
                  "Qualifying classification with Q1/Q2/Q3 times (1994+)."),
        RaceTable("raw_sprint_results", "raw_sprint_results", "sprint", parse.parse_sprint, schemas.RAW_SPRINT_RESULTS,
                  "Sprint classification, for rounds whose schedule lists a Sprint session."),
        RaceTable("raw_laps", "raw_laps", "laps", parse.parse_laps, schemas.RAW_LAPS,
                  "One row per driver-lap timing (1996+); pages merged by lap number."),
        RaceTable("raw_pit_stops", "raw_pit_stops", "pitstops", parse.parse_pit_stops, schemas.RAW_PIT_STOPS,
                  "Pit stops with lap and pit-lane duration (2011+)."),
    ]
}


def upstream_has(asset: str, key: RaceKey, has_sprint: bool) -> bool:
    """Whether the upstream has the raw table `asset` for this race at all (its era and schedule)."""
    info = RaceInfo(key, dt.date(key.season, 1, 1), has_sprint, "")
    return _not_upstream_reason(RACE_TABLES[asset], info) is None


def _not_upstream_reason(spec: RaceTable, info: RaceInfo) -> str | None:
    if spec.endpoint == "sprint" and not info.has_sprint:
        return f"no sprint at {info.key.key}: the {info.key.season} schedule lists no Sprint session for it"
    era = ERA_START.get(spec.endpoint)
    if era and info.key.season < era[0]:
        return f"{era[1]}; {info.key.key} predates that"
    return None


@dataclass
class StagedTable:
    """One race table fetched and validated, not yet written nor archived."""

    spec: RaceTable
    df: pd.DataFrame
    metadata: dict
    fetched: FetchResult | None  # None: not upstream for this race's era/schedule (explained empty)
    client: JolpicaClient
    warehouse: Warehouse
    partition: dict


def stage_race_table(
    context: dg.AssetExecutionContext, spec: RaceTable, jolpica: JolpicaResource, warehouse: WarehouseResource
) -> StagedTable:
    """Fetch and validate one race table: every page agrees on MRData.total, the rows equal it and the
    schema holds. Nothing is written or archived here (`land` does that once the checks pass)."""
    key = parse_race_key(context.partition_key)
    wh = warehouse.get()
    client = jolpica.client(log=context.log.info)
    info = race_info(wh, client, key)
    partition = {"season": key.season, "round": key.round}
    reason = _not_upstream_reason(spec, info)
    if reason is not None:
        empty = spec.parser([])
        context.log.info(f"{spec.table} {key.key}: empty — {reason}")
        metadata = {"dagster/column_schema": table_schema(empty), "empty_reason": reason,
                    "upstream_requests": client.stats.requests}
        return StagedTable(spec, empty, metadata, None, client, wh, partition)

    settled = dt.date.today() - info.race_date > dt.timedelta(days=jolpica.effective_settle_days())
    df = fetched = None
    if settled and spec.endpoint in SEASON_TABLES:
        season_pages = client.fetch_archived(f"{key.season}/{spec.endpoint}")
        if season_pages is not None:
            try:
                season_df = _validated_frame(season_pages, spec.parser, spec.schema, spec.table)
            except dg.Failure as failure:
                moved = client.quarantine(season_pages, failure.description or "failed validation")
                context.log.warning(f"season pages {season_pages.path} failed validation ({failure.description}); "
                                    f"quarantined {moved}; fetching {key.key}'s own pages")
            else:
                # the season's pages, archived by the calendar: keep this race's rows, count them as its total
                df = season_df[season_df["round"] == key.round].reset_index(drop=True)
                digest = hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()
                fetched = FetchResult(path=season_pages.path, pages=season_pages.pages, total=len(df),
                                      archive_hits=season_pages.archive_hits, payload_hash=digest,
                                      bodies=season_pages.bodies, sources=season_pages.sources)
    if fetched is None or df is None:
        fetched = _fetch(client, f"{key.season}/{key.round}/{spec.endpoint}", settled)
        df, fetched = accept(client, fetched, spec.parser, spec.schema, spec.table, context.log.warning,
                             expect=partition)
    metadata = {
        "dagster/column_schema": table_schema(df),
        **_fetch_metadata([fetched], settled),
        "upstream_requests": client.stats.requests,  # includes a schedule fetch if raw_races lacked the race
        "allow_shrink": allow_shrink(context),
    }
    if client.stats.quarantined:
        metadata["quarantined"] = dg.MetadataValue.json(client.stats.quarantined)
    if fetched.path.count("/") == 1:
        metadata["source"] = f"season pages {fetched.path} from the raw archive"
    if fetched.total == 0:
        metadata["empty_reason"] = f"upstream has no {spec.endpoint} for {key.key} (yet)"
    return StagedTable(spec, df, metadata, fetched, client, wh, partition)


def _archive(context: dg.AssetExecutionContext, client: JolpicaClient, fetched: FetchResult, metadata: dict) -> None:
    """Archive accepted pages after the write. The rows are right either way: a store that refuses the
    write (read-only, permissions, a bucket error) is logged and shown in metadata, and the next run
    of a settled race fetches from upstream instead of the archive."""
    try:
        client.archive_accepted(fetched)
    except Exception as exc:  # noqa: BLE001 — any storage error; the rows are already written and valid
        message = settings.redact(f"raw archive not written for {fetched.path}: {type(exc).__name__}: {exc}")
        context.log.warning(message)
        metadata["archive_error"] = message


def land(
    context: dg.AssetExecutionContext, staged: StagedTable, checks: list[dg.AssetCheckResult],
    specs: Sequence[dg.AssetCheckSpec],
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Write and archive a staged table once its blocking checks pass; else report them and fail.

    The checks run on the frame *before* the write: a blocking failure records the check results, fails
    the step (no retry) and writes nothing — the stored rows stay and downstream steps are skipped.
    Then the write (refusing a smaller version) and only then the archive of the pages."""
    blocked = blocking_failures(checks, specs)
    if blocked:
        stored = staged.warehouse.count(staged.spec.table, staged.partition)
        yield from reject(checks, f"{staged.spec.table} {context.partition_key}: blocking checks failed on the new "
                          f"version ({len(staged.df)} rows): {describe_failures(blocked)}; nothing was written, "
                          f"the {stored} stored rows are kept")
    written = write_partition(context, staged.warehouse, staged.spec.table, staged.df, staged.partition)
    if staged.fetched is not None:
        _archive(context, staged.client, staged.fetched, staged.metadata)
    version = staged.fetched.payload_hash if staged.fetched else "empty"
    yield dg.MaterializeResult(metadata={"dagster/row_count": written, **staged.metadata},
                               data_version=dg.DataVersion(version), check_results=checks)


def _has_rows_check(asset: str, df: pd.DataFrame, fetched: FetchResult | None,
                    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    """A race that has run has rows for every table its era and schedule say exist."""
    if fetched is None:
        return dg.AssetCheckResult(asset_key=asset, check_name="has_rows", passed=True,
                                   metadata={"rows": 0, "note": "not upstream for this race (see empty_reason)"})
    return dg.AssetCheckResult(
        asset_key=asset, check_name="has_rows", passed=len(df) > 0, severity=severity,
        metadata={"rows": len(df), "upstream_total": fetched.total, "url": fetched.source(0),
                  **({} if len(df) else {"reason": f"the upstream answered 0 rows ({fetched.source(0)}) for a race "
                                                   "that has run; re-polled until it has them"})},
    )


def _row_count_check(asset: str, written: int, fetched: FetchResult | None) -> dg.AssetCheckResult:
    expected = fetched.total if fetched else 0
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="row_count_matches_upstream",
        passed=written == expected,
        metadata={"rows": written, "upstream_total": expected},
    )


def _positions_check(asset: str, df: pd.DataFrame, starters: int, column: str = "position") -> dg.AssetCheckResult:
    pos = df[column].dropna()
    bad = df.loc[df[column].notna() & ((df[column] < 1) | (df[column] > max(starters, 1)))]
    keys = bad.get("driver_id", pd.Series(dtype=object)).astype(str).head(20).tolist()
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="positions_in_range",
        passed=bad.empty,
        metadata={"checked": len(pos), "starters": starters, "failing": len(bad), "failing_keys": keys},
    )


def _drivers_in_results_check(asset: str, df: pd.DataFrame, results: pd.DataFrame) -> dg.AssetCheckResult:
    missing = sorted(set(df["driver_id"]) - set(results["driver_id"]))
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name="drivers_in_results",
        passed=not missing,
        metadata={"drivers": int(df["driver_id"].nunique()), "failing_keys": missing[:20]},
    )


def _results_for(warehouse: WarehouseResource, key: RaceKey) -> pd.DataFrame:
    return warehouse.get().read_partition("raw_results", {"season": key.season, "round": key.round})


# ERROR checks about a table's own rows are blocking: downstream assets of the same run do not build on them
_CHECK_DESCRIPTIONS = {
    "row_count_matches_upstream": "Rows written equal MRData.total (ERROR, blocking).",
    "has_rows": "A race that has run has rows where its era and schedule say upstream has them (ERROR, blocking).",
    "positions_in_range": "Positions are 1..the race's starters (ERROR, blocking).",
    "drivers_in_results": "Every driver is in the race's results (ERROR, blocking).",
    "lap_times_positive": "Lap times are > 0 (ERROR, blocking; the schema refuses 0 before any write).",
    "joins_race": "Every result row joins its race in raw_races (WARN: the calendar may lag).",
}


CHECK_SPECS: dict[str, list[dg.AssetCheckSpec]] = {}


def _spec_checks(asset: str, *names: str, extra: Sequence[dg.AssetCheckSpec] = ()) -> list[dg.AssetCheckSpec]:
    specs = [dg.AssetCheckSpec(n, asset=asset, blocking=True, description=_CHECK_DESCRIPTIONS[n])
             for n in ("row_count_matches_upstream", "has_rows", *names)] + list(extra)
    CHECK_SPECS[asset] = specs
    return specs


_RACE_ASSET = dict(partitions_def=races_partitions, group_name=GROUP, kinds=KINDS, pool="jolpica",
                   retry_policy=RETRY_POLICY)


@dg.asset(**_RACE_ASSET, description=RACE_TABLES["raw_results"].description,
          check_specs=_spec_checks("raw_results", "positions_in_range", "joins_race"))
def raw_results(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    spec = RACE_TABLES["raw_results"]
    staged = stage_race_table(context, spec, jolpica, warehouse)
    df, fetched = staged.df, staged.fetched
    key = parse_race_key(context.partition_key)
    in_calendar = warehouse.get().count("raw_races", {"season": key.season, "round": key.round})
    yield from land(context, staged, [
        _row_count_check(spec.asset, len(df), fetched),
        _has_rows_check(spec.asset, df, fetched),
        _positions_check(spec.asset, df, len(df)),
        dg.AssetCheckResult(asset_key=spec.asset, check_name="joins_race", passed=df.empty or in_calendar == 1,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"raw_races_rows": in_calendar, "result_rows": len(df)}),
    ], CHECK_SPECS[spec.asset])


@dg.asset(**_RACE_ASSET, deps=["raw_results"], description=RACE_TABLES["raw_qualifying"].description,
          check_specs=_spec_checks("raw_qualifying", "positions_in_range"))
def raw_qualifying(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    spec = RACE_TABLES["raw_qualifying"]
    staged = stage_race_table(context, spec, jolpica, warehouse)
    df, fetched = staged.df, staged.fetched
    yield from land(context, staged, [
        _row_count_check(spec.asset, len(df), fetched),
        _has_rows_check(spec.asset, df, fetched),
        _positions_check(spec.asset, df, max(len(df), 1)),
    ], CHECK_SPECS[spec.asset])


@dg.asset(**_RACE_ASSET, deps=["raw_results"], description=RACE_TABLES["raw_sprint_results"].description,
          check_specs=_spec_checks("raw_sprint_results", "positions_in_range"))
def raw_sprint_results(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    spec = RACE_TABLES["raw_sprint_results"]
    staged = stage_race_table(context, spec, jolpica, warehouse)
    df, fetched = staged.df, staged.fetched
    yield from land(context, staged, [
        _row_count_check(spec.asset, len(df), fetched),
        _has_rows_check(spec.asset, df, fetched),
        _positions_check(spec.asset, df, len(df)),
    ], CHECK_SPECS[spec.asset])


@dg.asset(**_RACE_ASSET, deps=["raw_results"], description=RACE_TABLES["raw_laps"].description,
          check_specs=_spec_checks("raw_laps", "positions_in_range", "drivers_in_results", "lap_times_positive",
                                   extra=[dg.AssetCheckSpec(
                                       "laps_complete", asset="raw_laps",  # WARN: never blocks
                                       description="Each driver's lap timings equal the laps the results say they "
                                       "completed; fails (WARN) for a partial race.")]))
def raw_laps(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    spec = RACE_TABLES["raw_laps"]
    staged = stage_race_table(context, spec, jolpica, warehouse)
    df, metadata, fetched = staged.df, staged.metadata, staged.fetched
    results = _results_for(warehouse, parse_race_key(context.partition_key))
    coverage = parse.lap_coverage(df, results)
    incomplete = coverage[~coverage["complete"]]
    if fetched is None:
        completeness = "not_upstream"
    elif df.empty:
        completeness = "missing"
    else:
        completeness = "complete" if incomplete.empty else "partial"
    metadata["completeness"] = completeness
    metadata["laps"] = int(df["lap_number"].max()) if len(df) else 0
    bad_times = df[df["lap_time_ms"].notna() & (df["lap_time_ms"] <= 0)]
    yield from land(context, staged, [
        _row_count_check(spec.asset, len(df), fetched),
        _has_rows_check(spec.asset, df, fetched),
        _positions_check(spec.asset, df, parse.starters(results)),
        _drivers_in_results_check(spec.asset, df, results),
        dg.AssetCheckResult(
            asset_key=spec.asset, check_name="lap_times_positive", passed=bad_times.empty,
            metadata={"failing": len(bad_times),
                      "failing_keys": (bad_times["driver_id"] + ":" + bad_times["lap_number"].astype(str)).head(20)
                      .tolist()}),
        dg.AssetCheckResult(
            asset_key=spec.asset, check_name="laps_complete", passed=completeness in ("complete", "not_upstream"),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"completeness": completeness, "drivers_incomplete": len(incomplete),
                      "timings": len(df), "laps_completed_per_results": int(coverage["laps_completed"].sum()),
                      "failing_keys": [f"{r.driver_id}: {r.timings}/{r.laps_completed}"
                                       for r in incomplete.head(20).itertuples()]}),
    ], CHECK_SPECS[spec.asset])


@dg.asset(**_RACE_ASSET, deps=["raw_results"], description=RACE_TABLES["raw_pit_stops"].description,
          check_specs=_spec_checks("raw_pit_stops", "drivers_in_results"))
def raw_pit_stops(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    spec = RACE_TABLES["raw_pit_stops"]
    staged = stage_race_table(context, spec, jolpica, warehouse)
    df, fetched = staged.df, staged.fetched
    results = _results_for(warehouse, parse_race_key(context.partition_key))
    yield from land(context, staged, [
        _row_count_check(spec.asset, len(df), fetched),
        # no pit stops at all upstream is a data gap (lap_features' stints and tyre ages would be wrong)
        _has_rows_check(spec.asset, df, fetched),
        _drivers_in_results_check(spec.asset, df, results),
    ], CHECK_SPECS[spec.asset])


RACE_ASSETS = [raw_results, raw_qualifying, raw_sprint_results, raw_laps, raw_pit_stops]
ASSETS = [raw_races, *RACE_ASSETS]
