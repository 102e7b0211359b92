"""Jolpica's CSV database dump: the `jolpica_dump` asset, and the dump as a source of the raw race tables.

Jolpica publishes its whole database as a zip of CSVs for bulk users (free tier: the newest dump at
least 14 days old, no key, non-commercial use). `jolpica_dump` takes it from `F1_JOLPICA_DUMP_URL` (a
URL or a local path; unset: the delayed CSV endpoint on F1_JOLPICA_URL's host), checks it (the size
and hash the dump overview announces, when it can be read; a zip that does not read as Jolpica's
dump is a clear error naming the source and member), archives it in the blob store under
`jolpica-dump/<sha256>.zip` and registers every race of it that has run as a `races` partition.

The raw race assets and `raw_races` then read a race's rows from the newest archived dump instead of
the API when the dump covers it (`Snapshot.covers`: the race is in the dump and on or before the
dump's data date, the newest race it has results for) — the same tables, row for row (the
transforms in `f1_assets/transforms/dump.py`). Races after the data date come from the API.
Called by `f1_assets.definitions` (the asset) and `ingest_jolpica` (the source).
"""


import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pandas as pd
from pydantic import Field

from f1_assets import settings
from f1_assets.partitions import races_partitions
from f1_assets.resources.jolpica import JolpicaClient, JolpicaError, JolpicaResource
from f1_assets.resources.storage import BlobStoreResource
from f1_assets.transforms import dump as dumps
from f1_assets.transforms.jolpica import races_run

GROUP = "ingest_jolpica"
ASSET = dg.AssetKey("jolpica_dump")
PREFIX = "jolpica-dump"
DELAYED_PATH = "/data/dumps/download/delayed/?dump_type=csv"
OVERVIEW_PATH = "/data/dumps/download/"


def _host_url(jolpica_base_url: str, path: str) -> str:
    parts = urlsplit(jolpica_base_url)
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    path, _, query = path.partition("?")
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def default_dump_url(jolpica_base_url: str) -> str:
    """The free tier's delayed CSV dump on the Jolpica host (it redirects to the file)."""
    return _host_url(jolpica_base_url, DELAYED_PATH)


@dataclass(frozen=True)
class DumpFile:
    data: bytes
    source: str  # the path or URL it was read from (no password)
    requests: int = 0
    announced: dict[str, Any] = field(default_factory=dict)  # the overview's entry: uploaded_at, file_hash, file_size

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _overview_entry(payload: Any) -> dict[str, Any]:
    """The newest CSV dump of the overview (`GET /data/dumps/download/`): a list of dumps, or an object
    holding one under `results`/`dumps`; {} when it lists none."""
    entries = payload.get("results") or payload.get("dumps") or [] if isinstance(payload, dict) else payload
    csv = [e for e in entries or [] if isinstance(e, dict) and str(e.get("dump_type", "csv")).lower() == "csv"]
    return max(csv, key=lambda e: str(e.get("uploaded_at", "")), default={})


def obtain(source: str, client: JolpicaClient | None, log=lambda _m: None) -> DumpFile:
    """The dump's bytes from a local path or a URL (through the Jolpica client: its budget, retries and
    errors). For a URL the overview on the same host is read first for the size and hash it announces;
    an overview that cannot be read only means those checks are skipped (logged)."""
    if "://" not in source:
        path = Path(source).expanduser()
        try:
            return DumpFile(path.read_bytes(), str(path.resolve()))
        except OSError as exc:
            raise dg.Failure(description=f"cannot read the dump {path} (--dump or {settings.JOLPICA_DUMP_URL}): "
                             f"{exc.strerror or exc}", allow_retries=False) from None
    if client is None:
        raise ValueError("a client is needed to download a dump")
    announced: dict[str, Any] = {}
    requests_before = client.stats.requests
    overview = _host_url(source, OVERVIEW_PATH)
    try:
        announced = _overview_entry(json.loads(client.download(overview, timeout_seconds=60)))
    except (JolpicaError, ValueError, AttributeError, TypeError) as exc:
        log(settings.redact(f"dump overview {overview} not read ({exc}): size and hash are not checked"))
    try:
        data = client.download(source)
    except JolpicaError as exc:
        raise dg.Failure(description=settings.redact(
            f"the Jolpica dump could not be downloaded: {exc}. A local copy or a mirror: `f1-assets history --dump "
            f"PATH_OR_URL` or {settings.JOLPICA_DUMP_URL}"),
                         metadata={"url": settings.redact(source)}, allow_retries=False) from exc
    return DumpFile(data, settings.redact(source), client.stats.requests - requests_before, announced)


