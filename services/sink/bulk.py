"""Many rows per statement, the fast way each database offers.

PostgreSQL: COPY the rows into a temporary staging table, then one ``INSERT ... SELECT ...
ON CONFLICT`` merges them into the target. SQLite: one ``INSERT ... VALUES (...), (...) ON
CONFLICT`` per chunk. Both build their SQL text directly: SQLAlchemy's compiler spends far
longer on a thousand-row VALUES clause than the database spends running it.

Rows are tuples in the order of ``columns``; JSON columns take already serialised text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

# Bound parameters per statement: SQLite allows 32766.
MAX_PARAMS = 30_000


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
    if conn.dialect.name == "postgresql":
        return _copy_merge(conn, target, cols, rows, on_conflict)
    return _values(conn, target, cols, len(columns), rows, on_conflict)


def _copy_merge(conn: Connection, target: str, cols: str, rows, on_conflict: str) -> int:
    import psycopg  # only where PostgreSQL runs

    # Same column types as the target, no indexes or constraints; gone at commit.
    conn.exec_driver_sql("DROP TABLE IF EXISTS govbus_stage")
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE govbus_stage ON COMMIT DROP AS "
        f"SELECT {cols} FROM {target} WITH NO DATA"
    )
    copy_sql = f"COPY govbus_stage ({cols}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()  # psycopg, inside our transaction
    try:
        with cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        # As SQLAlchemy raises it (DataError, OperationalError ...): one kind for callers.
        raise DBAPIError.instance(copy_sql, None, exc, psycopg.Error) from exc
    finally:
        cursor.close()
    merge = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM govbus_stage {on_conflict}"
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
