"""A provider's source table for a catalog resource, and its changes written as SQL.

The demo providers' databases and the CDC tests use these: the table has one column per
resource field (``columns`` maps a field to its source column name where they differ), the
resource's key as primary key, and REPLICA IDENTITY FULL so a delete carries its full row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SQL_TYPES = {"string": "text", "double": "double precision", "long": "bigint", "int": "integer"}
SQL_TYPES["boolean"] = "boolean"


def _sql_type(avro_type: Any) -> str:
    if isinstance(avro_type, list):  # ["null", X]: nullable X
        (inner,) = [t for t in avro_type if t != "null"]
        return SQL_TYPES[inner]
    return SQL_TYPES[avro_type] + " NOT NULL"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(table: str) -> str:
    return ".".join(_q(part) for part in table.split("."))


def table_ddl(
    table: str,
    value_schema: Mapping[str, Any],
    key_fields: list[str] | tuple[str, ...],
    columns: Mapping[str, str] = {},  # noqa: B006 - read only
) -> list[str]:
    """CREATE SCHEMA/TABLE statements of the source table of a resource."""
    col = lambda f: _q(columns.get(f, f))  # noqa: E731
    defs = [f"{col(f['name'])} {_sql_type(f['type'])}" for f in value_schema["fields"]]
    defs.append(f"PRIMARY KEY ({', '.join(col(k) for k in key_fields)})")
    schema = table.split(".")[0]
    return [
        f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}",
        f"CREATE TABLE IF NOT EXISTS {qualified(table)} ({', '.join(defs)})",
        f"ALTER TABLE {qualified(table)} REPLICA IDENTITY FULL",
    ]


def change_sql(
    table: str,
    op: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    key_fields: list[str] | tuple[str, ...],
    columns: Mapping[str, str] = {},  # noqa: B006 - read only
) -> tuple[str, dict[str, Any]]:
    """One change as a parameterised statement (psycopg ``%(name)s`` style)."""
    col = lambda f: _q(columns.get(f, f))  # noqa: E731
    row = after if after is not None else before
    assert row is not None
    params = {f"p{i}": v for i, v in enumerate(row.values())}
    names = {f: f"%(p{i})s" for i, f in enumerate(row)}
    where = " AND ".join(f"{col(k)} = {names[k]}" for k in key_fields)
    if op == "d":
        return f"DELETE FROM {qualified(table)} WHERE {where}", params
    if op == "u":
        sets = ", ".join(f"{col(f)} = {p}" for f, p in names.items() if f not in key_fields)
        return f"UPDATE {qualified(table)} SET {sets} WHERE {where}", params
    cols = ", ".join(col(f) for f in names)
    # A create of a key the table already has (a demo restarted on old tables) updates it.
    sets = ", ".join(f"{col(f)} = EXCLUDED.{col(f)}" for f in names if f not in key_fields)
    keys = ", ".join(col(k) for k in key_fields)
    values = ", ".join(names.values())
    return (
        f"INSERT INTO {qualified(table)} ({cols}) VALUES ({values}) "
        f"ON CONFLICT ({keys}) DO UPDATE SET {sets}",
        params,
    )