def verify(file: DumpFile) -> None:
    """DumpError when the bytes differ from what the overview announced (size; hash when it gives one:
    64 hex digits SHA-256, 32 MD5)."""
    size = file.announced.get("file_size")
    if size not in (None, "") and not str(size).isdigit():
        raise dumps.DumpError(f"dump {file.source}: the overview's file_size {size!r} is not a number of bytes")
    if size not in (None, "") and int(size) != len(file.data):
        raise dumps.DumpError(f"dump {file.source}: {len(file.data)} bytes, the overview announces {int(size)} "
                              "(a truncated download?)")
    announced = str(file.announced.get("file_hash") or "").lower().removeprefix("sha256:").removeprefix("md5:")
    if announced:
        algorithm = {64: "sha256", 32: "md5"}.get(len(announced))
        if algorithm is None:
            raise dumps.DumpError(f"dump {file.source}: the overview's file_hash {announced!r} is neither SHA-256 "
                                  "nor MD5")
        actual = hashlib.new(algorithm, file.data).hexdigest()
        if actual != announced:
            raise dumps.DumpError(f"dump {file.source}: {algorithm} {actual} differs from the overview's "
                                  f"{announced} (a corrupt download?)")


# ------------------------------------------------------------------------- the dump as a source

_PARSED: dict[str, dict[str, Any]] = {}  # sha256 → {"tables": …, "races": {table: by_race}} (the newest one)


def parsed(sha256: str, data: bytes | None = None, blob_store: BlobStoreResource | None = None,
           name: str | None = None) -> dict[str, Any]:
    """The dump's raw tables (and per race), parsed once per process (the newest dump only); `name` says
    where the bytes came from in errors."""
    if sha256 not in _PARSED:
        if data is None:
            data = blob_store.get().get(blob_key(sha256)) if blob_store is not None else None
            if data is None:
                raise dg.Failure(description=f"the archived Jolpica dump {blob_key(sha256)} is not in the blob "
                                 "store: materialize jolpica_dump again", allow_retries=False)
        tables = dumps.raw_tables(dumps.read_dump(data, name or blob_key(sha256)))
        _PARSED.clear()
        _PARSED[sha256] = {"tables": tables, "races": {name: dumps.by_race(f) for name, f in tables.items()}}
    return _PARSED[sha256]


def blob_key(sha256: str) -> str:
    return f"{PREFIX}/{sha256}.zip"


@dataclass
class Snapshot:
    """The newest archived dump as the raw tables' source (from `jolpica_dump`'s latest materialization)."""

    sha256: str
    data_date: dt.date | None
    blob_store: BlobStoreResource

    @property
    def label(self) -> str:
        return f"Jolpica dump {self.sha256[:12]} (data to {self.data_date})"

    def _races(self, name: str) -> dict[tuple[int, int], pd.DataFrame]:
        return parsed(self.sha256, blob_store=self.blob_store)["races"][name]

    def covers(self, season: int, rnd: int) -> bool:
        """The race is in the dump and on or before its data date: its rows are the dump's."""
        if self.data_date is None:
            return False
        calendar = self._races("raw_races").get((season, rnd))
        return calendar is not None and pd.Timestamp(calendar["race_date"].iloc[0]).date() <= self.data_date

    def covers_season(self, season: int) -> bool:
        """Every race of the season is in the dump, the last on or before its data date."""
        rounds = [r for (s, r) in self._races("raw_races") if s == season]
        return bool(rounds) and all(self.covers(season, r) for r in rounds)

    def has_season(self, season: int) -> bool:
        return any(s == season for (s, _) in self._races("raw_races"))

    def rows(self, name: str, season: int, rnd: int | None = None) -> pd.DataFrame:
        races = self._races(name)
        if rnd is not None:
            found = races.get((season, rnd))
            return found if found is not None else parsed(self.sha256)["tables"][name].iloc[0:0]
        parts = [f for (s, _), f in sorted(races.items()) if s == season]
        return pd.concat(parts, ignore_index=True) if parts else parsed(self.sha256)["tables"][name].iloc[0:0]


