"""The environment, read in one place.

Every configurable value has one environment name (DESIGN.md "Configuration"); unset means the
embedded default. Functions, not module constants: the environment is read when a resource is
set up, never at import time, so tests and `dagster dev` can change it per process.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dagster as dg

# The environment variables, one name each (resources show these names in the UI; nothing else spells them)
HOME = "F1_HOME"
WAREHOUSE_URL = "F1_WAREHOUSE_URL"
BLOB_URL = "F1_BLOB_URL"
JOLPICA_URL = "F1_JOLPICA_URL"
JOLPICA_DUMP_URL = "F1_JOLPICA_DUMP_URL"
LIVETIMING_URL = "F1_LIVETIMING_URL"
FASTF1_SCHEDULE_URL = "F1_FASTF1_SCHEDULE_URL"
CIRCUIT_INFO_URL = "F1_CIRCUIT_INFO_URL"
GIT_SHA = "F1_GIT_SHA"
IMAGE_DIGEST = "F1_IMAGE_DIGEST"
IMAGE_DIGEST_MAX = 128  # pipeline_audit_log.container_image_digest is varchar(128) (the seed's schema)
JOLPICA_HOURLY_BUDGET = "F1_JOLPICA_HOURLY_BUDGET"
SETTLE_DAYS = "F1_SETTLE_DAYS"
ALERT_WEBHOOK_URL = "F1_ALERT_WEBHOOK_URL"
DAGSTER_UI_URL = "F1_DAGSTER_UI_URL"

DEFAULT_JOLPICA_URL = "https://api.jolpi.ca/ergast/f1/"
DEFAULT_LIVETIMING_URL = "https://livetiming.formula1.com/"
# FastF1's own default for its schedule files (the f1schedule repository)
DEFAULT_FASTF1_SCHEDULE_URL = "https://raw.githubusercontent.com/theOehrly/f1schedule/master/"
# FastF1's own host for circuit info (corners), the MultiViewer API (fastf1.mvapi)
DEFAULT_CIRCUIT_INFO_URL = "https://api.multiviewer.app/api/v1/"
DEFAULT_HOURLY_BUDGET = 200
DEFAULT_SETTLE_DAYS = 14
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"  # `dagster dev`'s own address: alert run links point here


class ConfigError(dg.Failure, ValueError):
    """A setting that can never work as given (a malformed URL, a non-number, a negative budget, an
    unwritable F1_HOME, cloud storage without credentials). It names the variable, and its message
    is redacted when it is made.

    It is a `dg.Failure(allow_retries=False)`: raised anywhere inside a step, by settings, storage
    factories or resources, the step fails at once with this message and the RetryPolicy is bypassed
    (retrying cannot fix a setting). It stays a ValueError for callers outside Dagster (the CLI)."""

    def __init__(self, message: str):
        super().__init__(description=redact(message), allow_retries=False)


# scheme://userinfo@host: the password runs to the last `@` of the authority (a password may hold `@`)
# The secret runs to the LAST `@` of the token: a password with an unencoded `/` or `@` (which no URL
# parser splits right) is masked whole rather than cut at its first `/` or `@`.
_URL_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s'\"]*):(?P<secret>[^\s'\"]*)@"
                           r"(?=[A-Za-z0-9.\[\]-]+(?:[:/?'\"\s]|$))")  # a host follows (not `limit=100`)
# userinfo in anything else URL-like, whether or not the URL parses: `user:secret@host` after a
# mistyped scheme, `//user:secret@host`. Only the password is masked.
_USERINFO = re.compile(r"(?P<user>[A-Za-z0-9._~%!$&'()*+,;=-]*):(?P<secret>[^\s@/:'\"]+)@(?=[A-Za-z0-9\[._-])")

_KEYWORD_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s&;,]+)")


def redact(text: object, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every URL password (and `password=…` of a libpq conninfo) replaced by `***`;
    user names and hosts stay readable. `secrets` are masked wherever they appear (a password that
    a driver quotes back on its own, outside any URL)."""
    masked = str(text)
    for secret in secrets:
        if secret:
            masked = masked.replace(secret, "***")
    masked = _URL_USERINFO.sub(lambda m: f"{m.group('head')}:***@", masked)
    masked = _USERINFO.sub(lambda m: f"{m.group('user')}:***@", masked)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}***", masked)


