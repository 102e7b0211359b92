"""The warehouse IO manager: asset ↔ table, partition ↔ rows (DuckDB embedded default, PostgreSQL).

Table: the asset's name, declared in `f1_assets.tables` (its columns, dtypes and keys). Partition:
the race key `YYYY-RR` → `{season, round}`, a season `YYYY` → `{season}`, unpartitioned → the whole
table. A run of many partitions (a backfill policy's batch) writes and reads all of them at once. A
write replaces exactly its partitions in one transaction and refuses a version with fewer
rows than the stored one unless the run carries the tag `f1/allow_shrink=true` (`ShrinkRefused` →
a non-retryable Failure; the stored rows stay) or the asset is derived (definition metadata
`f1/derived`: its size follows its inputs, which refuse to shrink themselves). `None` writes
nothing (an asset that declined to produce a new version). A read returns the partition's rows with
the declared dtypes (no rows: an empty frame of the right shape).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

from f1_assets import settings
from f1_assets.partitions import parse_race_key, parse_season
from f1_assets.resources.storage import WarehouseResource
from f1_assets.storage.warehouse import FrameMismatch, ShrinkRefused
from f1_assets.tables import ConformError, Table, table

ALLOW_SHRINK_TAG = "f1/allow_shrink"
# Definition metadata of derived tables (features, profiles): a new version may have any size — it
# follows its inputs, which are the ones that refuse to shrink.
DERIVED_METADATA = "f1/derived"


def allow_shrink(tags: Mapping[str, str]) -> bool:
    """Whether a run's tags accept a smaller version of a partition than the stored one."""
    return str(tags.get(ALLOW_SHRINK_TAG, "")).strip().lower() in ("1", "true", "yes")


def partition_of(declared: Table, partition_key: str | None) -> dict[str, int]:
    """The partition columns' values for a partition key, by the table's `partition_by`."""
    if not declared.partition_by:
        return {}
    if partition_key is None:
        raise dg.Failure(f"table {declared.name} is partitioned by {declared.partition_by}: a partition key is needed",
                         allow_retries=False)
    if declared.partition_by == ("season", "round"):
        race = parse_race_key(partition_key)
        return {"season": race.season, "round": race.round}
    if declared.partition_by == ("season",):
        return {"season": parse_season(partition_key)}
    raise ValueError(f"table {declared.name}: no partition key parser for {declared.partition_by}")


def table_of(asset_key: dg.AssetKey) -> Table:
    declared = table(asset_key.path[-1])
    if declared.storage != "warehouse":
        raise dg.Failure(f"asset {asset_key.to_user_string()} is declared as a {declared.storage} table, not a "
                         "warehouse table: give it the parquet_io_manager", allow_retries=False)
    return declared


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Asset tables in the warehouse (F1_WAREHOUSE_URL: DuckDB file by default, or PostgreSQL)."""

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        declared = table_of(context.asset_key)
        keys = _output_keys(context)
        partitions = [partition_of(declared, key) for key in keys]
        what = _describe(keys)
        try:
            frame = declared.conform(obj)
        except ConformError as exc:  # the asset's frame is not the table's shape: retrying cannot fix it
            raise dg.Failure(description=f"{declared.name} {what}: {exc}", allow_retries=False) from exc
        wh = self.warehouse.get()
        derived = (context.definition_metadata or {}).get(DERIVED_METADATA)
        shrink = bool(getattr(derived, "value", derived)) or allow_shrink(context.step_context.run_tags)
        try:
            written = wh.replace_partitions(declared.name, frame, partitions, allow_shrink=shrink)
        except ShrinkRefused as exc:
            shrunk = ", ".join(f"{k}={v}" for k, v in exc.partition.items()) or "whole table"
            batch = (f" (one of the {len(keys)} partitions of this run: none of them was written)"
                     if len(keys) > 1 else "")
            raise dg.Failure(
                description=f"{declared.name} partition {what if len(keys) == 1 else shrunk}{batch}: {exc}",
                metadata={"stored_rows": exc.stored, "new_rows": exc.new, "allow_shrink_tag": ALLOW_SHRINK_TAG},
                allow_retries=False,
            ) from exc
        except FrameMismatch as exc:  # never transient; other WarehouseErrors (connections) may be retried
            raise dg.Failure(description=f"{declared.name}: {exc}", allow_retries=False) from exc
        metadata = {
            "dagster/row_count": written,
            "dagster/column_schema": declared.table_schema(),
            "dagster/table_name": f"{wh.kind}.{declared.name}",
            "dagster/uri": table_uri(self.warehouse, declared.name),
            "allow_shrink": shrink,
        }
        if len(keys) > 1:  # one materialization per partition, each with the batch's metadata
            metadata["partitions_in_run"] = len(keys)
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        return _read(self.warehouse, table_of(context.asset_key), keys)


def table_uri(warehouse: WarehouseResource, name: str) -> str:
    """Where a table lives: the warehouse's URL (its password masked) and `#<table>`."""
    return settings.redact_url(f"{warehouse.effective_url()}#{name}")


def _output_keys(context: dg.OutputContext) -> list[str | None]:
    """The partition keys of an output: one, the run's range (a backfill of many partitions in one run),
    or none for an unpartitioned table."""
    if not context.has_asset_partitions:
        return [None]
    return list(context.asset_partition_keys)


def _describe(keys: Sequence[str | None]) -> str:
    if keys == [None]:
        return "(whole table)"
    return str(keys[0]) if len(keys) == 1 else f"{keys[0]}…{keys[-1]} ({len(keys)} partitions)"


def _read(warehouse: WarehouseResource, declared: Table, keys: Sequence[str | None]) -> pd.DataFrame:
    """The partitions' rows with the declared dtypes, in one query (none: an empty frame of the right shape)."""
    frame = warehouse.get().read_partitions(declared.name, [partition_of(declared, key) for key in keys])
    return declared.conform(frame) if len(frame) else declared.empty_frame()


# Reads outside the graph's inputs, through the same table/partition rules as the IO manager (assets
# pass their `warehouse` resource: Dagster hands an IO manager to no asset as a resource).
def read_table(warehouse: WarehouseResource, name: str,
               partition_key: str | Sequence[str] | None = None) -> pd.DataFrame:
    """A table's partition (or partitions, in one query) with the declared dtypes (e.g. the seasons of
    `raw_races` a batch of races belongs to)."""
    keys = [partition_key] if partition_key is None or isinstance(partition_key, str) else list(partition_key)
    return _read(warehouse, table(name), keys)


def stored_rows(warehouse: WarehouseResource, name: str, partition_key: str | None = None) -> int:
    """How many rows a table's partition holds now (what a refused write keeps)."""
    declared = table(name)
    return warehouse.get().count(declared.name, partition_of(declared, partition_key))

