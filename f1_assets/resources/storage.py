"""Resources that hand out the storage backends (warehouse, blob store).

Each resource says in its config which environment variable configures it (`url_env_var`:
`F1_WAREHOUSE_URL`, `F1_BLOB_URL`), and reads that variable when it is used; unset or empty means
the embedded default under `F1_HOME`. Why not `url=dg.EnvVar("F1_WAREHOUSE_URL")`: Dagster resolves
an EnvVar when a run (or a sensor tick) starts and fails it outright when the variable is unset
("You have attempted to fetch the environment variable … which is not set"; checked with Dagster
1.13), so the embedded default, which needs nothing set, would be impossible. Reading the variable
when the Definitions load (`os.getenv`) is no better: the value would be fixed at load time and shown
in the UI. So the field holds the variable's NAME, which is what the UI shows: never a value, never a
password, never `url=None`. The name is a `Literal`: the variable is the setting's one name
(`settings.py`, DESIGN "Configuration") and the storage errors name it, so it cannot be renamed.

`url` gives a URL directly instead (tests, scripts). It has no default, so Dagster leaves it out of
the config it shows unless it is given. A password never goes there: Dagster shows field values in the
UI and stores them in every job snapshot (`dg.EnvVar(...)` is shown by name and would do).

A URL that can never work raises `settings.ConfigError` from `get()`: a
`dg.Failure(allow_retries=False)` whose message names the variable with the password masked, so the
step fails at once instead of going through the RetryPolicy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import dagster as dg
from pydantic import Field, PrivateAttr

from f1_assets import settings
from f1_assets.storage import blob, warehouse
from f1_assets.storage.blob import BlobStore, blob_store_from_url
from f1_assets.storage.warehouse import Warehouse, warehouse_from_url

_Backend = TypeVar("_Backend", Warehouse, BlobStore)
_DIRECT_URL = ("A URL given directly instead of the variable (tests, scripts). Never a password here: "
               "the UI shows field values; use the variable (or dg.EnvVar(...), shown by name).")


def env_var_field(variable: str, unset: str) -> Any:
    """The field of a resource that names the environment variable configuring it (annotate it
    `Literal["<variable>"]`): Dagster shows the name, the resource reads the variable when used."""
    return Field(default=variable, description=f"The environment variable read when the resource is used "
                 f"(the UI shows its name, never its value). Unset or empty: {unset}.")


class _StorageResource(dg.ConfigurableResource):
    """What both storage resources share: `url` (given directly) or else the URL their variable gives
    (`_env_url`), and the backend opened from it once per resource instance."""

    url: str | None = Field(description=_DIRECT_URL)  # no default: not shown unless given
    _backend: Any = PrivateAttr(default=None)

    def _env_url(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} names no environment variable for its URL")

    def effective_url(self) -> str:
        return self.url or self._env_url()

    def _opened(self, from_url: Callable[[str], _Backend]) -> _Backend:
        if self._backend is None:
            self._backend = from_url(self.effective_url())
        return self._backend


class WarehouseResource(_StorageResource):
    """The warehouse: `duckdb:///path` (embedded default) or `postgresql://…`."""

    url_env_var: Literal[warehouse.URL_VARIABLE] = env_var_field(
        warehouse.URL_VARIABLE, "DuckDB at $F1_HOME/warehouse.duckdb (the embedded default)")

    def _env_url(self) -> str:
        return settings.warehouse_url()

    def get(self) -> Warehouse:
        """The warehouse; a ConfigError (non-retryable dg.Failure) names F1_WAREHOUSE_URL or F1_HOME."""
        return self._opened(warehouse_from_url)


class BlobStoreResource(_StorageResource):
    """The blob store: a local directory (embedded default) or `gs://bucket/prefix`."""

    url_env_var: Literal[blob.URL_VARIABLE] = env_var_field(blob.URL_VARIABLE, "the directory $F1_HOME/blobs")

    def _env_url(self) -> str:
        return settings.blob_url()

    def get(self) -> BlobStore:
        """The blob store; a ConfigError (non-retryable dg.Failure) names F1_BLOB_URL or F1_HOME."""
        return self._opened(blob_store_from_url)
