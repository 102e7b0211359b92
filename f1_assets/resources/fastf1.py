"""The FastF1 resource: loads one race session through FastF1's own code, from configurable hosts.

Called by the FastF1 ingest assets (`f1_assets.assets.ingest_fastf1`) and by tests. It owns all of
FastF1's process-wide state: the upstream hosts (live timing, schedule files, Jolpica) and the cache
directory, both set right before each load, so a run never reads `~/.cache/fastf1` and never talks
to a host the configuration did not name.

FastF1 does not raise on upstream trouble: it logs a warning and falls back (schedule backends) or
goes on without the stream. The resource reads FastF1's log during the load (down to the DEBUG
records that carry the exception) and turns it into one of four outcomes of `load_race`:

- `LoadedRace`: the live-timing host answered. `missing_streams` names the streams FastF1 got nothing
  usable from (not served, empty, or unusable), `not_served` those the host answered with an HTTP
  error; no missing streams means complete.
- `FastF1NoSession`: there is nothing to load — before 2018, or FastF1's schedule (loaded) has no
  such round. An explained empty result, not a fault.
- `FastF1UpstreamError`: FastF1 could not get the data — a host refused the connection, did not
  resolve or timed out (`retryable`; retried in the step `connect_retries` times first), FastF1's own
  rate limit, or no schedule backend had the season (not retryable). Try again later; never "no session".
- `FastF1DataError`: the upstream answered with lines that do not decode (fail, keep what is stored).

`circuit_corners(loaded)` asks FastF1's circuit-info host (MultiViewer, `F1_CIRCUIT_INFO_URL`) for the
circuit's corners (`Session.get_circuit_info()`); it is optional data, so every upstream failure comes
back as a `CircuitCorners` without corners and with the reason (the URL asked, the host's answer).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import requests
from pydantic import Field

from f1_assets import settings
from f1_assets.partitions import RaceKey
from f1_assets.resources.jolpica import URL_VARIABLE as JOLPICA_URL_VARIABLE
from f1_assets.resources.storage import env_var_field
from f1_assets.transforms.weather import weather_from_stream

FIRST_FASTF1_SEASON = 2018
# the variables the resource follows (settings.py reads them; the fields below name them)
LIVETIMING_URL_VARIABLE = settings.LIVETIMING_URL
SCHEDULE_URL_VARIABLE = settings.FASTF1_SCHEDULE_URL
CIRCUIT_INFO_URL_VARIABLE = settings.CIRCUIT_INFO_URL
# circuit info (corners) is optional: one request, given this long before the race goes on without it
# (MultiViewer answers in well under a second; FastF1 sends the request without a timeout of its own)
CIRCUIT_INFO_TIMEOUT_SECONDS = 10.0
# after a circuit-info host timed out or was unreachable, the races that follow in the same process do not
# ask it again for this long (they go on without corners at once, and say why)
CIRCUIT_INFO_RETRY_AFTER_SECONDS = 600.0
# corner numbers a circuit-info answer may hold (F1 circuits have at most ~30 corners; `Corner` is int32
# downstream): a number outside 1..this makes the answer junk, not a crash of merge_race_telemetry
MAX_CORNER_NUMBER = 99
# a circuit-info answer that broke off (the host was reached, its answer never completed): remembered like a
# timeout, named by what happened
_CIRCUIT_INFO_BROKEN = (
    (requests.exceptions.TooManyRedirects, "answered {url} with too many redirects (a redirect loop)"),
    (requests.exceptions.ChunkedEncodingError, "broke the connection mid-answer to {url} (the body was cut off)"),
    (requests.exceptions.ContentDecodingError, "sent an answer to {url} that does not decompress"),
)
HOME_VARIABLE = settings.HOME


def _direct(what: str) -> str:
    return (f"{what}, given directly instead of the variable (tests, scripts). Never a password here: "
            "the UI shows field values; use the variable.")


# which live-timing streams feed each part of a loaded session
LAP_STREAMS = ("TimingData", "TimingAppData")
TELEMETRY_STREAMS = ("CarData.z", "Position.z")
# optional, like FastF1 itself: loaded with the laps, never counted as a missing stream (many recorded
# sessions lack it); `LoadedRace.weather_reason` says why a race has none
WEATHER_STREAM = "WeatherData"
# every stream a laps load reads (DESIGN.md "Upstream: FastF1", plus the race control messages)
SESSION_STREAMS = ("SessionInfo", "DriverList", "SessionStatus", "LapCount", "TrackStatus", *LAP_STREAMS,
                   "RaceControlMessages")

# FastF1 logs "Fetching <what>..." before each stream and "Failed to decode N messages" after a bad one
_FETCHING = re.compile(r"Fetching (.+?)\.\.\.")
_DECODE_FAILED = re.compile(r"Failed to decode (\d+) messages \((\d+) messages total\)")
_STREAM_OF_FETCH = {
    "timing data": "TimingData",
    "timing app data": "TimingAppData",
    "car data": "CarData.z",
    "position data": "Position.z",
    "track status data": "TrackStatus",
    "session status data": "SessionStatus",
    "race control messages": "RaceControlMessages",
    "lap count data": "LapCount",
    "driver list": "DriverList",
    "weather data": "WeatherData",
    "session info data": "SessionInfo",
    "season schedule": "Index.json",
}
# connection-level failures: the host was not reached at all (refused, DNS, timeout)
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
MVAPI_PATH = "/api/v1/"  # fastf1.mvapi.api appends it to its HOST

log = logging.getLogger(__name__)


class FastF1NoSession(Exception):
    """FastF1 has no race session for the race (before 2018, or not in its schedule): materialize empty."""

    def __init__(self, race: RaceKey, reason: str):
        self.race = race
        self.reason = reason
        super().__init__(f"race {race.key}: {reason}")


class FastF1UpstreamError(Exception):
    """FastF1 could not get the race's data from its upstream; `retryable` when a later try may work."""

    def __init__(self, race: RaceKey, reason: str, urls: tuple[str, ...] = (), *, retryable: bool,
                 attempts: int = 1):
        self.race = race
        self.reason = settings.redact(reason)  # a mirror's password never reaches metadata or a message
        self.urls = tuple(settings.redact(u) for u in urls)
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(f"race {race.key}: {self.reason}")


