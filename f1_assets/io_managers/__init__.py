"""IO managers: the only owners of storage for asset outputs and inputs.

- `WarehouseIOManager` (`warehouse.py`): a table per asset, one partition per race (or season), written
  atomically by `Warehouse.replace_partitions` (lock + DELETE + binary COPY in one transaction) and read
  back for downstream assets. The table is the asset's declaration in `f1_assets.tables`.
- `ParquetIOManager` (`parquet.py`): one Parquet object per race partition in the blob store, at a
  Hive-style key `<prefix>/season=YYYY/round=RR/<name>.parquet`; the only code that knows blob keys.

Assets return DataFrames (or `dg.Output(frame, …)`); validation that must precede a write (pandera,
upstream totals, blocking checks) happens in the asset before it returns the frame.
"""

from f1_assets.io_managers.parquet import ParquetIOManager, blob_key, stored_object
from f1_assets.io_managers.warehouse import WarehouseIOManager, partition_of, read_table, stored_rows

__all__ = ["ParquetIOManager", "WarehouseIOManager", "blob_key", "partition_of", "read_table", "stored_object",
           "stored_rows"]
