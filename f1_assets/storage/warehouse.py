"""The warehouse: logical tables in DuckDB (embedded default) or PostgreSQL (production).

One writer for every table: `replace_partitions` swaps the rows of a batch of partitions (one
race, a season, every race of a history load) in one transaction (a crash leaves the previous
version; a re-run leaves identical rows). The schema comes from the table declarations and the
versioned migrations (`f1_assets.migrations`), brought to head once per process per warehouse
(`ensure_schema`) before the first use. Identifiers are quoted by the driver (`psycopg.sql.Identifier`,
DuckDB's quoting), values are always bound. Called by the warehouse resource and by tests and benchmarks.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from f1_assets import migrations
from f1_assets.migrations import POSTGRES_ONLY_MARKER as POSTGRES_ONLY_MARKER
from f1_assets.migrations import VERSION_TABLE
from f1_assets.settings import ConfigError, redact_url, unencoded_password, writable_dir

if TYPE_CHECKING:
    import sqlalchemy

URL_VARIABLE = "F1_WAREHOUSE_URL"
LOG = logging.getLogger(__name__)
LOCK_WARN_AFTER_SECONDS = 5.0  # a DuckDB file lock held this long is said in the logs, once per open
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_T = TypeVar("_T")
# warehouses found at the schema head by this process: later uses skip even the version query
_AT_HEAD: set[tuple[Any, ...]] = set()


class WarehouseError(RuntimeError):
    pass


class FrameMismatch(WarehouseError):
    """A frame that does not fit its table (columns, rows of another partition, no such table): retrying
    cannot fix it."""


class ShrinkRefused(WarehouseError):
    """A new version of a partition has fewer rows than the stored one; nothing was written."""

    def __init__(self, table: str, partition: Mapping[str, Any], stored: int, new: int):
        self.table, self.partition, self.stored, self.new = table, dict(partition), stored, new
        where = ", ".join(f"{k}={v}" for k, v in partition.items()) or "whole table"
        super().__init__(
            f"{table} ({where}): the new version has {new} rows, fewer than the {stored} stored; "
            "the stored rows are kept and nothing was written (a run tagged f1/allow_shrink=true, or "
            "`f1-assets … --allow-shrink`, accepts it)"
        )


def _refuse_shrink(table: str, partition: Mapping[str, Any], stored: int, new: int, allow_shrink: bool) -> None:
    if not allow_shrink and new < stored:
        raise ShrinkRefused(table, partition, stored, new)


def schema_sql(postgres: bool) -> str:
    """The SQL that makes an empty warehouse at the schema head (`f1_assets.migrations.schema_script`)."""
    return migrations.schema_script("postgres" if postgres else "duckdb")


def _check_ident(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise WarehouseError(f"invalid identifier {name!r}")
    return name


def _py(value: Any) -> Any:
    """A pandas/numpy scalar as the plain Python value a driver binds (NaN/NA/NaT → None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


class Warehouse(ABC):
    kind: str

    def apply_schema(self) -> migrations.Outcome:
        """Bring the schema to head now: create an empty warehouse, adopt a release-0.1 one, apply
        pending migrations; at head, one version query. `ensure_schema` does it once per process."""
        outcome = migrations.upgrade(self)
        _AT_HEAD.add(self._identity())
        return outcome

    def ensure_schema(self) -> None:
        """`apply_schema` unless this process already found this warehouse at head."""
        if self._identity() not in _AT_HEAD:
            self.apply_schema()

    @abstractmethod
    def _identity(self) -> tuple[Any, ...]:
        """What names this database within the process (the process cache's key)."""

    @abstractmethod
    def _fetch_rows(self, sql_text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read query with %s placeholders, on its own connection, without
        `ensure_schema` (what the schema's own checks read)."""

    @abstractmethod
    def _missing_table_error(self) -> type[Exception]:
        """The driver's error for a query naming a table that does not exist."""

    def schema_version(self) -> str | None:
        """The recorded schema version; None when none is recorded (no version table yet)."""
        try:
            rows = self._fetch_rows(f"SELECT version_num FROM {VERSION_TABLE}")
        except self._missing_table_error():
            return None
        return rows[0][0] if rows else None

    @abstractmethod
    def sqlalchemy_connection(self) -> Any:
        """A context manager yielding a SQLAlchemy connection to this warehouse (for the migrations)."""

    def _column_types(self, table: str) -> list[tuple[str, str]]:
        """(name, SQL data type) of the table's columns in table order, as the database reports them."""
        self.ensure_schema()
        rows = self._fetch_rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            [table],
        )
        return [(name, data_type) for name, data_type in rows]

    def columns(self, table: str) -> list[str]:
        """The table's column names in table order."""
        return [name for name, _ in self._column_types(table)]

    @abstractmethod
    def replace_partitions(
        self, table: str, df: pd.DataFrame, partitions: Sequence[Mapping[str, Any]], *, allow_shrink: bool = True
    ) -> int:
        """Replace the rows of `table` in `partitions` (e.g. `[{"season": 2023, "round": 1}]`, every race of
        a batch; `[{}]`: the whole table, for unpartitioned assets) with `df`, in one transaction: all of
        them or none — a crash leaves the previous rows. Every row of `df` belongs to one of the
        partitions; a partition without rows in `df` is emptied. `allow_shrink=False` refuses the whole
        batch when any partition would get fewer rows than it holds (`ShrinkRefused` names the first;
        counted inside the transaction, under the lock)."""

    @abstractmethod
    def query(self, sql_text: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a read query written with %s placeholders; values are bound, never formatted in."""

    @abstractmethod
    def execute(self, sql_text: str, params: Sequence[Any] = ()) -> None:
        """Run one statement with %s placeholders in its own transaction."""

    @abstractmethod
    def execute_all(self, statements: Sequence[Any], lock: str | None = None) -> list[str]:
        """Run statements (text, or `psycopg.sql.Composed` on PostgreSQL) in one transaction: all or
        none. `lock` names an advisory lock held for the transaction (PostgreSQL; DuckDB has one
        writer). Returns each statement's SQL text."""

    def read_partition(self, table: str, partition: Mapping[str, Any]) -> pd.DataFrame:
        return self.read_partitions(table, [partition])

    def read_partitions(self, table: str, partitions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """The rows of many partitions (same columns) in one query, in table-column order."""
        cols = self.columns(table)
        order = ", ".join(self.quote(c) for c in cols)
        where, params = _partitions_where(self, partitions)
        return self.query(f"SELECT * FROM {self.quote(_check_ident(table))} WHERE {where} ORDER BY {order}", params)

    def count(self, table: str, partition: Mapping[str, Any] | None = None) -> int:
        partition = partition or {}
        where = " AND ".join(f"{self.quote(_check_ident(k))} = %s" for k in partition)
        sql_text = f"SELECT COUNT(*) AS n FROM {self.quote(_check_ident(table))}"
        if where:
            sql_text += f" WHERE {where}"
        return int(self.query(sql_text, list(partition.values()))["n"].iloc[0])

    @staticmethod
    def quote(name: str) -> str:
        return '"' + _check_ident(name) + '"'

    def _frame_for(self, table: str, df: pd.DataFrame, partitions: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        cols = self.columns(table)
        if not cols:
            raise FrameMismatch(f"table {table!r} does not exist in the {self.kind} warehouse")
        missing = [c for c in cols if c not in df.columns]
        extra = [c for c in df.columns if c not in cols]
        if missing or extra:
            raise FrameMismatch(
                f"the frame and the {self.kind} table {table!r} have different columns: the frame lacks "
                f"{missing}, the table lacks {extra} (a table changed by hand: `f1-assets migrate` names the drift)"
            )
        keys = _partition_columns(partitions)
        if keys and len(df):
            wanted = pd.MultiIndex.from_tuples([tuple(p[k] for k in keys) for p in partitions], names=keys)
            have = pd.MultiIndex.from_frame(df[keys].astype("int64") if all(df[k].dtype.kind in "iu" for k in keys)
                                            else df[keys])
            stray = have[~have.isin(wanted)].unique()
            if len(stray):
                shown = "; ".join(", ".join(f"{k}={v}" for k, v in zip(keys, t, strict=True)) for t in stray[:5])
                where = dict(partitions[0]) if len(partitions) == 1 else f"batch of {len(partitions)} partitions"
                raise FrameMismatch(f"rows for table {table!r} partition {where} carry rows of other partitions "
                                    f"({shown})")
        return df[cols]

    def _refuse_shrinks(self, table: str, df: pd.DataFrame, partitions: Sequence[Mapping[str, Any]],
                        stored: Sequence[tuple[Any, ...]]) -> None:
        """`ShrinkRefused` for the first partition whose new rows are fewer than its stored `(keys…, n)`."""
        keys = _partition_columns(partitions)
        new = df.groupby(keys).size().to_dict() if keys and len(df) else {}
        for row in stored:
            *values, n = row
            key = tuple(values) if len(values) != 1 else values[0]
            fresh = new.get(key, 0) if keys else len(df)
            _refuse_shrink(table, dict(zip(keys, values, strict=True)), int(n), int(fresh), False)


def _partition_columns(partitions: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns every partition of a batch names (the same for all: a batch is of one table)."""
    if not partitions:
        raise ValueError("no partitions to replace")
    keys = list(partitions[0])
    for partition in partitions:
        if list(partition) != keys:
            raise ValueError(f"partitions of one batch name different columns: {keys} and {list(partition)}")
        for k in keys:
            _check_ident(k)
    return keys


def _partitions_where(wh: Warehouse, partitions: Sequence[Mapping[str, Any]]) -> tuple[str, list[Any]]:
    """The WHERE clause of a batch of partitions, grouped by all but the last column (a batch of races:
    one `(season = %s AND round IN (…))` per season); `TRUE` for the whole table."""
    keys = _partition_columns(partitions)
    if not keys:
        return "TRUE", []
    *outer, last = keys
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for p in partitions:
        groups.setdefault(tuple(p[k] for k in outer), []).append(p[last])
    clauses, params = [], []
    for values, lasts in groups.items():
        terms = [f"{wh.quote(k)} = %s" for k in outer]
        terms.append(f"{wh.quote(last)} = %s" if len(lasts) == 1
                     else f"{wh.quote(last)} IN ({', '.join(['%s'] * len(lasts))})")
        clauses.append("(" + " AND ".join(terms) + ")")
        params += [*values, *lasts]
    return " OR ".join(clauses), params


class DuckDBWarehouse(Warehouse):
    """The embedded default: one DuckDB file under F1_HOME.

    DuckDB lets one process at a time open the file for writing; steps of the multiprocess executor
    take turns by retrying the open while another holds the lock (each operation opens and closes).
    """

    kind = "duckdb"
    LOCK_WAIT_SECONDS = 120.0

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _open(self, open_: Callable[[], _T]) -> _T:
        """`open_()`, retried while another process holds the file's lock (DuckDB's errors come bare or,
        through SQLAlchemy, wrapped: `.orig`)."""
        import duckdb

        start = time.monotonic()
        deadline, warned = start + self.LOCK_WAIT_SECONDS, False
        delay = 0.05
        while True:
            try:
                return open_()
            except Exception as exc:
                cause = getattr(exc, "orig", exc)
                if not isinstance(cause, duckdb.IOException):
                    raise
                problem = str(cause).lower()
                if "permission denied" in problem or "read-only file system" in problem:
                    raise ConfigError(f"{URL_VARIABLE}: cannot open DuckDB warehouse {self.path}: {cause}") from None
                if "lock" not in problem or time.monotonic() > deadline:
                    raise WarehouseError(f"cannot open DuckDB warehouse {self.path}: {cause}") from exc
                if not warned and time.monotonic() - start > LOCK_WARN_AFTER_SECONDS:
                    warned = True  # said once per open, in the run's logs (dagster.yaml managed_python_loggers)
                    LOG.warning(f"DuckDB warehouse {self.path} is locked by another process; waiting up to "
                                f"{self.LOCK_WAIT_SECONDS:.0f} s. DuckDB allows one process per file, a read-only "
                                f"session too: close it (or copy the file to read it). {cause}")
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        import duckdb

        con = self._open(lambda: duckdb.connect(str(self.path)))
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def sqlalchemy_connection(self) -> Iterator[sqlalchemy.Connection]:
        import sqlalchemy as sa

        engine = sa.create_engine(f"duckdb:///{self.path}", poolclass=sa.pool.NullPool)
        try:
            with self._open(engine.connect) as conn:
                yield conn
        finally:
            engine.dispose()

    def _identity(self) -> tuple[Any, ...]:
        try:
            inode = self.path.stat().st_ino  # a file removed and made again is another database
        except FileNotFoundError:
            inode = None
        return ("duckdb", str(self.path.resolve()), inode)

    def _fetch_rows(self, sql_text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as con:
            return con.execute(sql_text.replace("%s", "?"), list(params)).fetchall()

    def _missing_table_error(self) -> type[Exception]:
        import duckdb

        return duckdb.CatalogException

    def replace_partitions(
        self, table: str, df: pd.DataFrame, partitions: Sequence[Mapping[str, Any]], *, allow_shrink: bool = True
    ) -> int:
        self.ensure_schema()
        frame = self._frame_for(table, df, partitions)
        keys = _partition_columns(partitions)
        cols = ", ".join(self.quote(c) for c in frame.columns)
        where, params = _partitions_where(self, partitions)
        where, params = where.replace("%s", "?"), params
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if not allow_shrink:
                    group = ", ".join(self.quote(k) for k in keys)
                    counted = con.execute(f"SELECT {group + ', ' if keys else ''}COUNT(*) FROM {self.quote(table)} "
                                          f"WHERE {where}{' GROUP BY ' + group if keys else ''}", params).fetchall()
                    self._refuse_shrinks(table, frame, partitions, counted)
                con.execute(f"DELETE FROM {self.quote(table)} WHERE {where}", params)
                if len(frame):
                    con.register("_f1_staging", frame)
                    con.execute(f"INSERT INTO {self.quote(table)} ({cols}) SELECT {cols} FROM _f1_staging")
                    con.unregister("_f1_staging")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return len(frame)

    def query(self, sql_text: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        self.ensure_schema()
        with self._connect() as con:
            return con.execute(sql_text.replace("%s", "?"), list(params)).df()

    def execute(self, sql_text: str, params: Sequence[Any] = ()) -> None:
        self.ensure_schema()
        with self._connect() as con:
            con.execute(sql_text.replace("%s", "?"), list(params))

    def execute_all(self, statements: Sequence[Any], lock: str | None = None) -> list[str]:
        self.ensure_schema()
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for statement in statements:
                    con.execute(statement)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return [str(statement) for statement in statements]


_PG_COPY_TYPES = {
    "integer": "int4",
    "bigint": "int8",
    "smallint": "int2",
    "text": "text",
    "character varying": "text",
    "double precision": "float8",
    "real": "float4",
    "boolean": "bool",
    "date": "date",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "jsonb": "jsonb",
    "uuid": "uuid",
}


CONNECT_TIMEOUT_SECONDS = 15
# libpq's words for a login that will fail the same way every time (checked after redaction)
_PERMANENT_CONNECT_FAILURE = re.compile(
    r"password authentication failed|role \".*\" does not exist|database \".*\" does not exist"
    r"|no pg_hba\.conf entry|password is missing|password must be supplied|invalid (?:integer |sslmode )?value"
)


class PostgresWarehouse(Warehouse):
    """PostgreSQL (Cloud SQL in production) through psycopg 3.

    A partition write is: advisory lock on (table, partition) so concurrent writers of one partition
    queue instead of interleaving; DELETE of the partition; binary COPY of the new rows; COMMIT.
    All in one transaction, so a killed writer leaves the previous rows and readers never see a mix.
    """

    kind = "postgres"

    def __init__(self, url: str):
        self.url = url
        self._types: dict[str, list[tuple[str, str]]] = {}
        # libpq waits forever for a host that drops packets; bound it unless the URL or PGCONNECT_TIMEOUT says
        timeout_set = "connect_timeout" in url or os.environ.get("PGCONNECT_TIMEOUT")
        self._connect_defaults = {} if timeout_set else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}

    def connect(self):
        """A new connection. Errors never show the password: a URL that can never connect (malformed,
        unknown role or database, refused login) is a ConfigError naming F1_WAREHOUSE_URL; anything
        else (host down, timeout) a WarehouseError that the step's RetryPolicy may retry."""
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=False, **self._connect_defaults)
        except psycopg.Error as exc:
            message = " ".join(redact_url(self.url, exc).split())  # libpq's lines as one
            where = f"{URL_VARIABLE}={redact_url(self.url)!r}"
            # OperationalError: the server or libpq refused; anything else: libpq could not parse the URL
            if not isinstance(exc, psycopg.OperationalError) or _PERMANENT_CONNECT_FAILURE.search(message):
                raise ConfigError(f"{where}: {message}") from None
            raise WarehouseError(f"cannot connect to the PostgreSQL warehouse {where}: {message}") from None

    @contextmanager
    def sqlalchemy_connection(self) -> Iterator[sqlalchemy.Connection]:
        import sqlalchemy as sa

        # psycopg 3 connections made by `connect` (its timeout, its errors without the password)
        engine = sa.create_engine("postgresql+psycopg://", creator=self.connect, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def _identity(self) -> tuple[Any, ...]:
        return ("postgres", self.url)

    def _fetch_rows(self, sql_text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(sql_text, list(params) or None).fetchall()

    def _missing_table_error(self) -> type[Exception]:
        import psycopg

        return psycopg.errors.UndefinedTable

    def _column_types(self, table: str) -> list[tuple[str, str]]:
        """Read once per table: every partition write needs them for its binary COPY."""
        if table not in self._types:
            self._types[table] = super()._column_types(table)
        return self._types[table]

    def replace_partitions(
        self, table: str, df: pd.DataFrame, partitions: Sequence[Mapping[str, Any]], *, allow_shrink: bool = True
    ) -> int:
        from psycopg import sql

        frame = self._frame_for(table, df, partitions)
        keys = _partition_columns(partitions)
        types = dict(self._column_types(table))
        copy_types = [_PG_COPY_TYPES.get(types[c], "text") for c in frame.columns]
        ident = sql.Identifier(table)
        where_text, params = _partitions_where(self, partitions)
        where = sql.SQL(where_text.replace("%s", "{}")).format(*[sql.Placeholder()] * len(params)) \
            if params else sql.SQL(where_text)
        with self.connect() as conn:
            with conn.cursor() as cur:
                # one writer of a partition at a time: a batch holds the table's lock; a one-partition
                # write shares it and holds its partition's lock
                if len(partitions) == 1 and keys:
                    cur.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))", [table])
                    only = partitions[0]
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                [f"{table}:" + ",".join(f"{k}={v}" for k, v in sorted(only.items()))])
                else:
                    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [table])
                if not allow_shrink:
                    group = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
                    query = sql.SQL("SELECT {}COUNT(*) FROM {} WHERE {}{}").format(
                        sql.SQL("{}, ").format(group) if keys else sql.SQL(""), ident, where,
                        sql.SQL(" GROUP BY {}").format(group) if keys else sql.SQL(""))
                    cur.execute(query, params)
                    self._refuse_shrinks(table, frame, partitions, cur.fetchall())
                cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(ident, where), params)
                if len(frame):
                    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        ident, sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
                    )
                    with cur.copy(stmt) as copy:
                        copy.set_types(copy_types)
                        for row in _rows(frame):
                            copy.write_row(row)
            conn.commit()
        return len(frame)

    def query(self, sql_text: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        self.ensure_schema()
        with self.connect() as conn:
            cur = conn.execute(sql_text, list(params) or None)
            names = [d.name for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=names)

    def execute(self, sql_text: str, params: Sequence[Any] = ()) -> None:
        self.ensure_schema()
        with self.connect() as conn:
            conn.execute(sql_text, list(params) or None)

    def execute_all(self, statements: Sequence[Any], lock: str | None = None) -> list[str]:
        self.ensure_schema()
        with self.connect() as conn:
            if lock:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [lock])
            texts = [s if isinstance(s, str) else s.as_string(conn) for s in statements]
            for statement in statements:
                conn.execute(statement)
            conn.commit()
        return texts


