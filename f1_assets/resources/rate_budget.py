"""The Jolpica rate budget: one limiter for every step of every run that calls Jolpica.

Jolpica allows a burst of 4 requests/s and an hourly budget (500/h anonymous today, announced to
decrease; default here 200/h). A season backfill is many runs in many processes, so the limiter's
memory is a ledger shared by all of them: a locked file under F1_HOME (embedded default) or a table
in PostgreSQL (`jolpica_request_log`). A request is sent only after the ledger has recorded it, so
no process fires a request it knows will be refused. Called by the Jolpica client.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

HOUR = 3600.0


class RateBudgetExhausted(RuntimeError):
    """The budget has no room for a request within the wait we accept; retry after `seconds_to_wait`."""

    def __init__(self, seconds_to_wait: float, reason: str):
        super().__init__(f"Jolpica rate budget exhausted: {reason}; next request possible in {seconds_to_wait:.0f}s")
        self.seconds_to_wait = seconds_to_wait


Rule = tuple[int, float]  # (at most N requests, in any window of W seconds)


def wait_seconds(timestamps: Sequence[float], now: float, rules: Sequence[Rule]) -> float:
    """Seconds until one more request fits every rule, given the sorted send times so far (0 = now)."""
    wait = 0.0
    for limit, window in rules:
        recent = [t for t in timestamps if t > now - window]
        if len(recent) >= limit:
            wait = max(wait, recent[-limit] + window - now)
    return wait


class RequestLedger(ABC):
    """Send times of recent requests, shared between processes; `reserve` is atomic."""

    @abstractmethod
    def reserve(self, now: float, rules: Sequence[Rule]) -> float:
        """Record a request at `now` and return 0 if it fits every rule; else record nothing and
        return the seconds to wait."""


class FileLedger(RequestLedger):
    """A JSON list of send times in a file, read and written under an exclusive flock."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def reserve(self, now: float, rules: Sequence[Rule]) -> float:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                raw = handle.read()
                stamps = sorted(json.loads(raw)) if raw.strip() else []
                stamps = [t for t in stamps if t > now - HOUR]
                wait = wait_seconds(stamps, now, rules)
                if wait <= 0:
                    stamps.append(now)
                    handle.seek(0)
                    handle.truncate()
                    handle.write(json.dumps(stamps))
                    handle.flush()
                    os.fsync(handle.fileno())
                return max(wait, 0.0)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class PostgresLedger(RequestLedger):
    """Rows of `jolpica_request_log` (`f1_assets/tables/ops.yaml`), reserved under a transaction-level advisory lock.

    The table exists: `JolpicaResource.ledger()` brings the warehouse's schema to head first."""

    def __init__(self, url: str):
        self.url = url

    def reserve(self, now: float, rules: Sequence[Rule]) -> float:
        import psycopg

        with psycopg.connect(self.url) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('f1_assets.jolpica_rate_budget'))")
            conn.execute("DELETE FROM jolpica_request_log WHERE requested_at <= %s", [now - HOUR])
            rows = conn.execute("SELECT requested_at FROM jolpica_request_log ORDER BY requested_at").fetchall()
            wait = wait_seconds([r[0] for r in rows], now, rules)
            if wait <= 0:
                conn.execute("INSERT INTO jolpica_request_log (requested_at) VALUES (%s)", [now])
            return max(wait, 0.0)


SECOND_MARGIN = 0.25  # seconds added to the per-second window


class RateLimiter:
    """Waits for room in the shared budget; raises RateBudgetExhausted when the wait is too long."""

    def __init__(
        self,
        ledger: RequestLedger,
        per_second: int = 4,
        per_hour: int = 200,
        max_wait_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_second < 1 or per_hour < 1:
            raise ValueError("rate limits must be at least 1 request per window")
        self.ledger = ledger
        # the per-second window is a little wider than a second: a request is recorded when it is reserved,
        # before it reaches the upstream (ledger lock, connect), so a window of exactly 1 s lets the next
        # burst arrive inside the upstream's own second (seen: 35 of 301 requests answered 429)
        self.rules: list[Rule] = [(per_second, 1.0 + SECOND_MARGIN), (per_hour, HOUR)]
        self.per_hour = per_hour
        self.max_wait_seconds = max_wait_seconds
        self.clock = clock
        self.sleep = sleep

    def acquire(self) -> None:
        while True:
            wait = self.ledger.reserve(self.clock(), self.rules)
            if wait <= 0:
                return
            if wait > self.max_wait_seconds:
                raise RateBudgetExhausted(wait, f"{self.per_hour} requests/hour used")
            self.sleep(wait)
