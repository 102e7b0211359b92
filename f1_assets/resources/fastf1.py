"""The FastF1 resource: loads one race session through FastF1's own code, from configurable hosts.

Called by the FastF1 ingest assets (`f1_assets.assets.ingest_fastf1`) and by tests. It owns all of
FastF1's process-wide state: the three upstream hosts (live timing, schedule files, Jolpica) and
the cache directory, both set right before each load, so a run never reads `~/.cache/fastf1` and
never talks to a host the configuration did not name.

`load_race` returns a `LoadedRace` (the session plus the streams that were missing) or raises
`FastF1Unavailable` (nothing usable: pre-2018, unknown race, no drivers/laps) or `FastF1DataError`
(the upstream answered with data that does not decode: fail, keep what is stored).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from f1_assets import settings
from f1_assets.partitions import RaceKey

FIRST_FASTF1_SEASON = 2018

# which live-timing streams feed each part of a loaded session
LAP_STREAMS = ("TimingData", "TimingAppData")
TELEMETRY_STREAMS = ("CarData.z", "Position.z")

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
}


class FastF1Unavailable(Exception):
    """FastF1 has no usable data for the race; the asset materializes empty with this reason."""

    def __init__(self, race: RaceKey, reason: str, missing_streams: tuple[str, ...] = ()):
        self.race = race
        self.reason = reason
        self.missing_streams = missing_streams
        super().__init__(f"race {race.key}: {reason}")


class FastF1DataError(Exception):
    """The upstream answered with data that does not decode (a malformed jsonStream line)."""


@dataclass
class LoadedRace:
    race: RaceKey
    session: Any  # fastf1.core.Session, loaded
    missing_streams: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    @property
    def driver_numbers(self) -> list[str]:
        return [str(d) for d in self.session.drivers]


class _FastF1Log(logging.Handler):
    """Collects FastF1's warnings during one load and which stream each decode failure hit."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.current_stream = "unknown stream"
        self.warnings: list[str] = []
        self.decode_failures: list[str] = []

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
        if record.levelno >= logging.WARNING:
            self.warnings.append(message.strip())


@contextmanager
def _capture_fastf1_log() -> Iterator[_FastF1Log]:
    logger = logging.getLogger("fastf1")
    handler = _FastF1Log()
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class FastF1Resource(dg.ConfigurableResource):
    """FastF1 pointed at configurable hosts, with its cache under F1_HOME.

    Unset fields fall back to the environment when the resource is used: `livetiming_url` to
    `F1_LIVETIMING_URL`, `jolpica_url` to `F1_JOLPICA_URL`, `schedule_url` to `F1_FASTF1_SCHEDULE_URL`
    (default FastF1's own schedule repository), `cache_dir` to `F1_HOME/fastf1-cache`. Use a pool
    limit of 1 (pool `fastf1`): FastF1's SQLite HTTP cache locks under parallel writers, and its hosts
    are process-wide.
    """

    livetiming_url: str | None = None
    schedule_url: str | None = None
    jolpica_url: str | None = None
    cache_dir: str | None = None
    offline: bool = False  # serve only what the cache holds (no request at all)

    def effective_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else settings.f1_home() / "fastf1-cache"

    def _configure_fastf1(self) -> None:
        import fastf1
        import fastf1._api
        import fastf1.ergast.interface
        import fastf1.events

        livetiming = (self.livetiming_url or settings.livetiming_url()).rstrip("/")
        schedule = (self.schedule_url or settings.fastf1_schedule_url()).rstrip("/") + "/"
        jolpica = (self.jolpica_url or settings.jolpica_url()).rstrip("/")
        # FastF1 has no public setting for its hosts: they are module constants read at request
        # time. This is the one place in the project that sets them (and the only private access).
        # The mirror is set to the same host so that nothing ever falls back to FastF1's own mirror.
        fastf1._api.base_url = livetiming
        fastf1._api.base_url_mirror = livetiming
        fastf1.events._SCHEDULE_BASE_URL = schedule
        fastf1.ergast.interface.BASE_URL = jolpica

        cache_dir = self.effective_cache_dir()
        cache_dir.mkdir(parents=True, exist_ok=True)
        # explicit cache directory: never FastF1's default ~/.cache/fastf1
        fastf1.Cache.configure(cache_dir=str(cache_dir))
        fastf1.Cache.offline_mode(self.offline)

    def load_race(self, race: RaceKey, *, laps: bool = True, telemetry: bool = False) -> LoadedRace:
        """Load the race session of `race` (results, laps, track status, messages; telemetry on request)."""
        if race.season < FIRST_FASTF1_SEASON:
            raise FastF1Unavailable(race, f"no FastF1 data before {FIRST_FASTF1_SEASON}")
        self._configure_fastf1()
        import fastf1
        from fastf1.exceptions import DataNotLoadedError

        with _capture_fastf1_log() as log:
            try:
                session = fastf1.get_session(race.season, race.round, "R")
            except ValueError as exc:  # FastF1: round not in the season's schedule
                raise FastF1Unavailable(race, f"FastF1 has no race session for this round: {exc}") from exc
            session.load(laps=laps, telemetry=telemetry, weather=False, messages=laps)

        if log.decode_failures:
            raise FastF1DataError(
                f"race {race.key}: malformed live-timing data from {session.api_path}: "
                + "; ".join(log.decode_failures)
                + " — nothing was written; the previous version is kept"
            )

        def loaded(attr: str) -> Any:
            try:
                return getattr(session, attr)
            except DataNotLoadedError:
                return None

        missing: list[str] = []
        if len(session.drivers) == 0:
            # session.load() does not raise on missing data: 0 drivers means nothing came back
            raise FastF1Unavailable(
                race,
                f"FastF1 loaded 0 drivers from {session.api_path} (DriverList/TimingData missing or empty)",
                ("DriverList", *LAP_STREAMS),
            )
        if laps:
            lap_frame = loaded("laps")
            if lap_frame is not None and "FastF1Generated" in lap_frame:
                # without timing data FastF1 still makes one placeholder lap per driver from Jolpica
                lap_frame = lap_frame[~lap_frame["FastF1Generated"].fillna(False).astype(bool)]
            if lap_frame is None or len(lap_frame) == 0:
                missing.extend(LAP_STREAMS)
            for attr, stream in (
                ("track_status", "TrackStatus"),
                ("session_status", "SessionStatus"),
                ("race_control_messages", "RaceControlMessages"),
            ):
                frame = loaded(attr)
                if frame is None or len(frame) == 0:
                    missing.append(stream)
        if telemetry:
            for attr, stream in (("car_data", "CarData.z"), ("pos_data", "Position.z")):
                data = loaded(attr)
                if not data:
                    missing.append(stream)
        return LoadedRace(race=race, session=session, missing_streams=tuple(missing), warnings=log.warnings)
