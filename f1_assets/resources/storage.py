"""Resources that hand out the storage backends (warehouse, blob store).

A field left unset falls back to the environment (`F1_WAREHOUSE_URL`, `F1_BLOB_URL`) when the
resource is used, and then to the embedded default under `F1_HOME`.
"""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from f1_assets import settings
from f1_assets.storage.blob import BlobStore, blob_store_from_url
from f1_assets.storage.warehouse import Warehouse, warehouse_from_url


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: `duckdb:///path` (embedded default) or `postgresql://…`."""

    url: str | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def effective_url(self) -> str:
        return self.url or settings.warehouse_url()

    def get(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = warehouse_from_url(self.effective_url())
        return self._warehouse


class BlobStoreResource(dg.ConfigurableResource):
    """The blob store: a local directory (embedded default) or `gs://bucket/prefix`."""

    url: str | None = None
    _store: BlobStore | None = PrivateAttr(default=None)

    def effective_url(self) -> str:
        return self.url or settings.blob_url()

    def get(self) -> BlobStore:
        if self._store is None:
            self._store = blob_store_from_url(self.effective_url())
        return self._store
