"""`Column` and `Table`: one declaration of a table, and everything derived from it.

A table is stored in the warehouse (`storage: warehouse`, the default) or as one Parquet object per
partition in the blob store (`storage: parquet`, e.g. `raw_telemetry`). From a `Table` come its pandas
dtypes (what the transforms write), an empty frame, `conform` (a frame cut and cast to the table), its
pandera schema, its Dagster `TableSchema` and, for a warehouse table only, its DDL for DuckDB and
PostgreSQL. The declarations themselves are the family files beside this one (`raw.yaml`, ...), read
by `Table.from_spec`. No storage, no Dagster resources: called by transforms, schemas, the warehouse,
migrations and asset wiring.

pandas dtype rule (a column's `dtype` overrides it):
- integers (int32/int64): "int64" when NOT NULL, "Int64" (nullable extension type) when nullable;
- float64: "float64" (NULL is NaN); bool: "bool" when NOT NULL, "boolean" when nullable;
- text, varchar(N), uuid, json, date: "object" (str / datetime.date values, None for NULL);
- timestamptz: "datetime64[ns, UTC]";
- timestamp (naive, e.g. FastF1's UTC `Date`): "datetime64[ns]"; interval: "timedelta64[ns]". These two
  have no SQL type here: only a Parquet table holds them (a warehouse table declaring one is refused).

`expected` (nullable columns only; read by the quality score, `f1_assets.transforms.quality`): whether a
partition's rows are expected to fill the column (>= 95 % non-NULL). Absent: always. `{since: YYYY}`:
from that season on (upstream publishes it only since then). `{sparse: "why"}`: NULL by nature on many
rows (not classified, lead lap only, ...); reported, never judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # imported where used: the warehouse's writer processes need neither
    import dagster as dg
    import pandera.pandas as pa

ENGINES = ("duckdb", "postgres")
STORAGES = ("warehouse", "parquet")
_VARCHAR = re.compile(r"varchar\((\d+)\)")
# logical type: (SQL type, pandas dtype when NOT NULL, pandas dtype when nullable); varchar(N) is text;
# SQL type None: a type only Parquet tables hold
_TYPES = {
    "int32": ("INTEGER", "int64", "Int64"),
    "int64": ("BIGINT", "int64", "Int64"),
    "float64": ("DOUBLE PRECISION", "float64", "float64"),
    "text": ("TEXT", "object", "object"),
    "bool": ("BOOLEAN", "bool", "boolean"),
    "date": ("DATE", "object", "object"),
    "timestamptz": ("TIMESTAMP WITH TIME ZONE", "datetime64[ns, UTC]", "datetime64[ns, UTC]"),
    "uuid": ("UUID", "object", "object"),
    "json": ("JSON", "object", "object"),
    "timestamp": (None, "datetime64[ns]", "datetime64[ns]"),
    "interval": (None, "timedelta64[ns]", "timedelta64[ns]"),
}


def _check_type(logical: str) -> str:
    if logical not in _TYPES and not _VARCHAR.fullmatch(logical):
        raise ValueError(f"unknown logical type {logical!r}: expected one of {sorted(_TYPES)} or varchar(N)")
    return logical


@dataclass(frozen=True)
class Column:
    """One column: logical type, nullability, meaning and unit.

    `dtype` overrides the pandas dtype the module docstring's rule derives from the type (only where
    a writer produces another one today, e.g. fastf1_laps' 32-bit integers)."""

    name: str
    type: str  # int32 | int64 | float64 | text | bool | date | timestamptz | uuid | json | varchar(N)
    #            | timestamp | interval (Parquet tables only)
    nullable: bool = True
    description: str = ""
    unit: str | None = None  # "ms", "kg", "km/h", "%", "deg", "1/10 m", ...
    default: str | None = None  # SQL default expression, e.g. "FALSE", "CURRENT_TIMESTAMP"
    dtype: str | None = None
    # when a partition is expected to fill the column (module docstring); parsed into an `Expected`
    expected: Expected | dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_type(self.type)
        object.__setattr__(self, "expected", Expected.parse(self.name, self.nullable, self.expected))

    def expected_filled(self, season: int | None) -> bool:
        """Whether a partition of `season` (None: an unpartitioned table) is expected to fill the column."""
        return self.expected.filled(season)

    @property
    def sql_type(self) -> str | None:
        """The SQL type; None for a type only Parquet tables hold (timestamp, interval)."""
        varchar = _VARCHAR.fullmatch(self.type)
        return f"VARCHAR({varchar.group(1)})" if varchar else _TYPES[self.type][0]

    @property
    def pandas_dtype(self) -> str:
        if self.dtype:
            return self.dtype
        _, not_null, nullable = _TYPES.get(self.type, _TYPES["text"])  # varchar(N): as text
        return nullable if self.nullable else not_null

    def described(self) -> str:
        return f"{self.description} [{self.unit}]" if self.unit else self.description