class FastF1DataError(Exception):
    """The upstream answered with data that does not decode (a malformed jsonStream line)."""


@dataclass
class LoadedRace:
    """A loaded session; the accessors return empty values for what FastF1 could not load."""

    race: RaceKey
    session: Any  # fastf1.core.Session, loaded
    missing_streams: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    not_served: tuple[str, ...] = ()  # of the missing streams, the ones the host answered with an error
    weather_not_served: bool = False  # the host answered the WeatherData request with an error
    # the WeatherData stream parsed strictly (`weather_from_stream`: unreadable values NaN / NA, not FastF1's
    # 0 / False); None when the raw stream could not be read again (then FastF1's own frame is used)
    weather_samples: pd.DataFrame | None = None
    # FastF1's own weather parser failed on the stream ("Failed to load weather data!": the exception, e.g.
    # "TypeError: float() argument must be ... 'NoneType'" for one `"AirTemp": null`), else None
    fastf1_weather_error: str | None = None

    def _loaded(self, attr: str) -> Any:
        from fastf1.exceptions import DataNotLoadedError

        try:
            return getattr(self.session, attr)
        except (DataNotLoadedError, AttributeError):  # FastF1 raises instead of returning nothing
            return None

    @property
    def driver_numbers(self) -> list[str]:
        return [str(d) for d in (self._loaded("drivers") or [])]

    @property
    def laps(self) -> pd.DataFrame:
        """FastF1's laps; empty without timing data (FastF1 then still makes placeholder laps from Jolpica)."""
        laps = self._loaded("laps")
        if laps is None or "TimingData" in self.missing_streams:
            return pd.DataFrame()
        return laps

    @property
    def timed_laps(self) -> int:
        """Laps that came from live timing (not FastF1's placeholders)."""
        laps = self.laps
        if "FastF1Generated" in laps:
            return int((~laps["FastF1Generated"].fillna(False).astype(bool)).sum())
        return len(laps)

    @property
    def results(self) -> pd.DataFrame:
        results = self._loaded("results")
        return results if results is not None else pd.DataFrame()

    @property
    def total_laps(self) -> int | None:
        value = self._loaded("total_laps")
        return int(value) if value is not None and pd.notna(value) else None

    @property
    def car_data(self) -> dict:
        return (self._loaded("car_data") or {}) if "CarData.z" not in self.missing_streams else {}

    @property
    def pos_data(self) -> dict:
        return (self._loaded("pos_data") or {}) if "Position.z" not in self.missing_streams else {}

    @property
    def weather(self) -> pd.DataFrame:
        """FastF1's `session.weather_data` (Time, AirTemp, Humidity, Pressure, Rainfall, TrackTemp,
        WindDirection, WindSpeed; about one sample a minute); empty without the stream. Parsed strictly from
        the raw stream when it could be read (`weather_samples`): a value FastF1 could not read is NaN (Rainfall
        NA) here, where FastF1 puts 0 / False."""
        if self.weather_samples is not None:
            return self.weather_samples
        weather = self._loaded("weather_data")
        return weather if weather is not None else pd.DataFrame()

    @property
    def weather_reason(self) -> str | None:
        """Why the race has no weather samples (None when it has some)."""
        if len(self.weather):
            return None
        if self.weather_not_served:
            return "no weather stream recorded"
        if self.fastf1_weather_error:
            return (f"FastF1 could not parse the weather stream ({self.fastf1_weather_error}) and the stream "
                    "could not be read again")
        return "the weather stream is empty or was not loaded"

    @property
    def api_path(self) -> str:
        return str(self._loaded("api_path") or "")


