"""Widen a CDC adapter's resource for columns added to its source table, through the control
plane: the one path every catalog change takes (compatibility with the registry, the outbox to
``govbus.catalog``), as the provider user whose token the adapter file names."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import psycopg

from services.common.catalog_feed import CatalogRecord
from services.common.settings import Settings
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.adapters.debezium_mapping import Incompatible, NewColumns
from services.ingest.adapters.debezium_schema_change import (
    NEW_FIELD_SENSITIVITY,
    SourceColumn,
    Widening,
    widen,
)
from services.ingest.adapters.output import AdapterMetrics

log = logging.getLogger("govbus.adapter")
COLUMNS = """
SELECT column_name, data_type, datetime_precision FROM information_schema.columns
WHERE table_schema = %s AND table_name = %s AND column_name = ANY(%s)
"""
RETRY_S = 10.0  # after the control plane or the database could not be reached


@dataclass(frozen=True)
class Registered:
    """The control plane took the wider resource as ``schema_version``."""

    schema_version: int


@dataclass(frozen=True)
class Unreachable:
    """The control plane or the database could not answer now: try again in a while."""

    detail: str


class ColumnWidener:
    def __init__(
        self, name: str, adapter: DebeziumAdapter, settings: Settings, metrics: AdapterMetrics
    ) -> None:
        self._name, self._adapter, self._metrics = name, adapter, metrics
        self._api = settings.api_url.rstrip("/")
        self._token = adapter.catalog_token() or (
            settings.token.get_secret_value() if settings.token else None
        )

    def widen(
        self, added: NewColumns, record: CatalogRecord
    ) -> Registered | Incompatible | Unreachable:
        named = ",".join(added.columns)
        if not self._token:
            detail = "new; no control-plane token to add it with (catalog_token_env, GOVBUS_TOKEN)"
            return Incompatible(added.table, named, detail)
        try:
            columns = self._source_columns(added)
        except psycopg.Error as exc:
            return Unreachable(f"cannot read the columns' types: {exc}")
        if gone := [c for c in added.columns if c not in {s.name for s in columns}]:
            detail = "in the change, no longer in the table: its type is unknown; add it by hand"
            return Incompatible(added.table, ",".join(gone), detail)
        outcome = widen(record.resource, record.value_schema, self._adapter, columns)
        if isinstance(outcome, Incompatible):
            return outcome
        answer = self._put(outcome)
        if isinstance(answer, Registered):
            self._metrics.columns_added.labels(self._name).inc(len(outcome.added))
            log.info(
                "table %s: new columns %s; resource %s registered as schema version %d (fields"
                " optional, %s until reviewed); holding the change until the catalog follows",
                added.table,
                outcome.describe(),
                record.resource_id,
                answer.schema_version,
                NEW_FIELD_SENSITIVITY,
            )
        return Incompatible(added.table, named, answer) if isinstance(answer, str) else answer

    def _source_columns(self, added: NewColumns) -> list[SourceColumn]:
        schema, table = self._adapter.table.split(".")
        with psycopg.connect(**self._adapter.connection.libpq()) as conn:
            rows = conn.execute(COLUMNS, (schema, table, list(added.columns))).fetchall()
        by_name = {r[0]: SourceColumn(r[0], r[1], r[2]) for r in rows}
        return [by_name[c] for c in added.columns if c in by_name]

    def _put(self, widening: Widening) -> Registered | Unreachable | str:
        """The control plane's answer: registered, unreachable, or why it refused."""
        entry = widening.entry
        body = {"entry": entry.model_dump(mode="json"), "value_schema": widening.value_schema}
        try:
            r = httpx.put(
                f"{self._api}/resources/{entry.resource_id}",
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            return Unreachable(f"cannot reach the control plane at {self._api}: {exc}")
        if r.status_code >= 500:
            return Unreachable(f"the control plane answered {r.status_code}")
        if r.status_code >= 400:
            try:
                detail = str(r.json().get("detail", r.text))
            except ValueError:
                detail = r.text
            return f"the control plane refused the new field: {r.status_code}: {detail}"[:1000]
        return Registered(int(r.json()["schema_version"]))