@dataclass(frozen=True)
class Expected:
    """When a column is expected filled: always (the default), from season `since` on, or never (`sparse`,
    with the reason)."""

    since: int | None = None
    sparse: str | None = None

    @classmethod
    def parse(cls, column: str, nullable: bool, spec: Expected | dict[str, Any] | None) -> Expected:
        if isinstance(spec, Expected):
            return spec
        if spec is None:
            return cls()
        if not nullable:
            raise ValueError(f"column {column!r} is NOT NULL: it is always filled, `expected` says nothing")
        if not isinstance(spec, dict) or len(spec) != 1 or not set(spec) <= {"since", "sparse"}:
            raise ValueError(f"column {column!r}: expected must be {{since: YYYY}} or {{sparse: \"why\"}}, "
                             f"not {spec!r}")
        since, sparse = spec.get("since"), spec.get("sparse")
        if "since" in spec and (not isinstance(since, int) or isinstance(since, bool) or not 1950 <= since <= 2100):
            raise ValueError(f"column {column!r}: expected since must be a season (1950..2100), not {since!r}")
        if "sparse" in spec and (not isinstance(sparse, str) or not sparse.strip()):
            raise ValueError(f"column {column!r}: expected sparse needs the reason the column is sparse")
        return cls(since=since, sparse=sparse)

    def filled(self, season: int | None) -> bool:
        if self.sparse is not None:
            return False
        return self.since is None or season is None or season >= self.since


_TABLE_KEYS = {"description", "storage", "primary_key", "partition_by", "indexes", "unique", "columns"}
_COLUMN_KEYS = {"name", "type", "nullable", "description", "unit", "default", "dtype", "expected"}


class ConformError(ValueError):
    """A frame that cannot be made into a table's rows (missing columns, values of another type)."""