@dataclass(frozen=True)
class CircuitCorners:
    """FastF1's corners of a race's circuit (`Number, Letter, X, Y`), or None with the `reason`."""

    corners: pd.DataFrame | None
    url: str | None  # where they were asked for
    reason: str | None = None

    def metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = {"circuit_info_url": self.url or "", "corners": 0 if self.corners is None
                              else len(self.corners)}
        if self.reason:
            md["corners_missing_reason"] = self.reason
        return md


class _FastF1Log(logging.Handler):
    """Collects, during one load, FastF1's warnings, which stream each decode failure hit, the streams
    the host did not serve and the URLs it could not reach (from the exceptions FastF1 logs at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.current_stream = "unknown stream"
        self.warnings: list[str] = []
        self.decode_failures: list[str] = []
        self.not_served: list[str] = []
        self.unreachable: list[str] = []
        self.unreachable_errors: list[str] = []
        self.weather_error: str | None = None  # FastF1's weather parser raised this (it logs and goes on)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        fetching = _FETCHING.search(message)
        if fetching:
            self.current_stream = _STREAM_OF_FETCH.get(fetching.group(1), fetching.group(1))
        decode = _DECODE_FAILED.search(message)
        if decode:
            self.decode_failures.append(
                f"{self.current_stream}: {decode.group(1)} of {decode.group(2)} lines are not valid JSON"
            )
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _UNREACHABLE):
            request = getattr(exc, "request", None)
            url = getattr(request, "url", None) or str(exc)
            if url not in self.unreachable:
                self.unreachable.append(url)
                self.unreachable_errors.append(type(exc).__name__)
        elif type(exc).__name__ == "SessionNotAvailableError":  # FastF1: the host answered 4xx/5xx
            self.not_served.append(self.current_stream)
        elif exc is not None and message.startswith("Traceback for failure in weather data"):
            self.weather_error = f"{type(exc).__name__}: {exc}"  # FastF1's soft_exceptions: frame left empty
        if record.levelno >= logging.WARNING:
            self.warnings.append(message.strip())


@contextmanager
def _capture_fastf1_log() -> Iterator[_FastF1Log]:
    logger = logging.getLogger("fastf1")
    handler = _FastF1Log()
    old_level = logger.level
    logger.addHandler(handler)
    # FastF1 logs the exception behind each fallback at DEBUG; its own console handler stays at INFO
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class _NoF1AccountFilter(logging.Filter):
    """FastF1 warns "Failed to authenticate with Formula 1 account, continuing without authentication" on
    every live-timing request when no F1 account is configured (F1_USERNAME/F1_PASSWORD): the public
    live-timing archive needs none, so that is the normal case here. Said once per process at INFO."""

    said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Failed to authenticate with Formula 1 account" not in record.getMessage():
            return True
        if _NoF1AccountFilter.said:
            return False
        _NoF1AccountFilter.said = True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = ("FastF1: no Formula 1 account configured (F1_USERNAME/F1_PASSWORD); the "
                                   "public live-timing archive is read without one"), ()
        return True


def _quiet_missing_f1_account() -> None:
    # the logger is FastF1's module logger (fastf1.internals.f1account.transport._logger, named
    # "fastf1.fastf1.internals.f1account.transport"); a logger filter is the public way to change a record
    logger = logging.getLogger("fastf1.fastf1.internals.f1account.transport")
    if not any(isinstance(f, _NoF1AccountFilter) for f in logger.filters):
        logger.addFilter(_NoF1AccountFilter())


# circuit-info hosts that timed out or were unreachable in this process: base URL → (when, reason)
_CIRCUIT_INFO_FAILURES: dict[str, tuple[float, str]] = {}
_CIRCUIT_INFO_LOCK = threading.Lock()


def _circuit_info_down(base: str) -> str | None:
    """Why `base` is not asked now (it failed less than CIRCUIT_INFO_RETRY_AFTER_SECONDS ago), or None."""
    with _CIRCUIT_INFO_LOCK:
        failed = _CIRCUIT_INFO_FAILURES.get(base)
    if failed is None or time.monotonic() - failed[0] >= CIRCUIT_INFO_RETRY_AFTER_SECONDS:
        return None
    ago = time.monotonic() - failed[0]
    return (f"not asked: the circuit-info host {settings.redact(base)} failed {ago:.0f} s ago in this process "
            f"(asked again after {CIRCUIT_INFO_RETRY_AFTER_SECONDS:g} s): {failed[1]}")


def _circuit_info_failed(base: str, reason: str) -> str:
    with _CIRCUIT_INFO_LOCK:
        _CIRCUIT_INFO_FAILURES[base] = (time.monotonic(), reason)
    return reason


def _circuit_info_answered(base: str) -> None:
    with _CIRCUIT_INFO_LOCK:
        _CIRCUIT_INFO_FAILURES.pop(base, None)


class _StatusLog(logging.Handler):
    """The HTTP statuses of the non-200 answers FastF1's circuit-info client logs ("[404] <body>" at DEBUG)."""

    _STATUS = re.compile(r"^\[(\d{3})\] ")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.statuses: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self._STATUS.match(record.getMessage())
        if match:
            self.statuses.append(int(match.group(1)))