def url_password(url: str) -> tuple[str, ...]:
    """The password of `url` as written and percent-decoded (for `redact(..., secrets=)`), or ().

    Read up to the last `@` of the URL, so an unencoded `/` or `@` in it (see `unencoded_password`)
    does not hide part of it from the redaction."""
    match = _URL_USERINFO.match(url.strip())
    found = {match.group("secret")} if match else set()
    try:
        found.add(urlsplit(url).password or "")  # e.g. one with a space, which the pattern stops at
    except ValueError:
        pass
    return tuple(sorted({v for p in found if p for v in (p, unquote(p))}, key=len, reverse=True))


def unencoded_password(variable: str, url: str) -> None:
    """ConfigError when the URL's password holds a character a URL parser splits on (`/ @ ? #`):
    libpq would read part of it as the host and print it; percent-encoding fixes it."""
    match = _URL_USERINFO.match(url.strip())
    if match:
        bad = sorted({c for c in match.group("secret") if c in "/@?#"})
        if bad:
            codes = ", ".join(f"'{c}' as %{ord(c):02X}" for c in bad)
            raise ConfigError(f"{variable}: the password in the URL holds {', '.join(repr(c) for c in bad)}, which "
                              f"a URL cannot carry as is: percent-encode it ({codes})")


def redact_url(url: str, text: object | None = None) -> str:
    """`text` (default: the URL itself) redacted, masking also this URL's own password wherever it
    appears, even one that no pattern recognises (a password with a space, quoted back by libpq)."""
    return redact(url if text is None else text, secrets=url_password(url))


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def writable_dir(path: str | os.PathLike[str], variable: str) -> Path:
    """`path`, created if missing, after proving a file can be written in it; else ConfigError
    naming `variable` (read-only mounts, a path under a regular file, missing permissions)."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".f1-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{variable}: {directory} is not a writable directory ({exc.strerror or exc})") from None
    return directory


def http_url(variable: str, value: str) -> str:
    """`value` if it is an http(s) URL with a host, else ConfigError naming `variable` (redacted)."""
    port_error = None
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        try:
            parts.port  # noqa: B018 — a port that is no number or out of range raises ValueError here, not mid-run
        except ValueError as exc:
            port_error = "out of range (0-65535)" if "out of range" in str(exc) else "not a number"
    except ValueError:
        ok = False
    if ok and port_error:
        raise ConfigError(f"{variable}={value!r}: the port is {port_error}: expected http(s)://host[:port]/…")
    if not ok:
        raise ConfigError(f"{variable}={value!r} is not an http(s) URL: expected http(s)://host/…")
    return value


def f1_home() -> Path:
    """Local data directory of the embedded default (warehouse file, blob store, rate ledger, FastF1
    cache), created on first use; an unwritable one is a ConfigError naming F1_HOME."""
    return writable_dir(Path(_get(HOME) or Path.cwd() / ".f1_home").resolve(), HOME)


def warehouse_url() -> str:
    """`duckdb:///path/to/file.duckdb` (default under F1_HOME) or `postgresql://…` (checked by
    `storage.warehouse.warehouse_from_url`, which names F1_WAREHOUSE_URL)."""
    return _get(WAREHOUSE_URL) or f"duckdb:///{f1_home() / 'warehouse.duckdb'}"


def blob_url() -> str:
    """A local directory (default F1_HOME/blobs) or `gs://bucket/prefix` (checked by
    `storage.blob.blob_store_from_url`, which names F1_BLOB_URL)."""
    return _get(BLOB_URL) or str(f1_home() / "blobs")


def jolpica_url() -> str:
    value = _get(JOLPICA_URL)
    return http_url(JOLPICA_URL, value) if value else DEFAULT_JOLPICA_URL


def jolpica_dump_url() -> str | None:
    """Where `jolpica_dump` reads Jolpica's CSV dump: an http(s) URL or a local path; unset: the delayed
    CSV endpoint on F1_JOLPICA_URL's host (`ingest_dump.default_dump_url`)."""
    value = _get(JOLPICA_DUMP_URL)
    if value and "://" in value:
        return http_url(JOLPICA_DUMP_URL, value)
    return value or None


