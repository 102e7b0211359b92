"""The environment, read in one place.

Every configurable value has one environment name (DESIGN.md "Configuration"); unset means the
embedded default. Functions, not module constants: the environment is read when a resource is
set up, never at import time, so tests and `dagster dev` can change it per process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_JOLPICA_URL = "https://api.jolpi.ca/ergast/f1/"
DEFAULT_LIVETIMING_URL = "https://livetiming.formula1.com/"
# FastF1's own default for its schedule files (the f1schedule repository)
DEFAULT_FASTF1_SCHEDULE_URL = "https://raw.githubusercontent.com/theOehrly/f1schedule/master/"
DEFAULT_HOURLY_BUDGET = 200
DEFAULT_SETTLE_DAYS = 14


class ConfigError(ValueError):
    """A setting that can never work as given (a malformed URL, a non-number, a negative budget, an
    unwritable F1_HOME). It names the variable; callers fail at once and never retry it."""


# userinfo in anything URL-like, whether or not the URL parses: `scheme://user:secret@host`,
# `user:secret@host` after a mistyped scheme, `//user:secret@host`. Only the password is masked.
_USERINFO = re.compile(r"(?P<user>[A-Za-z0-9._~%!$&'()*+,;=-]*):(?P<secret>[^\s@/:'\"]+)@(?=[A-Za-z0-9\[._-])")


_KEYWORD_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s&;,]+)")


def redact(text: object) -> str:
    """`text` with every URL password (and `password=…` of a libpq conninfo) replaced by `***`;
    user names and hosts stay readable."""
    masked = _USERINFO.sub(lambda m: f"{m.group('user')}:***@", str(text))
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}***", masked)


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def f1_home() -> Path:
    """Local data directory of the embedded default (warehouse file, blob store, rate ledger)."""
    return Path(_get("F1_HOME") or Path.cwd() / ".f1_home").resolve()


def warehouse_url() -> str:
    """`duckdb:///path/to/file.duckdb` (default under F1_HOME) or `postgresql://…`."""
    return _get("F1_WAREHOUSE_URL") or f"duckdb:///{f1_home() / 'warehouse.duckdb'}"


def blob_url() -> str:
    """A local directory (default F1_HOME/blobs) or `gs://bucket/prefix`."""
    return _get("F1_BLOB_URL") or str(f1_home() / "blobs")


def jolpica_url() -> str:
    return _get("F1_JOLPICA_URL") or DEFAULT_JOLPICA_URL


def livetiming_url() -> str:
    return _get("F1_LIVETIMING_URL") or DEFAULT_LIVETIMING_URL


def fastf1_schedule_url() -> str:
    """Where FastF1 reads its season schedule files (`schedule_YYYY.json`); a mirror works."""
    return _get("F1_FASTF1_SCHEDULE_URL") or DEFAULT_FASTF1_SCHEDULE_URL


def git_sha() -> str | None:
    """The deployed commit, for images built without .git (the audit log records it)."""
    return _get("F1_GIT_SHA")


def _int(name: str, default: int) -> int:
    raw = _get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc


def jolpica_hourly_budget() -> int:
    return _int("F1_JOLPICA_HOURLY_BUDGET", DEFAULT_HOURLY_BUDGET)


def settle_days() -> int:
    return _int("F1_SETTLE_DAYS", DEFAULT_SETTLE_DAYS)