def _rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """Rows as tuples of plain Python values, converted column by column (not cell by cell).

    Null-free numpy columns go straight through `tolist()` (already Python scalars); text and date
    columns whose values are all plain skip the per-value conversion; the rest map NaN/NA to None.
    """
    columns = []
    for name in frame.columns:
        series = frame[name]
        has_nulls = bool(series.isna().any())
        if series.dtype.kind in "biuf" and not has_nulls:
            columns.append(series.to_numpy().tolist())
        elif series.dtype.kind == "M":  # few per table (updated_at): per value is fine
            columns.append([None if v is pd.NaT else v.to_pydatetime() for v in series])
        elif isinstance(series.dtype, pd.api.extensions.ExtensionDtype) and series.dtype.kind in "biu":
            # nullable Int64/boolean: Python ints/bools and None in one conversion, not value by value
            columns.append(series.to_numpy(dtype=object, na_value=None).tolist())
        elif series.dtype.kind == "O" and pd.api.types.infer_dtype(series, skipna=True) in _PLAIN:
            values = series.tolist()
            columns.append([None if v is None or v != v else v for v in values] if has_nulls else values)
        else:
            columns.append([_py(v) for v in series.astype(object).where(series.notna(), None).tolist()])
    return zip(*columns, strict=True) if columns else iter(())


