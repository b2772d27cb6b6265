"""An adapter's own position in its source, kept in a local SQLite file beside the process.

Why a local file and not a compacted topic: an adapter is one process per source, its position
is written only after Kafka acknowledged what it covers, and it includes what the adapter last
published per key (the ``before`` of the next change, and the key set a delete diff needs),
which can be as large as the source table. SQLite commits all of it atomically and updates it
row by row; a compacted topic would have to be read whole at every start. The price: the file
must live on a disk that survives the process (``GOVBUS_DATA_DIR``), and it moves with the
adapter, not with a consumer group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, delete, insert, select

from services.common.sql import build_engine

metadata = MetaData()
meta_table = Table(
    "meta", metadata, Column("name", String(64), primary_key=True), Column("value", Text)
)
rows_table = Table(
    "rows",
    metadata,
    Column("key", Text, primary_key=True),  # JSON of the record key, sorted keys
    Column("version", Text, nullable=False),  # what identifies this version of the row
    Column("row", Text, nullable=False),  # the record as last published (JSON)
)
files_table = Table(
    "files",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("name", Text, nullable=False),
)


@dataclass(frozen=True)
class Known:
    """What the adapter last published for one key."""

    version: str
    row: dict[str, Any] | None  # None: this version was rejected and nothing published yet


@dataclass
class StateUpdate:
    """Everything one acknowledged batch moves forward, committed in one transaction."""

    put: dict[str, Known] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)
    meta: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # sha256 -> file name


def key_json(key: Mapping[str, Any]) -> str:
    return json.dumps(dict(key), sort_keys=True, ensure_ascii=False, default=str)


class AdapterState:
    def __init__(self, path: Path) -> None:
        self._engine = build_engine(f"sqlite:///{path}")
        metadata.create_all(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def meta(self, name: str) -> str | None:
        with self._engine.connect() as conn:
            return conn.scalar(select(meta_table.c.value).where(meta_table.c.name == name))

    def known(self, keys: Iterable[str]) -> dict[str, Known]:
        found: dict[str, Known] = {}
        wanted = list(dict.fromkeys(keys))
        with self._engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                for key, version, row in conn.execute(
                    select(rows_table).where(rows_table.c.key.in_(chunk))
                ):
                    found[key] = Known(version, json.loads(row))
        return found

    def all_known(self) -> Iterator[tuple[str, Known]]:
        with self._engine.connect() as conn:
            for key, version, row in conn.execute(select(rows_table)):
                yield key, Known(version, json.loads(row))

    def file_seen(self, sha256: str) -> str | None:
        """The name the file with this content was processed under, if it was."""
        with self._engine.connect() as conn:
            return conn.scalar(select(files_table.c.name).where(files_table.c.sha256 == sha256))

    def commit(self, update: StateUpdate) -> None:
        with self._engine.begin() as conn:
            touched = set(update.put) | update.drop
            for keys in _chunks(sorted(touched)):
                conn.execute(delete(rows_table).where(rows_table.c.key.in_(keys)))
            if update.put:
                conn.execute(
                    insert(rows_table),
                    [
                        {"key": k, "version": v.version, "row": _dumps(v.row)}
                        for k, v in update.put.items()
                    ],
                )
            for name, value in update.meta.items():
                conn.execute(delete(meta_table).where(meta_table.c.name == name))
                conn.execute(insert(meta_table).values(name=name, value=value))
            for sha, name in update.files.items():
                conn.execute(insert(files_table).values(sha256=sha, name=name))


def _dumps(row: Mapping[str, Any] | None) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