@contextmanager
def _http_statuses() -> Iterator[list[int]]:
    """Inside `_capture_fastf1_log` (which lowers FastF1's level to DEBUG): FastF1 mvapi's logged statuses."""
    logger = logging.getLogger("fastf1.mvapi")
    handler = _StatusLog()
    logger.addHandler(handler)
    try:
        yield handler.statuses
    finally:
        logger.removeHandler(handler)


def _unreachable(urls: list[str], errors: list[str]) -> str:
    """`http://host:port (ConnectionError on 8 requests, first …/SessionInfo.jsonStream)`, per host."""
    by_host: dict[str, list[tuple[str, str]]] = {}
    for url, error in zip(urls, errors, strict=True):
        parts = urlsplit(url)
        by_host.setdefault(f"{parts.scheme}://{parts.netloc}", []).append((url, error))
    return "; ".join(
        f"{settings.redact(host)} ({'/'.join(dict.fromkeys(e for _, e in hits))} on {len(hits)} "
        f"request{'s' if len(hits) > 1 else ''}, first {settings.redact(hits[0][0])})"
        for host, hits in by_host.items()
    )


class FastF1Resource(dg.ConfigurableResource):
    """FastF1 pointed at configurable hosts, with its cache under F1_HOME.

    Each host and the cache have a field naming the variable they follow (`livetiming_url_env_var`
    F1_LIVETIMING_URL, `schedule_url_env_var` F1_FASTF1_SCHEDULE_URL (default FastF1's own schedule
    repository), `jolpica_url_env_var` F1_JOLPICA_URL, `cache_dir_env_var` F1_HOME: the cache is
    `$F1_HOME/fastf1-cache`): the UI shows the names, the resource reads the variables when it is used.
    `livetiming_url`, `schedule_url`, `jolpica_url`, `cache_dir` give a value directly instead (tests,
    scripts); they have no default, so the UI shows them only when given, never as `null`. Why not
    `dg.EnvVar`: `resources/storage.py`. Use a pool
    limit of 1 (pool `fastf1`): FastF1's SQLite HTTP cache locks under parallel writers, and its hosts
    are process-wide. A host that cannot be reached is tried again `connect_retries` times in the step,
    `retry_backoff_seconds` apart (doubling); longer outages are retried by `fastf1_retry_sensor`.
    """

    livetiming_url_env_var: Literal[LIVETIMING_URL_VARIABLE] = env_var_field(
        LIVETIMING_URL_VARIABLE, f"F1's live-timing host, {settings.DEFAULT_LIVETIMING_URL}")
    livetiming_url: str | None = Field(description=_direct("The live-timing base URL"))  # not shown unless given
    schedule_url_env_var: Literal[SCHEDULE_URL_VARIABLE] = env_var_field(
        SCHEDULE_URL_VARIABLE, f"FastF1's own schedule repository, {settings.DEFAULT_FASTF1_SCHEDULE_URL}")
    schedule_url: str | None = Field(description=_direct("Where FastF1 reads its schedule_YYYY.json files"))
    jolpica_url_env_var: Literal[JOLPICA_URL_VARIABLE] = env_var_field(
        JOLPICA_URL_VARIABLE, f"the public API, {settings.DEFAULT_JOLPICA_URL}")
    jolpica_url: str | None = Field(description=_direct("The Jolpica base URL FastF1 uses"))
    cache_dir_env_var: Literal[HOME_VARIABLE] = env_var_field(
        HOME_VARIABLE, "./.f1_home; the cache is the directory fastf1-cache in it")
    cache_dir: str | None = Field(description="FastF1's cache directory given directly instead of "
                                  "$F1_HOME/fastf1-cache (tests, scripts).")
    circuit_info_url_env_var: Literal[CIRCUIT_INFO_URL_VARIABLE] = env_var_field(
        CIRCUIT_INFO_URL_VARIABLE, f"FastF1's circuit-info host (MultiViewer), {settings.DEFAULT_CIRCUIT_INFO_URL}")
    circuit_info_url: str | None = Field(description=_direct("The circuit-info base URL (ends in /api/v1/)"))
    offline: bool = False  # serve only what the cache holds (no request at all)
    connect_retries: int = 2
    retry_backoff_seconds: float = 5.0
    # FastF1 sends its requests without a timeout: a host that accepts connections and never answers
    # would hold the step for ever. One load (schedule + session) gets this long, then counts as an
    # unreachable upstream (retryable later, not in the step: a silent host stays silent).
    load_timeout_seconds: float = 600.0

    def effective_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else settings.f1_home() / "fastf1-cache"

    def effective_livetiming_url(self) -> str:
        return (self.livetiming_url or settings.livetiming_url()).rstrip("/")

    def effective_schedule_url(self) -> str:
        return (self.schedule_url or settings.fastf1_schedule_url()).rstrip("/") + "/"

    def effective_jolpica_url(self) -> str:
        return (self.jolpica_url or settings.jolpica_url()).rstrip("/")

    def effective_circuit_info_url(self) -> str:
        url = self.circuit_info_url or settings.circuit_info_url()
        return settings.http_url(CIRCUIT_INFO_URL_VARIABLE, url).rstrip("/") + "/"

    def circuit_corners(self, loaded: LoadedRace) -> CircuitCorners:
        """The corners of the race's circuit from FastF1's circuit info (`Session.get_circuit_info()`,
        served by the circuit-info host), or why there are none. Never raises for the upstream: circuit
        info is optional (corner columns stay NULL); only a malformed setting is a ConfigError.

        The request gets `CIRCUIT_INFO_TIMEOUT_SECONDS`; a host that timed out, was unreachable or whose answer
        broke off (a redirect loop, the connection cut mid-answer) is not asked again by this process for
        `CIRCUIT_INFO_RETRY_AFTER_SECONDS`. An HTTP 200 answer that is not usable circuit info (not JSON, JSON
        of another shape, no corners, a corner number outside 1..`MAX_CORNER_NUMBER`) is removed from FastF1's
        HTTP cache, so the next try asks the host again instead of reading the junk for 12 h."""
        base = self.effective_circuit_info_url()
        parts = urlsplit(base)
        if not parts.path.endswith(MVAPI_PATH):
            raise settings.ConfigError(f"{CIRCUIT_INFO_URL_VARIABLE}={base}: FastF1 asks its circuit-info host for "
                                       f"<host>{MVAPI_PATH}circuits/<key>/<year>: the URL must end in {MVAPI_PATH}")
        session = loaded.session
        try:
            circuit = session.session_info["Meeting"]["Circuit"]
            key, year = circuit["Key"], int(session.event.year)
        except (AttributeError, KeyError, TypeError, ValueError):
            return CircuitCorners(None, None, "the session names no circuit (SessionInfo Meeting.Circuit.Key): "
                                  "no circuit info to ask for")
        if key == 149 and circuit.get("ShortName") == "Mugello":  # as FastF1's get_circuit_info asks
            key = 146
        raw_url = f"{base}circuits/{key}/{year}"
        url = settings.redact(raw_url)
        if not hasattr(session, "get_circuit_info"):
            return CircuitCorners(None, url, "the loaded session is not a FastF1 session: no circuit info")
        down = _circuit_info_down(base)
        if down is not None:
            return CircuitCorners(None, url, down)
        import fastf1.mvapi.api
        from fastf1.req import Cache

        # FastF1 has no setting for this host either: `fastf1.mvapi.api` builds `{PROTO}://{HOST}/api/v1/...`
        # from module constants at request time. Set here only, right before the one request.
        fastf1.mvapi.api.PROTO = parts.scheme
        fastf1.mvapi.api.HOST = parts.netloc + parts.path[: -len(MVAPI_PATH)]
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = session.get_circuit_info()
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        # FastF1's warnings stay out of the run's log (the reason says it all); its DEBUG record
        # "[<status>] <body>" is how a non-200 answer shows (FastF1 then returns None, as for junk)
        with _capture_fastf1_log(), _http_statuses() as statuses:
            worker = threading.Thread(target=work, name="fastf1-circuit-info", daemon=True)
            worker.start()
            worker.join(CIRCUIT_INFO_TIMEOUT_SECONDS)
        retry = f"not asked again for {CIRCUIT_INFO_RETRY_AFTER_SECONDS / 60:g} min in this process"
        if worker.is_alive():
            return CircuitCorners(None, url, _circuit_info_failed(
                base, f"the circuit-info host did not answer {url} within {CIRCUIT_INFO_TIMEOUT_SECONDS:g} s "
                f"({CIRCUIT_INFO_URL_VARIABLE}); {retry}"))
        error = outcome.get("error")
        if isinstance(error, _UNREACHABLE):
            return CircuitCorners(None, url, _circuit_info_failed(
                base, f"the circuit-info host is unreachable: {url} ({type(error).__name__}; "
                f"{CIRCUIT_INFO_URL_VARIABLE}); {retry}"))
        for kind, what in _CIRCUIT_INFO_BROKEN:
            if isinstance(error, kind):
                return CircuitCorners(None, url, _circuit_info_failed(base, settings.redact(
                    f"the circuit-info host {what.format(url=url)} ({type(error).__name__}; "
                    f"{CIRCUIT_INFO_URL_VARIABLE}); {retry}")))
        value = outcome.get("value")
        if statuses and (value is None or isinstance(error, AttributeError)):
            # FastF1 got an HTTP error (not cached by FastF1): get_circuit_info then fails on None
            return CircuitCorners(None, url, f"no circuit info at {url}: the host answered HTTP {statuses[-1]}, it "
                                  f"has no recording of this circuit and season ({CIRCUIT_INFO_URL_VARIABLE})")
        corners = getattr(value, "corners", None) if error is None else None
        junk = None
        if error is not None:  # not JSON (FastF1 returns None, then fails on it), or JSON of another shape
            junk = ("not JSON" if isinstance(error, AttributeError) and "NoneType" in str(error)
                    else f"JSON of another shape, {type(error).__name__}: {error}")
        elif not isinstance(corners, pd.DataFrame) or len(corners) == 0:
            junk = "it lists no corners"
        elif (corners["Number"] == 0).all() or ((corners["X"] == 0) & (corners["Y"] == 0)).all():
            junk = "its corners have no numbers or no positions"
        elif bad_numbers := [n for n in corners["Number"] if not 1 <= n <= MAX_CORNER_NUMBER]:
            shown = ", ".join(s if len(s := str(n)) <= 12 else f"{s[:6]}…({len(s)} digits)" for n in bad_numbers[:3])
            junk = (f"{len(bad_numbers)} corner number{'s' if len(bad_numbers) > 1 else ''} outside "
                    f"1..{MAX_CORNER_NUMBER}: {shown}")
        if junk is not None:
            Cache.delete_response(raw_url)  # FastF1's HTTP cache keeps a 200 answer for 12 h: not this one
            return CircuitCorners(None, url, settings.redact(
                f"the answer from {url} is not usable circuit info ({junk}); not kept in FastF1's cache, "
                f"asked again next time ({CIRCUIT_INFO_URL_VARIABLE})"))
        _circuit_info_answered(base)
        return CircuitCorners(corners[["Number", "Letter", "X", "Y"]].reset_index(drop=True), url, None)

    def _configure_fastf1(self) -> None:
        import fastf1
        import fastf1._api
        import fastf1.ergast.interface
        import fastf1.ergast.legacy
        import fastf1.events

        livetiming = self.effective_livetiming_url()
        schedule = self.effective_schedule_url()
        jolpica = self.effective_jolpica_url()
        # FastF1 has no public setting for its hosts: they are module constants read at request
        # time. This is the one place in the project that sets them (and the only private access).
        # The mirror is set to the same host so that nothing ever falls back to FastF1's own mirror;
        # the legacy Ergast module (the schedule's last fallback) holds its own copy of the Jolpica URL.
        fastf1._api.base_url = livetiming
        fastf1._api.base_url_mirror = livetiming
        fastf1.events._SCHEDULE_BASE_URL = schedule
        fastf1.ergast.interface.BASE_URL = jolpica
        fastf1.ergast.legacy.base_url = jolpica

        cache_dir = self.effective_cache_dir()
        cache_dir.mkdir(parents=True, exist_ok=True)
        # explicit cache directory: never FastF1's default ~/.cache/fastf1
        fastf1.Cache.configure(cache_dir=str(cache_dir))
        fastf1.Cache.offline_mode(self.offline)
        # FastF1's own stderr handler would print every line a second time beside the run's JSON log
        # (its "fastf1" logger is a managed Python logger in dagster.yaml): only errors there
        fastf1.set_log_level("ERROR")
        _quiet_missing_f1_account()

    def load_race(self, race: RaceKey, *, laps: bool = True, telemetry: bool = False) -> LoadedRace:
        """Load the race session of `race` (results, laps, track status, messages; telemetry on request).

        Raises `FastF1NoSession`, `FastF1UpstreamError` or `FastF1DataError` (see the module docstring).
        """
        if race.season < FIRST_FASTF1_SEASON:
            raise FastF1NoSession(race, f"no FastF1 data before {FIRST_FASTF1_SEASON}")
        self._configure_fastf1()
        attempt = 1
        while True:
            try:
                return self._load_with_deadline(race, laps=laps, telemetry=telemetry)
            except FastF1UpstreamError as exc:
                exc.attempts = max(exc.attempts, attempt)
                if not exc.retryable or exc.attempts > self.connect_retries:
                    raise
                wait = self.retry_backoff_seconds * 2 ** (attempt - 1)
                log.warning("FastF1 %s, attempt %d of %d; trying again in %.1f s",
                            exc, attempt, self.connect_retries + 1, wait)
                time.sleep(wait)
                attempt += 1

    def _load_with_deadline(self, race: RaceKey, *, laps: bool, telemetry: bool) -> LoadedRace:
        """`_load_once` in a daemon thread, waited on for at most `load_timeout_seconds`. A load that
        overruns is abandoned (its thread ends with its sockets, or with the process)."""
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = self._load_once(race, laps=laps, telemetry=telemetry)
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=work, name=f"fastf1-load-{race.key}", daemon=True)
        worker.start()
        worker.join(self.load_timeout_seconds)
        if worker.is_alive():
            raise FastF1UpstreamError(
                race, f"no complete answer from FastF1's hosts within {self.load_timeout_seconds:g} s "
                f"(live timing {self.effective_livetiming_url()}): a host accepts connections but does not answer",
                (self.effective_livetiming_url(),), retryable=True, attempts=self.connect_retries + 1)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _load_once(self, race: RaceKey, *, laps: bool, telemetry: bool) -> LoadedRace:
        import fastf1
        from fastf1.exceptions import RateLimitExceededError

        with _capture_fastf1_log() as fastf1_log:
            try:
                # FastF1 tries its schedule backends in turn (schedule files, live timing's Index.json,
                # Jolpica) and raises ValueError only when all of them failed
                schedule = fastf1.get_event_schedule(race.season, include_testing=False)
            except ValueError as exc:
                if fastf1_log.unreachable:
                    raise FastF1UpstreamError(
                        race, f"FastF1's {race.season} schedule is unreachable: "
                        + _unreachable(fastf1_log.unreachable, fastf1_log.unreachable_errors),
                        tuple(fastf1_log.unreachable), retryable=True) from exc
                raise FastF1UpstreamError(
                    race, f"no FastF1 schedule backend has the {race.season} season: "
                    + "; ".join(w for w in fastf1_log.warnings if "schedule" in w), retryable=False) from exc
            try:
                session = schedule.get_event_by_round(race.round).get_session("R")
            except ValueError as exc:
                raise FastF1NoSession(race, f"FastF1 has no race session for this round: {exc}") from exc
            try:
                session.load(laps=laps, telemetry=telemetry, weather=laps, messages=laps)
            except RateLimitExceededError as exc:
                raise FastF1UpstreamError(race, f"FastF1's own request limit was hit: {exc}", retryable=True) from exc

        if fastf1_log.decode_failures:
            raise FastF1DataError(
                f"race {race.key}: malformed live-timing data from {session.api_path}: "
                + "; ".join(fastf1_log.decode_failures)
                + " — nothing was written; the previous version is kept"
            )
        loaded = LoadedRace(race=race, session=session, warnings=fastf1_log.warnings)
        missing = _missing_streams(loaded, fastf1_log.not_served, laps=laps, telemetry=telemetry)
        livetiming = [(u, e) for u, e in zip(fastf1_log.unreachable, fastf1_log.unreachable_errors, strict=True)
                      if u.startswith(self.effective_livetiming_url())]
        if missing and livetiming:
            urls, errors = zip(*livetiming, strict=True)
            raise FastF1UpstreamError(
                race, f"the live-timing host is unreachable: {_unreachable(list(urls), list(errors))}; "
                f"streams not loaded: {', '.join(missing)}", tuple(urls), retryable=True)
        loaded.missing_streams = missing
        loaded.not_served = tuple(s for s in missing if s in fastf1_log.not_served)
        loaded.weather_not_served = WEATHER_STREAM in fastf1_log.not_served
        loaded.fastf1_weather_error = fastf1_log.weather_error and settings.redact(fastf1_log.weather_error)
        # whenever the stream was asked for and served: also when FastF1's frame is empty because its parser
        # failed on one value (it then drops the whole stream, e.g. float(None) on one `"AirTemp": null`)
        if laps and not loaded.weather_not_served:
            loaded.weather_samples = _strict_weather(loaded)
            if loaded.fastf1_weather_error and len(loaded.weather):
                loaded.warnings.append(
                    f"FastF1 could not parse the {WEATHER_STREAM} stream ({loaded.fastf1_weather_error}); its "
                    f"{len(loaded.weather)} samples come from the strict parse (unreadable values NaN)")
        return loaded


