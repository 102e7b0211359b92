"""Raw Jolpica (Ergast) assets: the season calendar and, per race, results, qualifying, sprint, laps,
pit stops and the championship standings after the round — typed tables in the warehouse, every
upstream page in the raw archive.

Each asset fetches and validates its pages (totals agree, rows = total, pandera), evaluates its rules
(`f1_assets.checks.rules.RAW`) and its quality score (`rules.quality_check`, WARN; the score also goes
into the materialization metadata) on the frame and only then returns it: the warehouse IO manager
writes the partition; the accepted pages are archived after that write.

Data provided by Jolpica/Ergast. Loaded by `f1_assets.definitions`.
"""


import datetime as dt
import hashlib
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pydantic import Field

from f1_assets import schemas, settings
from f1_assets.assets.ingest_dump import Snapshot, latest_snapshot
from f1_assets.checks import rules
from f1_assets.checks.rules import RAW, gate, reject
from f1_assets.io_managers import read_table, stored_rows
from f1_assets.partitions import (
    RACES_PER_RUN,
    RaceKey,
    batched_asset,
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
from f1_assets.tables import table
from f1_assets.transforms import jolpica as parse
from f1_assets.transforms import standings
from f1_assets.transforms.quality import quality_report

GROUP = "ingest_jolpica"
KINDS = {"python", "pandas", "sql"}
TRANSIENT_RETRIES = 3

# Unexpected errors (a database blip) retry with backoff and jitter; data errors raise
# Failure(allow_retries=False) and upstream trouble RetryRequested, so neither goes through this policy.
RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

ERA_START = {
    # endpoint: (first season upstream has it, why earlier races are empty)
    "qualifying": (1994, "Jolpica has qualifying results from 1994 on"),
    "laps": (1996, "Jolpica has lap timings from 1996 on"),
    "pitstops": (2011, "Jolpica has pit stops from 2011 on"),
    "constructorStandings": (1958, "the constructors' championship (and Jolpica's standings of it) began in 1958"),
}


@dataclass
class RaceInfo:
    key: RaceKey
    race_date: dt.date
    has_sprint: bool
    calendar_rows: int  # the race's rows in raw_races (0: taken from the season schedule instead)


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


def race_info(warehouse: WarehouseResource, client: JolpicaClient, key: RaceKey,
              calendar: pd.DataFrame | None = None, dump: Snapshot | None = None) -> RaceInfo:
    """The race's calendar row: from raw_races (`calendar`: the rows of the batch's seasons, read once),
    else from the dump that covers it, else from the season schedule (archived)."""
    season = read_table(warehouse, "raw_races", str(key.season)) if calendar is None else calendar
    rows = season[(season["season"] == key.season) & (season["round"] == key.round)]
    calendar_rows = len(rows)
    if rows.empty and dump is not None and dump.covers(key.season, key.round):
        rows = dump.rows("raw_races", key.season, key.round)
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
    return RaceInfo(key, pd.Timestamp(row["race_date"]).date(), bool(row["has_sprint"]), calendar_rows)


def versioned_output(frame: pd.DataFrame, version: str, metadata: dict) -> dg.Output:
    """The frame for the IO manager, with the upstream payload hash as its data version (what the
    corrections sensor compares). `Output(data_version=)` is Dagster's one way to version an output an
    IO manager writes; it is marked beta, so its BetaWarning is silenced here, and only here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(frame, metadata=metadata, data_version=dg.DataVersion(version))


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
    calendar_source: Literal["auto", "dump"] = Field(
        default="auto",
        description="auto: a season's schedule from the latest Jolpica dump when it covers every race of the "
        "season, else from the API. dump: from the dump for every season it holds (offline; the schedule of a "
        "season still running at the dump's date is as it was then).",
    )
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


def race_row_hashes(schedule: pd.DataFrame) -> dict[str, str]:
    """A short hash of each race's calendar row, by race key: what a calendar correction changes."""
    return {race_key(int(r["season"]), int(r["round"])):
            hashlib.sha256(r.to_json(date_format="iso").encode()).hexdigest()[:16]
            for _, r in schedule.iterrows()}


@dataclass
class StagedSeason:
    season: int
    df: pd.DataFrame
    fetched: FetchResult | None  # None: from the dump
    prefetched: list[FetchResult]
    rejected: dict[str, str]
    version: str
    source: str


def _stage_season(season: int, config: CalendarConfig, client: JolpicaClient, jolpica: JolpicaResource,
                  dump: Snapshot | None, log: Callable[[str], None]) -> StagedSeason:
    """A season's schedule: from the dump when it covers every race of the season, else from the API
    (and, for a settled season, its results/qualifying/sprint pages prefetched into the archive)."""
    from_dump = config.calendar_source == "dump" and dump is not None and dump.has_season(season)
    if dump is not None and (dump.covers_season(season) or from_dump):
        df = dump.rows("raw_races", season).reset_index(drop=True)
        return StagedSeason(season, df, None, [], {}, f"dump:{dump.sha256}", dump.label)
    fetched = _fetch(client, str(season), settled=season < current_season())
    df, fetched = accept(client, fetched, parse.parse_schedule, schemas.RAW_RACES, "raw_races", log)
    prefetched: list[FetchResult] = []
    rejected: dict[str, str] = {}
    if len(df) == fetched.total and len(df) and config.prefetch_season_tables and \
            season_settled(df, jolpica.effective_settle_days()):
        prefetched, rejected = prefetch_season_tables(client, season, df, log)
    return StagedSeason(season, df, fetched, prefetched, rejected, fetched.payload_hash, fetched.source(0))


@batched_asset(
    100,
    partitions_def=seasons_partitions,
    group_name=GROUP,
    kinds=KINDS,
    pool="jolpica",
    retry_policy=RETRY_POLICY,
    io_manager_key="warehouse_io_manager",
    metadata={"dagster/column_schema": table("raw_races").table_schema()},
    description="Season schedule (raw races). Registers the `races` partitions of races that have run, "
    "in chronological order. From the Jolpica dump for seasons it covers, else the API. "
    "Data provided by Jolpica/Ergast.",
    check_specs=[RAW["row_count_matches_upstream"].spec("raw_races"), rules.quality_spec("raw_races")],
)
def raw_races(
    context: dg.AssetExecutionContext, config: CalendarConfig, jolpica: JolpicaResource,
    warehouse: WarehouseResource,
):
    seasons = [parse_season(k) for k in context.partition_keys]
    client = jolpica.client(log=context.log.info,
                            max_wait_seconds=BATCH_MAX_WAIT_SECONDS if len(seasons) > 1 else None)
    dump = latest_snapshot(context.instance, jolpica.archive)
    staged = [_stage_season(season, config, client, jolpica, dump, context.log.warning) for season in seasons]
    per_season = {}
    for st in staged:
        total = st.fetched.total if st.fetched is not None else len(st.df)
        per_season[str(st.season)] = [RAW["row_count_matches_upstream"].outcome(
            len(st.df) == total and len(st.df) > 0, {"rows": len(st.df), "upstream_total": total, "url": st.source})]
    checks = rules.results("raw_races", rules.merge(per_season))
    if not checks[0].passed:
        bad = [st for st in staged if not per_season[str(st.season)][0].passed]
        stored = stored_rows(warehouse, "raw_races", str(bad[0].season))
        yield from reject(checks, f"raw_races {bad[0].season}: the schedule has {len(bad[0].df)} races "
                          f"({bad[0].source}); nothing was written, the {stored} stored rows are kept")

    reports = [quality_report(st.df, table("raw_races"), st.season, str(st.season)) for st in staged]
    checks.append(rules.quality_check("raw_races", reports))
    df = pd.concat([st.df for st in staged], ignore_index=True)
    keys = parse.races_run(df, dt.datetime.now(dt.UTC))
    existing = set(context.instance.get_dynamic_partitions(races_partitions.name))
    new_keys = [k for k in keys if k not in existing]
    fetched = [f for st in staged for f in ([st.fetched] if st.fetched else [])]
    prefetched = [f for st in staged for f in st.prefetched]
    rejected = {path: why for st in staged for path, why in st.rejected.items()}
    versions = [st.version for st in staged]
    version = versions[0] if len(set(versions)) == 1 else \
        "batch:" + hashlib.sha256(",".join(versions).encode()).hexdigest()
    yield from checks
    yield versioned_output(df, version, {
        **_fetch_metadata([*fetched, *prefetched], max(seasons) < current_season()),
        "upstream_total": sum(f.total for f in fetched) if fetched else len(df),
        "source": ", ".join(sorted({st.source for st in staged})) if len(staged) < 5 else
        f"{sum(st.fetched is None for st in staged)} seasons from the dump, {len(fetched)} from the API",
        "season_tables_prefetched": dg.MetadataValue.json({f.path: f.total for f in prefetched}),
        **({"season_tables_rejected": dg.MetadataValue.json(rejected)} if rejected else {}),
        "races_run": len(keys),
        "partitions_added": dg.MetadataValue.json(new_keys),
        "race_rows": dg.MetadataValue.json(race_row_hashes(df)),
        **({"seasons_in_run": len(seasons)} if len(seasons) > 1 else {}),
        **rules.quality_metadata(reports),
    })
    # after the IO manager wrote the seasons' rows: archive the pages, then register the races
    for f in fetched:
        _archive(context, client, f)
    if new_keys:
        context.instance.add_dynamic_partitions(races_partitions.name, new_keys)
    context.log.info(f"seasons {seasons[0]}..{seasons[-1]}: {len(df)} races scheduled, {len(keys)} run, "
                     f"{len(new_keys)} new partitions")


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


# The standings after each round (issue 14): raw race tables fetched, paged, accounted, archived and taken
# from the dump exactly as RACE_TABLES are. They are kept in their own dict (and STANDINGS_ASSETS) because
# they are derived upstream from results: the corrections sensor polls RACE_TABLES only and re-loads the
# standings when results or sprint results changed; every job, the CLI and freshness take both.
_STANDING_CHECKS = {"season": [pa.Check.in_range(1950, 2100)], "round": [pa.Check.in_range(1, 30)],
                    # points finite and below any season's total (the most so far: 575 in 2023)
                    "position": [pa.Check.ge(1)], "points": [pa.Check.in_range(0, 10_000)], "wins": [pa.Check.ge(0)],
                    "position_text": [pa.Check(lambda s: s.str.isdigit() | s.isin(["-", "D", "E"]))]}
RAW_DRIVER_STANDINGS = table("raw_driver_standings").pandera_schema(_STANDING_CHECKS)
RAW_CONSTRUCTOR_STANDINGS = table("raw_constructor_standings").pandera_schema(_STANDING_CHECKS)
STANDINGS_TABLES = {
    t.asset: t
    for t in [
        RaceTable("raw_driver_standings", "raw_driver_standings", "driverStandings", parse.parse_driver_standings,
                  RAW_DRIVER_STANDINGS, "Drivers' championship standings after the round: position, points, wins, "
                  "constructors (Jolpica driverStandings; every season)."),
        RaceTable("raw_constructor_standings", "raw_constructor_standings", "constructorStandings",
                  parse.parse_constructor_standings, RAW_CONSTRUCTOR_STANDINGS,
                  "Constructors' championship standings after the round: position, points, wins (Jolpica "
                  "constructorStandings; 1958+)."),
    ]
}


def upstream_has(asset: str, key: RaceKey, has_sprint: bool) -> bool:
    """Whether the upstream has the raw table `asset` for this race at all (its era and schedule)."""
    info = RaceInfo(key, dt.date(key.season, 1, 1), has_sprint, 0)
    return _not_upstream_reason({**RACE_TABLES, **STANDINGS_TABLES}[asset], info) is None


def _not_upstream_reason(spec: RaceTable, info: RaceInfo) -> str | None:
    if spec.endpoint == "sprint" and not info.has_sprint:
        return f"no sprint at {info.key.key}: the {info.key.season} schedule lists no Sprint session for it"
    era = ERA_START.get(spec.endpoint)
    if era and info.key.season < era[0]:
        return f"{era[1]}; {info.key.key} predates that"
    return None


@dataclass
class StagedTable:
    """One race table fetched (or read from the dump) and validated, not yet written nor archived."""

    spec: RaceTable
    df: pd.DataFrame
    metadata: dict
    fetched: FetchResult | None  # pages from the API or the raw archive (None: from the dump, or not upstream)
    client: JolpicaClient
    info: RaceInfo
    origin: str = "api"  # "api" | "dump" | "not_upstream"
    version: str = "empty"

    @property
    def key(self) -> str:
        return self.info.key.key

    @property
    def coverage(self) -> str:
        """complete | partial | none: what this race's rows hold (raw_laps may say partial)."""
        return self.metadata.get("coverage") or ("complete" if len(self.df) else "none")


# A step of many races (a backfill's batch) waits for the request budget instead of failing the batch
# into a retry that would fetch its races again.
BATCH_MAX_WAIT_SECONDS = 3600.0
# Backfills run a season's races per run (partitions.RACES_PER_RUN: one process and step per asset
# instead of one per race); a single race (the sensor, `f1-assets race`) is a batch of one.


class RaceBatch:
    """The races of one step: their keys, one client, their seasons' calendar rows read once, the dump."""

    def __init__(self, context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
        self.keys = [parse_race_key(k) for k in context.partition_keys]
        wait = BATCH_MAX_WAIT_SECONDS if len(self.keys) > 1 else None
        self.client = jolpica.client(log=context.log.info, max_wait_seconds=wait)
        self.calendar = read_table(warehouse, "raw_races", sorted({str(k.season) for k in self.keys}))
        self.dump = latest_snapshot(context.instance, jolpica.archive)
        self.warehouse = warehouse
        self.settle_days = jolpica.effective_settle_days()
        self.log = context.log

    def info(self, key: RaceKey) -> RaceInfo:
        return race_info(self.warehouse, self.client, key, self.calendar, self.dump)

    def stage(self, spec: RaceTable) -> list[StagedTable]:
        return [stage_race_table(self, key, spec) for key in self.keys]

    def describe(self) -> str:
        keys = [k.key for k in self.keys]
        return keys[0] if len(keys) == 1 else f"{keys[0]}…{keys[-1]} ({len(keys)} races)"


def stage_race_table(batch: RaceBatch, key: RaceKey, spec: RaceTable) -> StagedTable:
    """Fetch and validate one race table: every page agrees on MRData.total, the rows equal it and the
    schema holds; or take the race's rows from the dump that covers it. Nothing is written or archived
    here (`land` does that once the checks pass)."""
    client, log = batch.client, batch.log
    info = batch.info(key)
    partition = {"season": key.season, "round": key.round}
    reason = _not_upstream_reason(spec, info)
    if batch.dump is not None and batch.dump.covers(key.season, key.round):
        # the database as dumped: its rows, or none (then the era's reason when it has one)
        df = batch.dump.rows(spec.table, key.season, key.round)
        metadata = {"source": batch.dump.label, "upstream_requests": 0, "dump_sha256": batch.dump.sha256}
        if df.empty:
            metadata["empty_reason"] = reason or (f"the Jolpica database holds no {spec.endpoint} for {key.key} "
                                                  f"({batch.dump.label})")
            metadata["coverage"] = "none"
        return StagedTable(spec, df, metadata, None, client, info, "dump", f"dump:{batch.dump.sha256}")
    if reason is not None:
        log.info(f"{spec.table} {key.key}: empty — {reason}")
        metadata = {"empty_reason": reason, "upstream_requests": client.stats.requests, "coverage": "none"}
        return StagedTable(spec, spec.parser([]), metadata, None, client, info, "not_upstream", "empty")

    settled = dt.date.today() - info.race_date > dt.timedelta(days=batch.settle_days)
    df = fetched = None
    if settled and spec.endpoint in SEASON_TABLES:
        season_pages = client.fetch_archived(f"{key.season}/{spec.endpoint}")
        if season_pages is not None:
            try:
                season_df = _validated_frame(season_pages, spec.parser, spec.schema, spec.table)
            except dg.Failure as failure:
                moved = client.quarantine(season_pages, failure.description or "failed validation")
                log.warning(f"season pages {season_pages.path} failed validation ({failure.description}); "
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
        df, fetched = accept(client, fetched, spec.parser, spec.schema, spec.table, log.warning, expect=partition)
    metadata = {
        **_fetch_metadata([fetched], settled),
        "upstream_requests": client.stats.requests,  # includes a schedule fetch if raw_races lacked the race
    }
    if client.stats.quarantined:
        metadata["quarantined"] = dg.MetadataValue.json(client.stats.quarantined)
    if fetched.path.count("/") == 1:
        metadata["source"] = f"season pages {fetched.path} from the raw archive"
    if fetched.total == 0:
        metadata["empty_reason"] = f"upstream has no {spec.endpoint} for {key.key} (yet)"
    return StagedTable(spec, df, metadata, fetched, client, info, "api", fetched.payload_hash)


def _archive(context: dg.AssetExecutionContext, client: JolpicaClient, fetched: FetchResult) -> None:
    """Archive accepted pages after the write. The rows are right either way: a store that refuses the
    write (read-only, permissions, a bucket error) is logged as a warning, and the next run of a settled
    race fetches from upstream instead of the archive."""
    try:
        client.archive_accepted(fetched)
    except Exception as exc:  # noqa: BLE001 — any storage error; the rows are already written and valid
        context.log.warning(settings.redact(f"raw archive not written for {fetched.path}: "
                                            f"{type(exc).__name__}: {exc}"))


def batch_metadata(staged: Sequence[StagedTable], requests: int) -> dict:
    """A race's own metadata; for a batch, totals of a size that does not grow with the batch (Dagster
    repeats a run's output metadata on every partition's materialization): coverage counts, the races
    that are not complete (the first 20) and one example reason."""
    if len(staged) == 1:
        return {**staged[0].metadata, "coverage": staged[0].coverage}
    origins: dict[str, int] = {}
    states: dict[str, int] = {}
    for s in staged:
        origins[s.origin] = origins.get(s.origin, 0) + 1
        states[s.coverage] = states.get(s.coverage, 0) + 1
    lacking = [f"{s.key} {s.coverage}" for s in staged if s.coverage != "complete"]
    reason = next((f"{s.key}: {s.metadata['empty_reason']}" for s in staged if s.metadata.get("empty_reason")), None)
    dumps_used = sorted({s.metadata["source"] for s in staged if s.origin == "dump"})
    return {
        "partitions_in_run": len(staged),
        "upstream_requests": requests,
        "archive_hits": sum(s.fetched.archive_hits for s in staged if s.fetched is not None),
        "sources": dg.MetadataValue.json(origins),
        **({"source": ", ".join(dumps_used)} if dumps_used else {}),
        "coverage": dg.MetadataValue.json(states),
        **({"not_complete": dg.MetadataValue.json(lacking[:20] + ([f"… {len(lacking) - 20} more"]
                                                                 if len(lacking) > 20 else []))} if lacking else {}),
        **({"empty_reason_example": reason} if reason else {}),
    }


def _batch_version(staged: Sequence[StagedTable]) -> str:
    versions = [s.version for s in staged]
    if len(set(versions)) == 1:
        return versions[0]
    return "batch:" + hashlib.sha256("\n".join(f"{s.key}={s.version}" for s in staged).encode()).hexdigest()


def land(
    context: dg.AssetExecutionContext, batch: RaceBatch, staged: Sequence[StagedTable],
    evaluate: Callable[[StagedTable], list[rules.CheckOutcome]],
) -> Iterator[dg.AssetCheckResult | dg.Output]:
    """Hand a batch of staged race tables to the IO manager once their blocking checks pass; else report
    them and fail.

    The checks run on each race's frame *before* the write (one result per rule for the batch, naming
    the failing races): a blocking failure records the check results, fails the step (no retry) and
    writes nothing — the stored rows stay and downstream steps are skipped. Then the IO manager's write
    of every race in one transaction (refusing a smaller version) and only then the archive of the pages."""
    spec = staged[0].spec
    asset = spec.asset
    checks = rules.results(asset, rules.merge({s.key: evaluate(s) for s in staged}))
    # the quality of each race's frame about to be written (WARN only: never blocks)
    reports = [quality_report(s.df, table(spec.table), s.info.key.season, s.key) for s in staged]
    checks.append(rules.quality_check(asset, reports))
    rows = sum(len(s.df) for s in staged)
    stored: Callable[[], int | str] = (
        (lambda: stored_rows(batch.warehouse, spec.table, staged[0].key)) if len(staged) == 1
        else (lambda: f"the rows of all {len(staged)} races"))
    yield from gate(checks, CHECK_SPECS[asset], f"{asset} {batch.describe()} ({rows} rows)", stored)
    from_dump = [s.df for s in staged if s.origin == "dump" and len(s.df)]
    if from_dump:  # the dump's rows meet the same schema as the API's pages (one validation per batch)
        try:
            label = batch.dump.label if batch.dump is not None else "the dump"
            schemas.validate(spec.schema, pd.concat(from_dump, ignore_index=True), spec.table, label)
        except schemas.SchemaViolation as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    yield from checks
    frames = [s.df for s in staged if len(s.df)]
    frame = pd.concat(frames, ignore_index=True) if frames else staged[0].df
    yield versioned_output(frame, _batch_version(staged), {**batch_metadata(staged, batch.client.stats.requests),
                                                           **rules.quality_metadata(reports)})
    for s in staged:  # resumed after the IO manager wrote the rows
        if s.fetched is not None:
            _archive(context, s.client, s.fetched)


def _has_rows(staged: StagedTable) -> rules.CheckOutcome:
    """A race that has run has rows for every table its era and schedule say exist (from the API); a race
    the dump covers has what the database holds (none is recorded as coverage, not a failure)."""
    df, fetched = staged.df, staged.fetched
    if staged.origin == "not_upstream":
        return RAW["has_rows"].outcome(True, {"rows": 0, "note": "not upstream for this race (see empty_reason)"})
    if staged.origin == "dump":
        return RAW["has_rows"].outcome(True, {"rows": len(df), "coverage": staged.coverage,
                                              "source": staged.metadata["source"]})
    reason = {} if len(df) else {"reason": f"the upstream answered 0 rows ({fetched.source(0)}) for a race that has "
                                           "run; re-polled until it has them"}
    return RAW["has_rows"].outcome(len(df) > 0, {"rows": len(df), "upstream_total": fetched.total,
                                                 "url": fetched.source(0), **reason})


def _row_count(staged: StagedTable) -> rules.CheckOutcome:
    rows = len(staged.df)
    expected = staged.fetched.total if staged.fetched else rows if staged.origin == "dump" else 0
    return RAW["row_count_matches_upstream"].outcome(rows == expected, {"rows": rows, "upstream_total": expected})


def _positions(df: pd.DataFrame, starters: int, column: str = "position") -> rules.CheckOutcome:
    bad = df.loc[df[column].notna() & ((df[column] < 1) | (df[column] > max(starters, 1)))]
    keys = bad.get("driver_id", pd.Series(dtype=object)).astype(str).head(20).tolist()
    return RAW["positions_in_range"].outcome(bad.empty, {"checked": int(df[column].notna().sum()),
                                                        "starters": starters, "failing": len(bad),
                                                        "failing_keys": keys})


def drivers_in_results(drivers: pd.Series, results: pd.DataFrame, key: str = "driver_id",
                       without_results: str = "ERROR") -> rules.CheckOutcome:
    """The one `drivers_in_results` rule: every driver (by `key`: driver_id or driver_number) of the rows
    is in the race's Jolpica results. Rows but no results fail with severity `without_results` (ERROR
    for Jolpica's own tables; WARN for FastF1's, whose host is another)."""
    present = sorted({int(v) if key == "driver_number" else str(v) for v in drivers.dropna()})
    rule = rules.DRIVERS_IN_RESULTS
    if not present:
        return rule.outcome(True, {"drivers": 0, "note": "no rows to check"})
    if len(results) == 0:
        return rule.outcome(False, {"drivers": len(present),
                                    "note": "no raw_results rows for this race: materialize raw_results"},
                            severity=without_results)
    known = {int(v) if key == "driver_number" else str(v) for v in results[key].dropna()}
    missing = [d for d in present if d not in known]
    return rule.outcome(not missing, {"drivers": len(present), "results_drivers": len(known),
                                      "failing_count": len(missing), "failing_keys": missing[:rules.MAX_KEYS]})


CHECK_SPECS: dict[str, list[dg.AssetCheckSpec]] = {}


def _spec_checks(asset: str, *names: str) -> list[dg.AssetCheckSpec]:
    specs = [*rules.specs(asset, [RAW[n] for n in ("row_count_matches_upstream", "has_rows", *names)]),
             rules.quality_spec(asset)]
    CHECK_SPECS[asset] = specs
    return specs


def _race_asset(asset: str, *check_names: str, **kwargs):
    """The decorator of a race table asset: its table's column schema, checks, pool, IO manager and
    backfill policy (a season's races per run)."""
    return batched_asset(RACES_PER_RUN, name=asset, partitions_def=races_partitions, group_name=GROUP, kinds=KINDS,
                         pool="jolpica", retry_policy=RETRY_POLICY, io_manager_key="warehouse_io_manager",
                         description={**RACE_TABLES, **STANDINGS_TABLES}[asset].description,
                         metadata={"dagster/column_schema": table(asset).table_schema()},
                         check_specs=_spec_checks(asset, *check_names), **kwargs)


# Race tables read their race's calendar row (race date, sprint or not) from `raw_races`, which is
# partitioned by season: Dagster has no partition mapping from a dynamic `YYYY-RR` key to its season
# (custom mappings are not supported), and an all-partitions edge would make every race depend on
# every season. So there is no graph edge: `race_info` reads the row through the IO manager, and a
# calendar correction reaches its races through `calendar_corrections_sensor` (the per-race row hashes
# in raw_races' metadata). Likewise `jolpica_dump`: a race reads the newest archived dump that covers it
# (`ingest_dump.latest_snapshot`), with no edge that would make every race depend on one object.


def _results_of(results: pd.DataFrame) -> Callable[[StagedTable], pd.DataFrame]:
    """A batch's raw_results input (every race of it) split per race, for the rules of one race."""
    races = parse.by_race(results)
    empty = results.iloc[0:0]
    return lambda staged: races.get((staged.info.key.season, staged.info.key.round), empty)


@_race_asset("raw_results", "positions_in_range", "joins_race")
def raw_results(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    batch = RaceBatch(context, jolpica, warehouse)

    def evaluate(staged: StagedTable) -> list[rules.CheckOutcome]:
        df, in_calendar = staged.df, staged.info.calendar_rows
        return [_row_count(staged), _has_rows(staged), _positions(df, len(df)),
                RAW["joins_race"].outcome(df.empty or in_calendar == 1, {"raw_races_rows": in_calendar,
                                                                         "result_rows": len(df)})]

    yield from land(context, batch, batch.stage(RACE_TABLES["raw_results"]), evaluate)


def _classification(context: dg.AssetExecutionContext, asset: str, jolpica: JolpicaResource,
                    warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult | dg.Output]:
    """A classification that stands on its own rows (qualifying, sprint): positions 1..its row count."""
    batch = RaceBatch(context, jolpica, warehouse)
    yield from land(context, batch, batch.stage(RACE_TABLES[asset]),
                    lambda st: [_row_count(st), _has_rows(st), _positions(st.df, len(st.df))])


@_race_asset("raw_qualifying", "positions_in_range", deps=["raw_results"])
def raw_qualifying(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    yield from _classification(context, "raw_qualifying", jolpica, warehouse)


@_race_asset("raw_sprint_results", "positions_in_range", deps=["raw_results"])
def raw_sprint_results(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    yield from _classification(context, "raw_sprint_results", jolpica, warehouse)


def _laps_complete(staged: StagedTable, results: pd.DataFrame) -> tuple[str, rules.CheckOutcome]:
    df = staged.df
    coverage = parse.lap_coverage(df, results)
    incomplete = coverage[~coverage["complete"]]
    if staged.origin == "not_upstream" or staged.origin == "dump" and df.empty:  # the database holds none
        completeness = "not_upstream"
    elif df.empty:
        completeness = "missing"
    else:
        completeness = "complete" if incomplete.empty else "partial"
    return completeness, RAW["laps_complete"].outcome(
        completeness in ("complete", "not_upstream"),
        {"completeness": completeness, "drivers_incomplete": len(incomplete), "timings": len(df),
         "laps_completed_per_results": int(coverage["laps_completed"].sum()),
         "failing_keys": [f"{r.driver_id}: {r.timings}/{r.laps_completed}" for r in incomplete.head(20).itertuples()]})


@_race_asset("raw_laps", "positions_in_range", "drivers_in_results", "lap_times_positive", "laps_complete")
def raw_laps(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource,
             raw_results: pd.DataFrame):
    batch = RaceBatch(context, jolpica, warehouse)
    results_of = _results_of(raw_results)

    def evaluate(staged: StagedTable) -> list[rules.CheckOutcome]:
        df, results = staged.df, results_of(staged)
        completeness, complete = _laps_complete(staged, results)
        staged.metadata["completeness"] = completeness
        staged.metadata["coverage"] = {"complete": "complete", "partial": "partial"}.get(completeness, "none")
        staged.metadata["laps"] = int(df["lap_number"].max()) if len(df) else 0
        bad_times = df[df["lap_time_ms"].notna() & (df["lap_time_ms"] <= 0)]
        bad_keys = (bad_times["driver_id"] + ":" + bad_times["lap_number"].astype(str)).head(20).tolist()
        return [
            _row_count(staged),
            _has_rows(staged),
            _positions(df, parse.starters(results)),
            drivers_in_results(df["driver_id"], results),
            RAW["lap_times_positive"].outcome(bad_times.empty, {"failing": len(bad_times), "failing_keys": bad_keys}),
            complete,
        ]

    yield from land(context, batch, batch.stage(RACE_TABLES["raw_laps"]), evaluate)


@_race_asset("raw_pit_stops", "drivers_in_results")
def raw_pit_stops(context: dg.AssetExecutionContext, jolpica: JolpicaResource,
                  warehouse: WarehouseResource, raw_results: pd.DataFrame):
    batch = RaceBatch(context, jolpica, warehouse)
    results_of = _results_of(raw_results)
    # no pit stops at all upstream is a data gap (lap_features' stints and tyre ages would be wrong)
    yield from land(context, batch, batch.stage(RACE_TABLES["raw_pit_stops"]),
                    lambda st: [_row_count(st), _has_rows(st), drivers_in_results(st.df["driver_id"], results_of(st))])


def _standings_asset(context: dg.AssetExecutionContext, asset: str, kind: str, jolpica: JolpicaResource,
                     warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult | dg.Output]:
    """A standings table of a batch of races: the RaceTable machinery, plus `standings_agree_with_results`
    against the season's results and sprint results of rounds 1..R read from the warehouse (earlier rounds
    are other partitions: no graph input reaches them; the deps order this race's results first)."""
    batch = RaceBatch(context, jolpica, warehouse)
    upto = {}
    for key in batch.keys:
        upto[key.season] = max(upto.get(key.season, 0), key.round)
    keys = [race_key(season, r) for season, last in sorted(upto.items()) for r in range(1, last + 1)]
    results, sprint = read_table(warehouse, "raw_results", keys), read_table(warehouse, "raw_sprint_results", keys)

    def evaluate(st: StagedTable) -> list[rules.CheckOutcome]:
        season, rnd = st.info.key.season, st.info.key.round
        verdict = standings.standings_agree(st.df, kind, season, rnd, batch.calendar, results, sprint)
        if st.origin == "not_upstream":
            verdict = standings.Verdict(True, {**verdict.metadata, "reason": st.metadata["empty_reason"]})
        return [_row_count(st), _has_rows(st), _positions(st.df, len(st.df)),
                RAW["standings_agree_with_results"].outcome(verdict.passed, verdict.metadata)]

    yield from land(context, batch, batch.stage(STANDINGS_TABLES[asset]), evaluate)


@_race_asset("raw_driver_standings", "positions_in_range", "standings_agree_with_results",
             deps=["raw_results", "raw_sprint_results"])
def raw_driver_standings(context: dg.AssetExecutionContext, jolpica: JolpicaResource, warehouse: WarehouseResource):
    yield from _standings_asset(context, "raw_driver_standings", "driver", jolpica, warehouse)


@_race_asset("raw_constructor_standings", "positions_in_range", "standings_agree_with_results",
             deps=["raw_results", "raw_sprint_results"])
def raw_constructor_standings(context: dg.AssetExecutionContext, jolpica: JolpicaResource,
                              warehouse: WarehouseResource):
    yield from _standings_asset(context, "raw_constructor_standings", "constructor", jolpica, warehouse)


RACE_ASSETS = [raw_results, raw_qualifying, raw_sprint_results, raw_laps, raw_pit_stops]
STANDINGS_ASSETS = [raw_driver_standings, raw_constructor_standings]
ASSETS = [raw_races, *RACE_ASSETS, *STANDINGS_ASSETS]
