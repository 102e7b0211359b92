"""Resources that hand out the storage backends (warehouse, blob store).

A field left unset falls back to the environment (`F1_WAREHOUSE_URL`, `F1_BLOB_URL`) when the
resource is used, and then to the embedded default under `F1_HOME`. A URL that can never work
raises `settings.ConfigError` from `get()`: a `dg.Failure(allow_retries=False)` whose message names
the variable with the password masked, so the step fails at once instead of going through the
RetryPolicy.

Passwords belong in the environment, never in a field: Dagster shows a resource's field values in
the UI and stores them in every job snapshot. Leave `url` unset (the Definitions do) or pass
`url=dg.EnvVar("F1_WAREHOUSE_URL")`, which the UI shows by name.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from f1_assets import settings
from f1_assets.storage.blob import BlobStore, blob_store_from_url
from f1_assets.storage.warehouse import Warehouse, warehouse_from_url

_NO_PASSWORD = " Never a password here (the UI shows field values): unset or dg.EnvVar(...)."


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: `duckdb:///path` (embedded default) or `postgresql://…`."""

    url: str | None = Field(default=None, description="Unset: F1_WAREHOUSE_URL, else DuckDB under F1_HOME."
                            + _NO_PASSWORD)
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def effective_url(self) -> str:
        return self.url or settings.warehouse_url()

    def get(self) -> Warehouse:
        """The warehouse; a ConfigError (non-retryable dg.Failure) names F1_WAREHOUSE_URL or F1_HOME."""
        if self._warehouse is None:
            self._warehouse = warehouse_from_url(self.effective_url())
        return self._warehouse


class BlobStoreResource(dg.ConfigurableResource):
    """The blob store: a local directory (embedded default) or `gs://bucket/prefix`."""

    url: str | None = Field(default=None, description="Unset: F1_BLOB_URL, else F1_HOME/blobs." + _NO_PASSWORD)
    _store: BlobStore | None = PrivateAttr(default=None)

    def effective_url(self) -> str:
        return self.url or settings.blob_url()

    def get(self) -> BlobStore:
        """The blob store; a ConfigError (non-retryable dg.Failure) names F1_BLOB_URL or F1_HOME."""
        if self._store is None:
            self._store = blob_store_from_url(self.effective_url())
        return self._store
