"""Many rows per statement, the fast way each database offers.

PostgreSQL: COPY the rows into a temporary staging table, then one ``INSERT ... SELECT ...
ON CONFLICT`` merges them into the target. SQLite: one ``INSERT ... VALUES (...), (...) ON
CONFLICT`` per chunk. Both build their SQL text directly: SQLAlchemy's compiler spends far
longer on a thousand-row VALUES clause than the database spends running it.

Rows are tuples in the order of ``columns``; JSON columns take already serialised text.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, Table, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

# Bound parameters per statement: SQLite allows 32766.
MAX_PARAMS = 30_000
STAGES = "govbus_stages"  # staging tables made on a connection, in its info


def forget_stages_on_rollback(engine: Engine) -> None:
    """A rollback undoes the staging tables its transaction made: forget them too."""

    def forget(conn: Connection) -> None:
        conn.connection.info.pop(STAGES, None)

    event.listen(engine, "rollback", forget)


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    conflict: Sequence[str],
    forward_only_by: str | None = None,
) -> int:
    """Insert ``rows``; on a ``conflict`` key, do nothing, or with ``forward_only_by`` update
    the row when that column of the new row is greater. Returns the rows inserted or updated."""
    if not rows:
        return 0
    quote = conn.dialect.identifier_preparer.quote
    target, cols = quote(table.name), ", ".join(quote(c) for c in columns)
    on_conflict = f"ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING"
    if forward_only_by is not None:
        sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns)
        version = quote(forward_only_by)
        on_conflict = (
            f"ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO UPDATE SET {sets} "
            f"WHERE {target}.{version} < excluded.{version}"
        )
    if conn.dialect.name != "postgresql":
        return _values(conn, target, cols, len(columns), rows, on_conflict)
    if forward_only_by is None:
        # New rows are the rule here (history: a replay is rare), so COPY straight into the
        # target; a conflict undoes just that COPY, and the rows go the merging way.
        savepoint = conn.begin_nested()
        try:
            _copy(conn, target, cols, rows)
            savepoint.commit()
            return len(rows)
        except IntegrityError:
            savepoint.rollback()
    return _copy_merge(conn, target, cols, rows, on_conflict)


def _copy(conn: Connection, table: str, cols: str, rows) -> None:
    import psycopg  # only where PostgreSQL runs

    copy_sql = f"COPY {table} ({cols}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()  # psycopg, inside our transaction
    try:
        with cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        # As SQLAlchemy raises it (IntegrityError, DataError ...): one kind for callers.
        raise DBAPIError.instance(copy_sql, None, exc, psycopg.Error) from exc
    finally:
        cursor.close()


def _copy_merge(conn: Connection, target: str, cols: str, rows, on_conflict: str) -> int:
    # A staging table per target and column list, made once per connection: same column
    # types as the target, no indexes or constraints, emptied at each commit. A new column
    # list (the target was altered) makes a new one.
    stage = f"govbus_stage_{zlib.crc32(f'{target} {cols}'.encode()):08x}"
    made = conn.connection.info.setdefault(STAGES, set())
    if stage not in made:
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM {target} WITH NO DATA"
        )
        made.add(stage)
    _copy(conn, stage, cols, rows)
    merge = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} {on_conflict}"
    return conn.exec_driver_sql(merge).rowcount


def _values(conn: Connection, target: str, cols: str, width: int, rows, on_conflict: str) -> int:
    per_statement = max(1, MAX_PARAMS // width)
    one = "(" + ", ".join("?" * width) + ")"
    written = 0
    for i in range(0, len(rows), per_statement):
        chunk = rows[i : i + per_statement]
        sql = f"INSERT INTO {target} ({cols}) VALUES {', '.join([one] * len(chunk))} {on_conflict}"
        params = tuple(value for row in chunk for value in row)
        written += conn.exec_driver_sql(sql, params).rowcount
    return written
