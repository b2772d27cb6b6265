"""The ``debezium`` adapter kind: one source table, read from the database log by Debezium.

An adapter file names the provider database, the table, its key, column renames and which
columns the resource has; govbus generates the Debezium connector's config from it (pure
functions here) and registers it on the Connect worker (``connect_rest.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from services.common.settings import ConfigError
from services.ingest.adapters.config import AdapterBase, register_kind

IDENT = r"[a-z_][a-z0-9_]*"
POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"


def read_secret(key: str, env: str | None, file: Path | None) -> str | None:
    """A secret from the environment variable ``env`` or the file ``file``; None if neither is
    given. A variable not set, or a file not readable, stops start-up naming ``key``."""
    if env:
        if env not in os.environ:
            raise ConfigError(f"{key}_env: {env} is not set")
        return os.environ[env]
    if file:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}_file: {exc}") from exc
    return None


class Connection(BaseModel):
    """Where the provider database is; the password comes from the environment or a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = 5432
    database: str
    user: str
    password_env: str | None = None
    password_file: Path | None = None

    def password(self) -> str:
        # "": trust authentication (a local throwaway cluster)
        return read_secret("connection.password", self.password_env, self.password_file) or ""

    def libpq(self) -> dict[str, object]:
        """Keyword arguments of ``psycopg.connect`` for this database."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password() or None,
            "connect_timeout": 10,
        }


class DebeziumAdapter(AdapterBase):
    kind: str = "debezium"
    connection: Connection
    table: str  # <schema>.<table>
    key: list[str]  # source key columns (before renames)
    renames: dict[str, str] = {}  # source column -> resource field
    columns: list[str] | None = None  # resource fields taken; None: every field of the resource
    heartbeat_ms: int = 10_000
    # A control-plane API token of a provider user of the resource's department: the adapter
    # registers a column added to the source table with it. Neither set: GOVBUS_TOKEN.
    catalog_token_env: str | None = None
    catalog_token_file: Path | None = None

    @field_validator("table")
    @classmethod
    def _schema_table(cls, value: str) -> str:
        if not re.fullmatch(rf"{IDENT}\.{IDENT}", value):
            raise ValueError(f"expected <schema>.<table> in lower case, got {value!r}")
        return value

    @model_validator(mode="after")
    def _key_given(self) -> DebeziumAdapter:
        if not self.key:
            raise ValueError("key: name at least one source column")
        return self

    def field_of(self, column: str) -> str:
        return self.renames.get(column, column)

    def catalog_token(self) -> str | None:
        return read_secret("catalog_token", self.catalog_token_env, self.catalog_token_file)


register_kind("debezium", DebeziumAdapter)


def slot_name(adapter_name: str) -> str:
    """Replication slot and publication name: PostgreSQL wants [a-z0-9_]."""
    return "govbus_" + re.sub(r"[^a-z0-9_]", "_", adapter_name)


def connector_name(adapter_name: str) -> str:
    return f"govbus-{adapter_name}"


def topic_prefix(adapter_name: str) -> str:
    return f"govbus-cdc.{adapter_name}"


def change_topic(adapter_name: str, adapter: DebeziumAdapter) -> str:
    """Debezium's raw change topic of the table: <prefix>.<schema>.<table>."""
    return f"{topic_prefix(adapter_name)}.{adapter.table}"


def connector_config(adapter_name: str, adapter: DebeziumAdapter) -> dict[str, str]:
    """The Debezium PostgreSQL connector's config for one adapter file."""
    c = adapter.connection
    slot = slot_name(adapter_name)
    return {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": c.host,
        "database.port": str(c.port),
        "database.user": c.user,
        "database.password": c.password(),
        "database.dbname": c.database,
        "topic.prefix": topic_prefix(adapter_name),
        "table.include.list": adapter.table,
        "message.key.columns": f"{adapter.table}:{','.join(adapter.key)}",
        "slot.name": slot,
        "publication.name": slot,
        "publication.autocreate.mode": "filtered",
        # Snapshot, then the log from the snapshot's own position: no gap, no overlap.
        "snapshot.mode": "initial",
        # An idle table must not pin WAL: heartbeats let the slot's position advance.
        "heartbeat.interval.ms": str(adapter.heartbeat_ms),
        "poll.interval.ms": "50",
        "decimal.handling.mode": "double",
        "tombstones.on.delete": "false",
        # Our broker creates no topics by itself; the heartbeat topic is made this way.
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
    }
