"""The Parquet IO manager: one object per race partition in the blob store (local directory or GCS).

Key: `<prefix>/season=YYYY/round=RR/<name>.parquet`, Hive-style so engines that read partitioned
Parquet (DuckDB, BigQuery external tables, Spark) see `season`/`round` columns. `<prefix>` is the
asset's definition metadata `f1/blob_prefix` (default: the asset name); `<name>` its last segment.
Nothing else in the project builds a blob key for an asset.

Writing `None` writes nothing; writing an empty frame deletes the race's object (there is no data for
it, and a stale object must not outlive the version that replaced it). Reading a race without an
object returns `None`, so a downstream asset can tell "no telemetry yet" from "no samples".
"""

from __future__ import annotations

import io

import dagster as dg
import pandas as pd

from f1_assets.partitions import parse_race_key
from f1_assets.resources.storage import BlobStoreResource

PREFIX_METADATA = "f1/blob_prefix"
PARQUET = "application/vnd.apache.parquet"


def blob_key(prefix: str, partition_key: str) -> str:
    race = parse_race_key(partition_key)
    name = prefix.rstrip("/").split("/")[-1]
    return f"{prefix.rstrip('/')}/season={race.season:04d}/round={race.round:02d}/{name}.parquet"


def _prefix(asset_key: dg.AssetKey, definition_metadata: dict | None) -> str:
    value = (definition_metadata or {}).get(PREFIX_METADATA)
    return str(getattr(value, "value", value) or asset_key.path[-1])


class ParquetIOManager(dg.ConfigurableIOManager):
    """Race-partitioned frames as Parquet objects (F1_BLOB_URL: F1_HOME/blobs by default, or gs://)."""

    blob_store: BlobStoreResource

    def key(self, asset_key: dg.AssetKey, partition_key: str, definition_metadata: dict | None = None) -> str:
        return blob_key(_prefix(asset_key, definition_metadata), partition_key)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        key = self.key(context.asset_key, context.partition_key, context.definition_metadata)
        store = self.blob_store.get()
        if obj.empty:
            store.delete(key)
            context.add_output_metadata({"dagster/row_count": 0, "bytes": 0})
            return
        buffer = io.BytesIO()
        obj.to_parquet(buffer, index=False)
        data = buffer.getvalue()
        url = store.put(key, data, PARQUET)
        context.add_output_metadata({"dagster/row_count": len(obj), "bytes": len(data),
                                     "dagster/uri": url, "parquet": dg.MetadataValue.path(url)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | None:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream is not None else None
        data = self.blob_store.get().get(self.key(context.asset_key, context.asset_partition_key, metadata))
        return None if data is None else pd.read_parquet(io.BytesIO(data))


def stored_object(blob_store: BlobStoreResource, prefix: str, partition_key: str) -> str | None:
    """The URL of a race's object under `prefix` when one is stored, else None (no download)."""
    key = blob_key(prefix, partition_key)
    store = blob_store.get()
    return store.url(key) if store.exists(key) else None