_PLAIN = {"string", "date", "boolean", "integer", "empty"}


def warehouse_from_url(url: str) -> Warehouse:
    """`duckdb:///path` → DuckDB file; `postgresql://…` (or `postgres://`) → PostgreSQL.

    A URL that can never work (another scheme, no path, an unwritable DuckDB directory, a
    PostgreSQL URL libpq cannot parse) is a ConfigError naming F1_WAREHOUSE_URL, password masked.
    Nothing connects here; connection errors come from the first use (`PostgresWarehouse.connect`)."""
    shown = redact_url(url)
    if url.startswith("duckdb://"):
        path = url[len("duckdb://") :]
        if not path:
            raise ConfigError(f"{URL_VARIABLE}={shown!r} is not a warehouse URL: expected duckdb:///path/to/file.duckdb")
        writable_dir(Path(path).parent, URL_VARIABLE)
        return DuckDBWarehouse(path)
    if url.startswith(("postgresql://", "postgres://")):
        unencoded_password(URL_VARIABLE, url)
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(url)
        except Exception as exc:  # psycopg.ProgrammingError: libpq's parser names what is wrong
            problem = redact_url(url, exc).strip()
            raise ConfigError(f"{URL_VARIABLE}={shown!r} is not a PostgreSQL URL: {problem}") from None
        return PostgresWarehouse(url)
    raise ConfigError(f"{URL_VARIABLE}={shown!r} is not a warehouse URL: expected duckdb:///path or postgresql://…")