def latest_snapshot(instance: dg.DagsterInstance, blob_store: BlobStoreResource) -> Snapshot | None:
    """The dump of `jolpica_dump`'s latest materialization, or None (never loaded: the API is the source)."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=ASSET), limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    metadata = records[0].asset_materialization.metadata
    sha, date = metadata.get("sha256"), metadata.get("data_date")
    if sha is None:
        return None
    data_date = dt.date.fromisoformat(str(date.value)) if date is not None and date.value else None
    return Snapshot(str(sha.value), data_date, blob_store)


# ------------------------------------------------------------------------- the asset

class DumpConfig(dg.Config):
    allow_older: bool = Field(
        default=False,
        description="Accept a dump whose data date is older than the loaded dump's (it would become the source of "
        "the races it covers).",
    )
    source: str | None = Field(
        default=None,
        description=f"URL or local path of a Jolpica CSV dump; default: {settings.JOLPICA_DUMP_URL}, else the "
        f"delayed CSV endpoint ({DELAYED_PATH}) on {settings.JOLPICA_URL}'s host.",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas"},
    pool="jolpica",
    description="Jolpica's whole database as its CSV dump (free tier: at least 14 days old; non-commercial use), "
    "checked and archived in the blob store; the source of the raw tables for every race it covers. "
    "Data provided by Jolpica/Ergast.",
)
def jolpica_dump(context: dg.AssetExecutionContext, config: DumpConfig, jolpica: JolpicaResource,
                 blob_store: BlobStoreResource) -> dg.MaterializeResult:
    source = config.source or settings.jolpica_dump_url() or default_dump_url(jolpica.effective_base_url())
    client = jolpica.client(log=context.log.info) if "://" in source else None
    file = obtain(source, client, context.log.warning)
    try:
        verify(file)
        previous = latest_snapshot(context.instance, blob_store)
        unchanged = previous is not None and previous.sha256 == file.sha256
        tables = parsed(file.sha256, file.data, name=file.source)["tables"]
        newest = dumps.data_date(tables)
        if (previous is not None and previous.data_date and newest and newest < previous.data_date
                and not config.allow_older):
            raise dumps.DumpError(
                f"dump {file.source}: its data date {newest} is older than the loaded dump's {previous.data_date} "
                f"({previous.sha256[:12]}); nothing was loaded (config allow_older: true accepts it)")
    except dumps.DumpError as exc:
        raise dg.Failure(description=str(exc), metadata={"source": file.source},
                         allow_retries=False) from exc
    store = blob_store.get()
    key = blob_key(file.sha256)
    archived = store.exists(key)
    if not archived:
        store.put(key, file.data, content_type="application/zip")
    keys = races_run(tables["raw_races"], dt.datetime.now(dt.UTC))
    known = set(context.instance.get_dynamic_partitions(races_partitions.name))
    new_keys = [k for k in keys if k not in known]
    if new_keys:
        context.instance.add_dynamic_partitions(races_partitions.name, new_keys)
    per_race = dumps.coverage(tables)
    by_season = dumps.coverage_by_season(per_race)
    data_date = dumps.data_date(tables)
    context.log.info(f"jolpica_dump {file.sha256[:12]}: {len(tables['raw_races'])} races, data to {data_date}, "
                     f"{len(new_keys)} new race partitions{' (unchanged since the last load)' if unchanged else ''}")
    return dg.MaterializeResult(
        metadata={
            "sha256": file.sha256,
            "bytes": len(file.data),
            "source": file.source,
            **({"uploaded_at": str(file.announced["uploaded_at"])} if file.announced.get("uploaded_at") else {}),
            "data_date": data_date.isoformat() if data_date else "",
            "blob_key": key,
            "blob_url": store.url(key),
            "archived_now": not archived,
            "upstream_requests": file.requests,
            "races": len(tables["raw_races"]),
            "races_with_results": int(tables["raw_results"][["season", "round"]].drop_duplicates().shape[0]),
            "rows": dg.MetadataValue.json({name: len(frame) for name, frame in tables.items()}),
            "partitions_added": len(new_keys),
            "coverage": dg.MetadataValue.md(_coverage_markdown(by_season)),
            "licence": "Jolpica free tier: non-commercial use; attribution 'Data provided by Jolpica/Ergast'",
        },
        data_version=dg.DataVersion(file.sha256),
    )


def _coverage_markdown(by_season: pd.DataFrame) -> str:
    """The dump's coverage per season as a Markdown table: races, then per raw table the races whose rows
    are complete (`+n`: partial, e.g. fastest-lap-only laps)."""
    header = "| " + " | ".join(by_season.columns) + " |"
    rule = "|" + "|".join("---" for _ in by_season.columns) + "|"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in by_season.itertuples(index=False)]
    return "\n".join(["Races per season, and races with rows per raw table (complete+partial):", "",
                      header, rule, *lines])


ASSETS = [jolpica_dump]
