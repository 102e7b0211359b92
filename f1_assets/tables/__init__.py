"""Every table, declared once: `TABLES` by name, `table(name)`, and the `Column`/`Table` contract.

The declarations are data, one file per family: `raw.yaml` (Jolpica), `fastf1.yaml`, `features.yaml`,
`ml.yaml`, `ops.yaml` (their format: the head of raw.yaml). DDL, pandas dtypes, pandera schemas and
Dagster `TableSchema`s are derived from them (`contract.py`). `TABLES` holds the warehouse tables and
the Parquet ones (`raw_telemetry`, in the blob store); `WAREHOUSE_TABLES` the warehouse tables only,
what the DDL, the migrations and `sql/schema.sql` cover.
"""

from __future__ import annotations

from importlib import resources

import yaml

from f1_assets.tables.contract import Column, ConformError, Table

FAMILIES = ("raw", "fastf1", "features", "ml", "ops")


def _load(family: str) -> list[Table]:
    source = resources.files(__package__) / f"{family}.yaml"
    return [Table.from_spec(name, spec, f"f1_assets/tables/{family}.yaml")
            for name, spec in yaml.safe_load(source.read_text()).items()]


TABLES: dict[str, Table] = {t.name: t for family in FAMILIES for t in _load(family)}
WAREHOUSE_TABLES: dict[str, Table] = {name: t for name, t in TABLES.items() if t.storage == "warehouse"}


def table(name: str) -> Table:
    """The declaration of table `name`; KeyError naming the known tables."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no table {name!r} is declared; known tables: {sorted(TABLES)}") from None


__all__ = ["TABLES", "WAREHOUSE_TABLES", "Column", "ConformError", "Table", "table"]