def _strict_weather(loaded: LoadedRace) -> pd.DataFrame | None:
    """The race's WeatherData stream read again (FastF1's HTTP cache holds it right after the load) and parsed
    strictly: FastF1's parser makes 0 °C / "no rain" of a value it cannot read. None (FastF1's frame is used,
    with a warning) when the raw stream cannot be read again."""
    import fastf1._api

    try:
        entries = fastf1._api.fetch_page(loaded.session.api_path, "weather_data")
    except (*_UNREACHABLE, AttributeError, ValueError) as exc:
        entries, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "no answer"
    if not isinstance(entries, list):
        loaded.warnings.append(settings.redact(
            f"the {WEATHER_STREAM} stream could not be read again to check FastF1's values ({why}): "
            "weather values FastF1 could not read may show as 0 / no rain"))
        return None
    return weather_from_stream(entries)


def _missing_streams(loaded: LoadedRace, not_served: list[str], *, laps: bool, telemetry: bool) -> tuple[str, ...]:
    """The streams a loaded session lacks: the ones the host did not serve, and the ones FastF1 made
    nothing of (a stream can be served and still be empty)."""
    missing: list[str] = []
    if not loaded.driver_numbers:
        # session.load() does not raise on missing data: 0 drivers means nothing came back
        missing.append("DriverList")
    if laps:
        if loaded.timed_laps == 0:
            # without TimingData FastF1 does not even ask for TimingAppData: name what was not served
            missing.extend([s for s in LAP_STREAMS if s in not_served] or LAP_STREAMS)
        for attr, stream in (
            ("track_status", "TrackStatus"),
            ("session_status", "SessionStatus"),
            ("race_control_messages", "RaceControlMessages"),
        ):
            frame = loaded._loaded(attr)
            if frame is None or len(frame) == 0:
                missing.append(stream)
    if telemetry:
        for attr, stream in (("car_data", "CarData.z"), ("pos_data", "Position.z")):
            if not loaded._loaded(attr):
                missing.append(stream)
    read = (SESSION_STREAMS if laps else ()) + (TELEMETRY_STREAMS if telemetry else ())
    missing.extend(s for s in dict.fromkeys(not_served) if s in read and s not in missing)
    return tuple(missing)
