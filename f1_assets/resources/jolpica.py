"""The Jolpica (Ergast-compatible) client — the project's one HTTP client for Jolpica — and its resource.

`JolpicaClient.fetch(path)` returns every page of one endpoint:
- pages with `limit=100` (the server's cap) and `offset` until `MRData.total`, so a race costs the
  lower bound of requests: the sum over endpoints of ceil(total/100) (at least one each);
- every page must announce the same `MRData.total`; a total that changes mid-fetch re-fetches the
  endpoint once from upstream, then fails with `JolpicaResponseError` naming the URLs and totals;
- every request passes the shared rate budget first (`rate_budget.RateLimiter`) and has a total
  deadline (connect + headers + whole body), so a server that trickles bytes cannot hold a step;
- 429 (Jolpica sends no Retry-After), 5xx, timeouts and connection resets are retried a bounded
  number of times with exponential backoff and jitter, then fail with `JolpicaTransientError`;
- a host that does not resolve or refuses connections fails within seconds with `JolpicaUnreachable`
  and a hint naming `F1_JOLPICA_URL`;
- 400/404, HTML bodies, truncated or non-JSON bodies fail at once with `JolpicaResponseError`
  naming the URL;
- nothing is archived while fetching: the caller validates the pages (totals, rows = total, schema)
  and then calls `archive_accepted(result)`, which stores only the pages that came from upstream, as gzip
  JSON keyed by URL (whole-object writes). A settled race is served from the archive: zero requests.
  An archive entry that does not decode is moved to `jolpica-quarantine/` and fetched again.
Called by the ingest assets and the sensors.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import dagster as dg
import requests
from pydantic import Field

from f1_assets import settings
from f1_assets.resources.rate_budget import FileLedger, PostgresLedger, RateLimiter, RequestLedger
from f1_assets.resources.storage import BlobStoreResource, WarehouseResource, env_var_field
from f1_assets.storage.blob import BlobStore
from f1_assets.transforms.jolpica import Page, UpstreamDataError, page_total

PAGE_LIMIT = 100  # Jolpica caps limit at 100 whatever is asked
ARCHIVE_PREFIX = "jolpica"
QUARANTINE_PREFIX = "jolpica-quarantine"
UNREACHABLE_RETRIES = 2  # DNS failure / connection refused: two quick retries (≈3 s), then fail
DEADLINE_ATTEMPTS = 2  # a request that missed its whole-response deadline is tried once more, then given up
URL_VARIABLE = settings.JOLPICA_URL
HOURLY_BUDGET_VARIABLE = settings.JOLPICA_HOURLY_BUDGET
SETTLE_DAYS_VARIABLE = settings.SETTLE_DAYS
_DIRECT_URL = ("The base URL given directly instead of the variable (tests, scripts). Never a password here: "
               "the UI shows field values; use the variable.")


class JolpicaError(RuntimeError):
    def __init__(self, message: str, url: str):
        super().__init__(message)
        self.url = url


class JolpicaResponseError(JolpicaError):
    """A response that retrying will not fix (400/404, HTML, non-JSON or truncated body, totals that
    change between pages)."""


class JolpicaTransientError(JolpicaError):
    """Retries exhausted on 429/5xx/timeouts/connection resets."""

    def __init__(self, message: str, url: str, status: int | None):
        super().__init__(message, url)
        self.status = status


class JolpicaUnreachable(JolpicaResponseError):
    """The host does not resolve or refuses connections: a wrong or unreachable base URL, which
    retrying later will not fix either (so it is a kind of JolpicaResponseError)."""


class _Deadline(requests.Timeout):
    """The whole request (connect, headers, body) took longer than the client's deadline."""