def alert_webhook_url() -> str | None:
    """Where alerts are posted (a Slack-compatible incoming webhook); unset: alerts are only logged.
    A Slack webhook's path is its secret: `alerts.notify` never prints it."""
    value = _get(ALERT_WEBHOOK_URL)
    if not value:
        return None
    try:
        return http_url(ALERT_WEBHOOK_URL, value)
    except ConfigError:  # http_url quotes the value; this one is a secret whole, so it is not quoted
        raise ConfigError(f"{ALERT_WEBHOOK_URL} is not an http(s) URL: expected http(s)://host/… "
                          "(the value is not shown: a webhook URL is a secret)") from None


def dagster_ui_url() -> str:
    """The Dagster UI's base URL, for the run links in alerts (no trailing slash)."""
    value = _get(DAGSTER_UI_URL)
    return (http_url(DAGSTER_UI_URL, value) if value else DEFAULT_DAGSTER_UI_URL).rstrip("/")


def livetiming_url() -> str:
    value = _get(LIVETIMING_URL)
    return http_url(LIVETIMING_URL, value) if value else DEFAULT_LIVETIMING_URL


def fastf1_schedule_url() -> str:
    """Where FastF1 reads its season schedule files (`schedule_YYYY.json`); a mirror works."""
    value = _get(FASTF1_SCHEDULE_URL)
    return http_url(FASTF1_SCHEDULE_URL, value) if value else DEFAULT_FASTF1_SCHEDULE_URL


def circuit_info_url() -> str:
    """Where FastF1 reads circuit info (`circuits/{key}/{year}`: corners); a mirror works. Optional data."""
    value = _get(CIRCUIT_INFO_URL)
    return http_url(CIRCUIT_INFO_URL, value) if value else DEFAULT_CIRCUIT_INFO_URL


def git_sha() -> str | None:
    """The deployed commit, for images built without .git (the audit log records it)."""
    return _get(GIT_SHA)


def image_digest() -> str | None:
    """The container image the run executes in, for the audit log: F1_IMAGE_DIGEST (the deploy sets it to
    the image's `sha256:` digest), else the digest in DAGSTER_CURRENT_IMAGE (which the K8sRunLauncher sets
    to the image a run is launched with: `repo/f1-assets@sha256:...` when deployed by digest), else that
    image reference as it is (a tag), else None (not in a container)."""
    value = _get(IMAGE_DIGEST) or os.environ.get("DAGSTER_CURRENT_IMAGE") or None
    if value is None:
        return None
    digest = re.search(r"sha256:[0-9a-fA-F]{64}", value)
    if digest:
        return digest.group(0)
    # a tag: without any credentials before an `@`, cut to the audit column's 128 characters
    return value.rsplit("@", 1)[-1][:IMAGE_DIGEST_MAX]


def _int(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = _get(name)
    if raw is None:
        return default
    wanted = f"{name} must be a whole number from {minimum} to {maximum}, got {raw!r}"
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(wanted) from None
    if not minimum <= value <= maximum:
        raise ConfigError(wanted)
    return value


def jolpica_hourly_budget() -> int:
    """Requests per hour shared by every run (at least 1)."""
    return _int(JOLPICA_HOURLY_BUDGET, DEFAULT_HOURLY_BUDGET, minimum=1, maximum=1_000_000)


def settle_days() -> int:
    """Days after a race from which it is served from the raw archive (0 or more)."""
    return _int(SETTLE_DAYS, DEFAULT_SETTLE_DAYS, minimum=0, maximum=36_500)  # a century: dates stay valid
