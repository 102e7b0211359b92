"""The Jolpica (Ergast-compatible) client — the project's one HTTP client for Jolpica — and its resource.

`JolpicaClient.fetch(path)` returns every page of one endpoint:
- pages with `limit=100` (the server's cap) and `offset` until `MRData.total`, so a race costs the
  lower bound of requests: the sum over endpoints of ceil(total/100) (at least one each);
- every request passes the shared rate budget first (`rate_budget.RateLimiter`);
- 429 (Jolpica sends no Retry-After), 5xx, timeouts and connection resets are retried a bounded
  number of times with exponential backoff and jitter, then fail with `JolpicaTransientError`;
- 400/404, HTML bodies, truncated or non-JSON bodies fail at once with `JolpicaResponseError`
  naming the URL;
- every page is archived as gzip JSON in the blob store, keyed by URL. A settled race (older than
  the settle period) is served from the archive: zero upstream requests.
Called by the ingest assets and the new-race sensor.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import requests

from f1_assets import settings
from f1_assets.resources.rate_budget import FileLedger, PostgresLedger, RateLimiter, RequestLedger
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource
from f1_assets.storage.blob import BlobStore
from f1_assets.transforms.jolpica import Page, UpstreamDataError, page_total

PAGE_LIMIT = 100  # Jolpica caps limit at 100 whatever is asked
ARCHIVE_PREFIX = "jolpica"


class JolpicaError(RuntimeError):
    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


class JolpicaResponseError(JolpicaError):
    """A response that retrying will not fix (400/404, HTML, non-JSON or truncated body)."""


class JolpicaTransientError(JolpicaError):
    """Retries exhausted on 429/5xx/timeouts/connection resets."""

    def __init__(self, message: str, url: str, status: int | None):
        super().__init__(message, url)
        self.status = status


@dataclass
class FetchResult:
    path: str
    pages: list[Page]
    total: int
    requests: int = 0
    archive_hits: int = 0
    bytes_read: int = 0
    payload_hash: str = ""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    archive_hits: int = 0
    bytes_read: int = 0
    urls: list[str] = field(default_factory=list)


def _payload_hash(pages: list[Page]) -> str:
    """Hash of the data, not the envelope: MRData.url echoes the host the page was served from."""
    digest = hashlib.sha256()
    for _, payload in pages:
        body = {k: v for k, v in payload.get("MRData", {}).items() if k not in ("url", "xmlns")}
        digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


class JolpicaClient:
    def __init__(
        self,
        base_url: str,
        archive: BlobStore,
        limiter: RateLimiter,
        timeout_seconds: float = 30.0,
        max_retries: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        scheme = urlsplit(self.base_url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"invalid Jolpica base URL {base_url!r}: expected http(s)://…")
        self.archive = archive
        self.limiter = limiter
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.log = log or (lambda _msg: None)
        self.sleep = sleep
        self.stats = ClientStats()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "f1-assets (+Dagster; data provided by Jolpica/Ergast)"

    # ---------------------------------------------------------------- public
    def fetch(self, path: str, settled: bool) -> FetchResult:
        """All pages of `{base}{path}.json`; from the archive when `settled` and archived."""
        result = FetchResult(path=path, pages=[], total=0)
        return self._collect(result, lambda offset: self._page(path, offset, settled, result))

    def fetch_archived(self, path: str) -> FetchResult | None:
        """All pages of an endpoint from the archive alone (no request), or None if any is missing."""
        result = FetchResult(path=path, pages=[], total=0)
        if self._collect(result, lambda offset: self._archived(path, offset)) is None:
            return None
        result.archive_hits = len(result.pages)
        self.stats.archive_hits += len(result.pages)
        return result

    def _collect(self, result: FetchResult, page: Callable[[int], dict[str, Any] | None]) -> FetchResult | None:
        """Page through `result.path` with `page(offset)` until MRData.total; None when a page is missing."""
        first = page(0)
        if first is None:
            return None
        result.total = page_total(self._url(result.path, 0), first)
        result.pages.append((self._url(result.path, 0), first))
        pages_needed = max(1, math.ceil(result.total / PAGE_LIMIT))
        for index in range(1, pages_needed):
            payload = page(index * PAGE_LIMIT)
            if payload is None:
                return None
            result.pages.append((self._url(result.path, index * PAGE_LIMIT), payload))
            if pages_needed > 2:
                self.log(f"{result.path}: page {index + 1} of {pages_needed}")
        result.payload_hash = _payload_hash(result.pages)
        return result

    def close(self) -> None:
        self._session.close()

    # ---------------------------------------------------------------- internals
    def _url(self, path: str, offset: int) -> str:
        return f"{self.base_url}{path}.json?limit={PAGE_LIMIT}&offset={offset}"

    @staticmethod
    def archive_key(path: str, offset: int) -> str:
        return f"{ARCHIVE_PREFIX}/{path}.json@limit={PAGE_LIMIT}@offset={offset}.json.gz"

    def _archived(self, path: str, offset: int) -> dict[str, Any] | None:
        archived = self.archive.get(self.archive_key(path, offset))
        return None if archived is None else json.loads(gzip.decompress(archived))

    def _page(self, path: str, offset: int, settled: bool, result: FetchResult) -> dict[str, Any]:
        if settled:
            archived = self._archived(path, offset)
            if archived is not None:
                result.archive_hits += 1
                self.stats.archive_hits += 1
                return archived
        url = self._url(path, offset)
        body = self._get(url)
        result.requests += 1
        result.bytes_read += len(body)
        payload = self._decode(url, body)
        self.archive.put(self.archive_key(path, offset), gzip.compress(body), content_type="application/gzip")
        return payload

    def _decode(self, url: str, body: bytes) -> dict[str, Any]:
        text = body.lstrip()[:200].lower()
        if text.startswith((b"<!doctype", b"<html", b"<")):
            raise JolpicaResponseError(f"{url}: expected JSON, got an HTML page", url)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise JolpicaResponseError(f"{url}: body is not valid JSON (truncated?): {exc}", url) from None
        try:
            page_total(url, payload)
        except UpstreamDataError as exc:
            raise JolpicaResponseError(str(exc), url) from None
        return payload

    def _get(self, url: str) -> bytes:
        attempt = 0
        while True:
            self.limiter.acquire()
            self.stats.requests += 1
            self.stats.urls.append(url)
            status: int | None = None
            try:
                response = self._session.get(url, timeout=self.timeout_seconds)
                status = response.status_code
                if status == 200:
                    body = response.content
                    self.stats.bytes_read += len(body)
                    return body
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}"
                else:
                    raise JolpicaResponseError(f"{url}: HTTP {status} {response.reason}", url)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_retries:
                raise JolpicaTransientError(
                    f"{url}: giving up after {attempt + 1} attempts, last {problem}", url, status
                )
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt) * random.uniform(0.5, 1.5)
            self.log(f"{url}: {problem}; retry {attempt + 1}/{self.max_retries} in {delay:.1f}s")
            self.stats.retries += 1
            self.sleep(delay)
            attempt += 1


class JolpicaResource(dg.ConfigurableResource):
    """Jolpica F1 API access for assets and sensors. Unset fields fall back to the environment
    (F1_JOLPICA_URL, F1_JOLPICA_HOURLY_BUDGET, F1_SETTLE_DAYS), then to the public API's defaults."""

    archive: BlobStoreResource
    warehouse: WarehouseResource
    base_url: str | None = None
    hourly_budget: int | None = None
    burst_per_second: int = 4
    settle_days: int | None = None
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0

    def effective_settle_days(self) -> int:
        return self.settle_days if self.settle_days is not None else settings.settle_days()

    def ledger(self) -> RequestLedger:
        warehouse_url = self.warehouse.effective_url()
        if warehouse_url.startswith(("postgresql://", "postgres://")):
            self.warehouse.get().apply_schema()
            return PostgresLedger(warehouse_url)
        return FileLedger(settings.f1_home() / "jolpica-rate-ledger.json")

    def client(self, log: Callable[[str], None] | None = None) -> JolpicaClient:
        limiter = RateLimiter(
            self.ledger(),
            per_second=self.burst_per_second,
            per_hour=self.hourly_budget or settings.jolpica_hourly_budget(),
            max_wait_seconds=self.max_wait_seconds,
        )
        return JolpicaClient(
            self.base_url or settings.jolpica_url(),
            archive=self.archive.get(),
            limiter=limiter,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            log=log,
        )