@dataclass
class FetchResult:
    path: str
    pages: list[Page]
    total: int
    requests: int = 0
    archive_hits: int = 0
    bytes_read: int = 0
    payload_hash: str = ""
    # per page: the raw body when it came from upstream (archived only once the caller accepts it),
    # None when it was served from the archive
    bodies: list[bytes | None] = field(default_factory=list)
    # per page: where its bytes came from (the URL, or the archive object's location)
    sources: list[str] = field(default_factory=list)

    @property
    def from_archive(self) -> bool:
        return any(body is None for body in self.bodies)

    def source(self, index: int = 0) -> str:
        return self.sources[index]


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    archive_hits: int = 0
    bytes_read: int = 0
    quarantined: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def _payload_hash(pages: list[Page]) -> str:
    """Hash of the data, not the envelope: MRData.url echoes the host the page was served from."""
    digest = hashlib.sha256()
    for _, payload in pages:
        body = {k: v for k, v in payload.get("MRData", {}).items() if k not in ("url", "xmlns")}
        digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def _unreachable_reason(exc: requests.ConnectionError) -> str | None:
    """'does not resolve' / 'refuses connections' when that is what the connection error is, else None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    text = str(exc)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "refuses connections"
        text += " " + str(cause)
        cause = cause.__cause__ or cause.__context__ or getattr(cause, "reason", None)
    lowered = text.lower()
    if any(s in lowered for s in ("failed to resolve", "name or service not known", "nodename nor servname",
                                  "temporary failure in name resolution", "no address associated")):
        return "does not resolve (DNS)"
    if "connection refused" in lowered:
        return "refuses connections"
    return None


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
        url_variable: str = URL_VARIABLE,
    ):
        base_url = base_url if base_url.endswith("/") else base_url + "/"
        try:
            parts = urlsplit(base_url)
            parts.port  # noqa: B018 (raises ValueError on a malformed port)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise settings.ConfigError(
                f"{url_variable}={settings.redact(base_url)!r} is not a Jolpica base URL: expected http(s)://host/…"
            )
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "f1-assets (+Dagster; data provided by Jolpica/Ergast)"
        if parts.username is not None or parts.password is not None:
            # credentials of a private mirror travel as HTTP basic auth, never inside a URL that could
            # reach a message, a log line, metadata or the archive
            self._session.auth = (unquote(parts.username or ""), unquote(parts.password or ""))
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            base_url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        self.base_url = base_url
        self.url_variable = url_variable
        self.archive = archive
        self.limiter = limiter
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.log = log or (lambda _msg: None)
        self.sleep = sleep
        self.stats = ClientStats()

    # ---------------------------------------------------------------- public
    def fetch(self, path: str, settled: bool) -> FetchResult:
        """All pages of `{base}{path}.json`; from the archive when `settled` and archived.

        Pages that disagree on MRData.total are fetched once more from upstream; if they still
        disagree, `JolpicaResponseError` names the URLs and the totals."""
        result = FetchResult(path=path, pages=[], total=0)
        fetched = self._collect(result, lambda offset: self._page(path, offset, settled, result))
        assert fetched is not None  # _page never returns None
        problem = self._totals_problem(fetched)
        if problem is None:
            return fetched
        self.log(f"{path}: {problem}; fetching the endpoint again from upstream")
        if fetched.from_archive:
            self.quarantine(fetched, problem)
        again = FetchResult(path=path, pages=[], total=0)
        again = self._collect(again, lambda offset: self._page(path, offset, False, again))
        assert again is not None
        again.requests += fetched.requests
        again.bytes_read += fetched.bytes_read
        problem = self._totals_problem(again)
        if problem is not None:
            raise JolpicaResponseError(
                f"{path}: {problem} on two fetches in a row; the upstream is changing under us — nothing was "
                "written, the stored rows are kept", again.pages[0][0])
        return again

    def fetch_archived(self, path: str) -> FetchResult | None:
        """All pages of an endpoint from the archive alone (no request), or None if any is missing,
        undecodable (quarantined) or inconsistent."""
        result = FetchResult(path=path, pages=[], total=0)
        if self._collect(result, lambda offset: self._archived(path, offset, result)) is None:
            return None
        problem = self._totals_problem(result)
        if problem is not None:
            self.quarantine(result, problem)
            return None
        result.archive_hits = len(result.pages)
        self.stats.archive_hits += len(result.pages)
        return result

    def archive_accepted(self, result: FetchResult) -> int:
        """Store the pages of an accepted result that came from upstream; returns how many were written.

        An endpoint with no rows (MRData.total 0) is never archived: an empty answer is not final, and a
        settled race must not be served empty from the archive forever."""
        if result.total == 0:
            return 0
        written = 0
        for index, body in enumerate(result.bodies):
            if body is not None:
                self.archive.put(self.archive_key(result.path, index * PAGE_LIMIT), gzip.compress(body),
                                 content_type="application/gzip")
                written += 1
        return written

    def quarantine(self, result: FetchResult, reason: str) -> list[str]:
        """Move the archive entries `result` was served from aside (they failed validation)."""
        moved = []
        for index, body in enumerate(result.bodies):
            if body is None:
                moved.append(self._quarantine_key(self.archive_key(result.path, index * PAGE_LIMIT), reason))
        return [m for m in moved if m]

    def _collect(self, result: FetchResult, page: Callable[[int], dict[str, Any] | None]) -> FetchResult | None:
        """Page through `result.path` with `page(offset)` until MRData.total; None when a page is missing."""
        first = page(0)
        if first is None:
            return None
        result.total = page_total(result.source(0), first)
        # each page is named by where its bytes came from (URL or archive object): errors blame the right one
        result.pages.append((result.source(0), first))
        pages_needed = max(1, math.ceil(result.total / PAGE_LIMIT))
        for index in range(1, pages_needed):
            payload = page(index * PAGE_LIMIT)
            if payload is None:
                return None
            result.pages.append((result.source(index), payload))
            if pages_needed > 2:
                self.log(f"{result.path}: page {index + 1} of {pages_needed}")
        result.payload_hash = _payload_hash(result.pages)
        return result

    def _totals_problem(self, result: FetchResult) -> str | None:
        totals = [page_total(source, payload) for source, payload in result.pages]
        if len(set(totals)) <= 1:
            return None
        return "MRData.total changed between pages: " + ", ".join(
            f"{result.source(i)} says {t}" for i, t in enumerate(totals))

    def close(self) -> None:
        self._session.close()

    # ---------------------------------------------------------------- internals
    def _url(self, path: str, offset: int) -> str:
        return f"{self.base_url}{path}.json?limit={PAGE_LIMIT}&offset={offset}"

    @staticmethod
    def archive_key(path: str, offset: int) -> str:
        return f"{ARCHIVE_PREFIX}/{path}.json@limit={PAGE_LIMIT}@offset={offset}.json.gz"

    def _quarantine_key(self, key: str, reason: str) -> str | None:
        data = self.archive.get(key)
        if data is None:
            return None
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = f"{QUARANTINE_PREFIX}/{key.removeprefix(ARCHIVE_PREFIX + '/')}.{stamp}"
        self.archive.put(target, data, content_type="application/octet-stream")
        self.archive.delete(key)
        where = self.archive.url(target)
        self.stats.quarantined.append(where)
        self.log(f"archive entry {self.archive.url(key)} is unusable ({reason}); moved to {where}, "
                 "fetching it again from upstream")
        return where

    def _archived(self, path: str, offset: int, result: FetchResult) -> dict[str, Any] | None:
        key = self.archive_key(path, offset)
        archived = self.archive.get(key)
        if archived is None:
            return None
        try:
            payload = json.loads(gzip.decompress(archived))
            page_total(key, payload)
        except (EOFError, OSError, zlib.error, UnicodeDecodeError, json.JSONDecodeError, UpstreamDataError) as exc:
            self._quarantine_key(key, f"{type(exc).__name__}: {exc}")
            return None
        result.bodies.append(None)
        result.sources.append(f"raw archive {self.archive.url(key)}")
        return payload

    def _page(self, path: str, offset: int, settled: bool, result: FetchResult) -> dict[str, Any]:
        if settled:
            archived = self._archived(path, offset, result)
            if archived is not None:
                result.archive_hits += 1
                self.stats.archive_hits += 1
                return archived
        url = self._url(path, offset)
        body = self._get(url)
        result.requests += 1
        result.bytes_read += len(body)
        payload = self._decode(url, body)
        result.bodies.append(body)
        result.sources.append(url)
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

    def download(self, url: str, timeout_seconds: float = 900.0, max_bytes: int = 2 * 1024**3) -> bytes:
        """The body of one URL on the Jolpica host (a database dump, its overview), through the same rate
        budget, retries and errors as `fetch`, within `timeout_seconds` for the whole body."""
        deadline, self.timeout_seconds = self.timeout_seconds, timeout_seconds
        try:
            body = self._get(url)
        finally:
            self.timeout_seconds = deadline
        if len(body) > max_bytes:
            raise JolpicaResponseError(f"{url}: {len(body)} bytes, more than the {max_bytes} a dump may have", url)
        return body

    def _request(self, url: str) -> tuple[int, str, bytes]:
        """One GET with a total deadline: connect, headers and the whole body within timeout_seconds.

        The socket timeout alone bounds each read, not the request: a server that trickles a byte
        every few seconds would hold it for as long as it likes. The request runs in a daemon thread
        that streams the body and stops between chunks once the deadline passed; the caller waits at
        most the deadline and then gives up on it (a thread stuck in a trickled read ends with its socket)."""
        deadline = time.monotonic() + self.timeout_seconds
        outcome: dict[str, Any] = {}
        cancelled = threading.Event()

        def work() -> None:
            try:
                with self._session.get(url, timeout=self.timeout_seconds, stream=True) as response:
                    chunks = []
                    for chunk in response.iter_content(chunk_size=65536):
                        if cancelled.is_set() or time.monotonic() > deadline:
                            raise _Deadline(f"body not complete within {self.timeout_seconds:g}s")
                        chunks.append(chunk)
                    outcome["value"] = (response.status_code, response.reason or "", b"".join(chunks))
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="jolpica-request", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()) + 0.5)
        if worker.is_alive():
            cancelled.set()
            raise _Deadline(f"no complete response within the {self.timeout_seconds:g}s deadline")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _get(self, url: str) -> bytes:
        attempt = 0
        unreachable = 0
        deadlines = 0
        while True:
            self.limiter.acquire()
            self.stats.requests += 1
            self.stats.urls.append(url)
            status: int | None = None
            try:
                status, reason, body = self._request(url)
                if status == 200:
                    self.stats.bytes_read += len(body)
                    return body
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}"
                else:
                    raise JolpicaResponseError(f"{url}: HTTP {status} {reason}", url)
            except requests.ConnectionError as exc:
                why = _unreachable_reason(exc)
                if why is not None:
                    if unreachable >= UNREACHABLE_RETRIES:
                        host = urlsplit(url).netloc
                        raise JolpicaUnreachable(
                            f"{url}: host {host} {why} ({unreachable + 1} attempts). Is {self.url_variable} "
                            f"right? It is {self.base_url!r}; point it at a reachable Jolpica server or "
                            "mirror, e.g. export F1_JOLPICA_URL=http://127.0.0.1:8765/ergast/f1/", url) from None
                    unreachable += 1
                    self.log(f"{url}: host {why}; retry {unreachable}/{UNREACHABLE_RETRIES} in {unreachable}s")
                    self.stats.retries += 1
                    self.sleep(float(unreachable))
                    continue
                problem = f"{type(exc).__name__}: {exc}"
            except _Deadline as exc:
                # a server that trickles will trickle again: one more try, then give up on this fetch
                problem = f"deadline: {exc}"
                deadlines += 1
            except requests.Timeout as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_retries or deadlines >= DEADLINE_ATTEMPTS:
                raise JolpicaTransientError(
                    f"{url}: giving up after {attempt + 1} attempts, last {problem}", url, status
                )
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt) * random.uniform(0.5, 1.5)
            self.log(f"{url}: {problem}; retry {attempt + 1}/{self.max_retries} in {delay:.1f}s")
            self.stats.retries += 1
            self.sleep(delay)
            attempt += 1


class JolpicaResource(dg.ConfigurableResource):
    """Jolpica F1 API access for assets and sensors.

    Each setting the environment gives has a field naming its variable (`base_url_env_var`,
    `hourly_budget_env_var`, `settle_days_env_var`): the UI shows the names, the resource reads the
    variables when it is used (unset: the public API's defaults; `settings.py` checks the values). The
    same settings given directly (`base_url`, `hourly_budget`, `settle_days`: tests, scripts) have no
    default, so the UI shows them only when given, never as `null`. Why not `dg.EnvVar`:
    `resources/storage.py`."""

    archive: BlobStoreResource
    warehouse: WarehouseResource
    base_url_env_var: Literal[URL_VARIABLE] = env_var_field(
        URL_VARIABLE, f"the public API, {settings.DEFAULT_JOLPICA_URL}")
    base_url: str | None = Field(description=_DIRECT_URL)  # no default: not shown unless given
    hourly_budget_env_var: Literal[HOURLY_BUDGET_VARIABLE] = env_var_field(
        HOURLY_BUDGET_VARIABLE, f"{settings.DEFAULT_HOURLY_BUDGET} requests an hour")
    hourly_budget: int | None = Field(description="Requests per hour given directly instead of the variable "
                                      "(tests, scripts); shared by every run, at least 1.")
    burst_per_second: int = 4
    settle_days_env_var: Literal[SETTLE_DAYS_VARIABLE] = env_var_field(
        SETTLE_DAYS_VARIABLE, f"{settings.DEFAULT_SETTLE_DAYS} days")
    settle_days: int | None = Field(description="Days after a race from which it is served from the raw "
                                    "archive, given directly instead of the variable (tests, scripts).")
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0

    def effective_base_url(self) -> str:
        return self.base_url or settings.jolpica_url()

    def effective_hourly_budget(self) -> int:
        """The budget; one that is not a positive number raises `settings.ConfigError`."""
        per_hour = self.hourly_budget if self.hourly_budget is not None else settings.jolpica_hourly_budget()
        if per_hour <= 0:
            raise settings.ConfigError(f"JolpicaResource.hourly_budget must be a positive number, got {per_hour}")
        return per_hour

    def effective_settle_days(self) -> int:
        return self.settle_days if self.settle_days is not None else settings.settle_days()

    def ledger(self) -> RequestLedger:
        warehouse_url = self.warehouse.effective_url()
        if warehouse_url.startswith(("postgresql://", "postgres://")):
            self.warehouse.get().ensure_schema()  # jolpica_request_log exists (once per process)
            return PostgresLedger(warehouse_url)
        return FileLedger(settings.f1_home() / "jolpica-rate-ledger.json")

    def client(self, log: Callable[[str], None] | None = None, max_wait_seconds: float | None = None) -> JolpicaClient:
        """A client on the configured base URL and the shared budget. A setting that can never work
        (malformed URL, a budget that is not a positive number, …) raises `settings.ConfigError`, a
        non-retryable `dg.Failure` naming the variable. `max_wait_seconds`: how long a request may wait
        for the budget before `RateBudgetExhausted` (a step of many races waits its turn instead of
        retrying the whole batch later)."""
        limiter = RateLimiter(
            self.ledger(),
            per_second=self.burst_per_second,
            per_hour=self.effective_hourly_budget(),
            max_wait_seconds=self.max_wait_seconds if max_wait_seconds is None else max_wait_seconds,
        )
        return JolpicaClient(
            self.effective_base_url(),
            archive=self.archive.get(),
            limiter=limiter,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            log=log,
        )
