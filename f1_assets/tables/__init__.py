"""Every warehouse table, declared once: `TABLES` by name, `table(name)`, and the `Column`/`Table` contract.

DDL, pandas dtypes, pandera schemas and Dagster `TableSchema`s are derived from these declarations
(`contract.py`); one module per family: `raw` (Jolpica), `fastf1`, `features`, `ml`, `ops`.
"""

from __future__ import annotations

from f1_assets.tables import fastf1, features, ml, ops, raw
from f1_assets.tables.contract import Column, ConformError, Table

TABLES: dict[str, Table] = {t.name: t for family in (raw, fastf1, features, ml, ops) for t in family.TABLES}


def table(name: str) -> Table:
    """The declaration of table `name`; KeyError naming the known tables."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no table {name!r} is declared; known tables: {sorted(TABLES)}") from None


__all__ = ["TABLES", "Column", "ConformError", "Table", "table"]
