"""Bring a resource's store tables up to its current schema while the sink runs.

Every schema change the registry accepts maps to an additive change of the tables: a new field
adds a nullable column, int widened to long (or to a floating type) widens the column, a field
made optional drops NOT NULL. A removed field keeps its column, and new rows leave it NULL.
Nothing is ever dropped, so a store can always be read with an older layout too.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, Engine, Table, inspect, text
from sqlalchemy.types import TypeEngine

from services.common.store_tables import ResourceTables

log = logging.getLogger("govbus.sink")

# How wide a numeric column is: a column only ever becomes wider.
_RANK = {"SMALLINT": 1, "INTEGER": 2, "BIGINT": 3, "REAL": 4, "FLOAT": 5, "DOUBLE PRECISION": 5}


def _rank(sql_type: TypeEngine, engine: Engine) -> int:
    return _RANK.get(sql_type.compile(dialect=engine.dialect).upper(), 0)


def migrate(engine: Engine, tables: ResourceTables) -> list[str]:
    """Create the resource's tables, or alter them to its current schema; the DDL that ran."""
    tables.current.metadata.create_all(engine, tables=[tables.current, tables.history])
    ddl = []
    for table in (tables.current, tables.history):
        ddl.extend(_changes(engine, table))
    if ddl:
        with engine.begin() as conn:
            for statement in ddl:
                conn.execute(text(statement))
        log.info("store tables of %s altered: %s", tables.entry.resource_id, "; ".join(ddl))
    _add_retired(engine, tables.current)
    return ddl


def _add_retired(engine: Engine, table: Table) -> None:
    """Put the columns of removed fields into ``table`` too, so rows written now set them NULL
    (a value from an older version would pass for current)."""
    for found in inspect(engine).get_columns(table.name):
        if found["name"] not in table.columns:
            table.append_column(Column(found["name"], found["type"], nullable=True))


def _changes(engine: Engine, table: Table) -> list[str]:
    existing = {c["name"]: c for c in inspect(engine).get_columns(table.name)}
    quote = engine.dialect.identifier_preparer.quote
    name = quote(table.name)
    postgres = engine.dialect.name == "postgresql"
    out = []
    for column in table.columns:
        col = quote(column.name)
        type_sql = column.type.compile(dialect=engine.dialect)
        found = existing.get(column.name)
        if found is None:
            # Nullable whatever the schema says: the rows already there have no value.
            out.append(f"ALTER TABLE {name} ADD COLUMN {col} {type_sql}")
            continue
        if not postgres:
            continue  # SQLite: a column takes any value its type affinity allows
        if _rank(column.type, engine) > _rank(found["type"], engine) > 0:
            out.append(f"ALTER TABLE {name} ALTER COLUMN {col} TYPE {type_sql}")
        if column.nullable and not found["nullable"]:
            out.append(f"ALTER TABLE {name} ALTER COLUMN {col} DROP NOT NULL")
    return out