@dataclass(frozen=True)
class Table:
    """A table: columns in table order, keys, partitioning, indexes, meaning, and where it is stored.

    `partition_by` names columns of a warehouse table; for a Parquet table it names the keys of the
    object path (Hive-style `season=YYYY/round=RR/`), which are not columns of the frame."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_by: tuple[str, ...]  # ("season", "round") race tables, ("season",) raw_races, () whole table
    description: str
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    storage: str = "warehouse"  # one of STORAGES
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"table {self.name}: unknown storage {self.storage!r}: expected one of {STORAGES}")
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"table {self.name}: a column is declared twice")
        column_lists = [("primary_key", self.primary_key), *(("indexes", i) for i in self.indexes),
                        *(("unique", u) for u in self.unique)]
        if self.storage == "warehouse":
            column_lists.append(("partition_by", self.partition_by))
            parquet_only = [f"{c.name} ({c.type})" for c in self.columns if c.sql_type is None]
            if parquet_only:
                raise ValueError(f"table {self.name}: columns {parquet_only} have a type with no SQL type; "
                                 "only a parquet table can hold them")
        for what, names in column_lists:
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise ValueError(f"table {self.name}: {what} names unknown columns {unknown}")
        nullable_keys = [n for n in self.primary_key if by_name[n].nullable]
        if nullable_keys:
            raise ValueError(f"table {self.name}: primary key columns {nullable_keys} must be NOT NULL")
        object.__setattr__(self, "_by_name", by_name)

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], source: str) -> Table:
        """The table `name` as a family file (`source`) declares it; ValueError naming what is wrong."""
        try:
            unknown = set(spec) - _TABLE_KEYS
            if unknown or "columns" not in spec:
                raise ValueError(f"keys {sorted(unknown)} are unknown" if unknown else "it has no columns")
            columns = []
            for entry in spec["columns"]:
                unknown = set(entry) - _COLUMN_KEYS
                if unknown:
                    raise ValueError(f"column {entry.get('name')!r} has unknown keys {sorted(unknown)}")
                columns.append(Column(**entry))
            return cls(
                name=name,
                columns=tuple(columns),
                primary_key=tuple(spec.get("primary_key", ())),
                partition_by=tuple(spec.get("partition_by", ())),
                description=spec.get("description", ""),
                indexes=tuple(tuple(i) for i in spec.get("indexes", ())),
                unique=tuple(tuple(u) for u in spec.get("unique", ())),
                storage=spec.get("storage", "warehouse"),
            )
        except (TypeError, ValueError) as exc:
            # Table names the table itself: once in the message is enough
            raise ValueError(f"{source}: table {name}: {str(exc).removeprefix(f'table {name}: ')}") from None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        if name not in self._by_name:
            raise KeyError(f"table {self.name} has no column {name!r}; its columns: {self.column_names}")
        return self._by_name[name]

    # ------------------------------------------------------------------ pandas

    def dtypes(self) -> dict[str, str]:
        """Column → pandas dtype, in table order (the rule in the module docstring)."""
        return {c.name: c.pandas_dtype for c in self.columns}

    def empty_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in self.dtypes().items()})

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """`df`'s columns of this table, in table order, cast to `dtypes()`. Other columns are left out.

        Raises ConformError naming the table and the missing columns (and, to spot a misspelling, the
        columns it does not know), or the column whose values do not cast."""
        missing = [c for c in self.column_names if c not in df.columns]
        if missing:
            extra = [c for c in df.columns if c not in self._by_name]
            raise ConformError(f"frame for table {self.name} lacks columns {missing}"
                               + (f" (it has columns the table does not: {extra})" if extra else ""))
        # a new frame of copied columns, blocks as they are: `.copy()` would consolidate them, one more
        # copy of the whole frame at the peak (+137 MiB for a race's telemetry, bench/bench_telemetry.py)
        out = df.loc[:, self.column_names]
        casts = {name: dtype for name, dtype in self.dtypes().items() if str(out[name].dtype) != dtype}
        for name, dtype in casts.items():
            try:
                out[name] = out[name].astype(dtype)
            except (TypeError, ValueError) as exc:
                raise ConformError(f"table {self.name}, column {name}: values of dtype {df[name].dtype} "
                                   f"do not cast to {dtype}: {exc}") from None
        return out

    # ------------------------------------------------------------------ SQL

    def ddl(self, engine: str) -> str:
        """CREATE TABLE IF NOT EXISTS + its indexes, for "duckdb" or "postgres" (the same portable text).

        ValueError for a Parquet table (it is no warehouse table)."""
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: expected one of {ENGINES}")
        if self.storage != "warehouse":
            raise ValueError(f"table {self.name} is stored as {self.storage}, not in the warehouse: it has no DDL")
        width = max(len(c.name) for c in self.columns) + 1
        lines = []
        for c in self.columns:
            line = f"    {c.name.ljust(width)}{c.sql_type}"
            if not c.nullable:
                line += " NOT NULL"
            if c.default is not None:
                line += f" DEFAULT {c.default}"
            lines.append(line)
        if self.primary_key:
            lines.append(f"    PRIMARY KEY ({', '.join(self.primary_key)})")
        lines.extend(f"    UNIQUE ({', '.join(u)})" for u in self.unique)
        statements = [f"CREATE TABLE IF NOT EXISTS {self.name} (\n" + ",\n".join(lines) + "\n);"]
        statements.extend(
            f"CREATE INDEX IF NOT EXISTS {self.name}_{'_'.join(cols)} ON {self.name} ({', '.join(cols)});"
            for cols in self.indexes
        )
        return "\n".join(statements) + "\n"

    # ------------------------------------------------------------------ pandera and Dagster

    def pandera_schema(self, checks: dict[str, list] | None = None, *, dataframe_checks: list | None = None,
                       **kwargs) -> pa.DataFrameSchema:
        """Every column with its dtype and nullability, plus `checks[column]`; the primary key unique.

        `dataframe_checks` are checks on the whole frame; `kwargs` go to `pa.DataFrameSchema`
        (they override the defaults name=<table>, unique=<primary key>, strict=True)."""
        import pandera.pandas as pa

        checks = checks or {}
        unknown = [c for c in checks if c not in self._by_name]
        if unknown:
            raise KeyError(f"checks for unknown columns {unknown} of table {self.name}")
        columns = {
            c.name: pa.Column(_pandera_dtype(c), checks=list(checks.get(c.name, [])), nullable=c.nullable,
                              description=c.described() or None)
            for c in self.columns
        }
        options = {"name": self.name, "unique": list(self.primary_key), "strict": True, **kwargs}
        return pa.DataFrameSchema(columns, checks=list(dataframe_checks or []), **options)

    def table_schema(self) -> dg.TableSchema:
        """The Dagster `TableSchema` the catalog shows: types, descriptions with units, constraints."""
        import dagster as dg

        columns = [
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.described(),
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable,
                    unique=self.primary_key == (c.name,),
                    other=[f"DEFAULT {c.default}"] if c.default is not None else [],
                ),
            )
            for c in self.columns
        ]
        other = [f"PRIMARY KEY ({', '.join(self.primary_key)})"] if self.primary_key else []
        other += [f"UNIQUE ({', '.join(u)})" for u in self.unique]
        if self.storage == "parquet":
            other.append(f"PARTITIONED BY ({', '.join(self.partition_by)}): one Parquet object per partition, "
                         "Hive-style path" if self.partition_by else "ONE PARQUET OBJECT (replaced whole)")
        else:
            other.append(f"PARTITIONED BY ({', '.join(self.partition_by)})" if self.partition_by
                         else "NOT PARTITIONED (replaced whole)")
        return dg.TableSchema(columns=columns, constraints=dg.TableConstraints(other=other))


def _pandera_dtype(column: Column):
    dtype = column.pandas_dtype
    if dtype == "object" and column.type != "date":
        return str  # pandera checks every non-null value is a str
    return dtype
