"""Polling adapter: a department's table read incrementally over any SQLAlchemy URL.

Each poll reads the rows whose monotonic ``cursor`` column (an ``updated_at`` or a version) is
at or above the last one published minus ``overlap``, in (cursor, key) order, page by page. A
row whose key was already published at the same cursor value is skipped, so the overlap,
which catches rows committed late with an older cursor, publishes nothing twice. Deletes come
from a soft-delete column, or from a periodic diff of the table's key set against the keys
published. The position (the highest cursor published, and per key the version and row last
published) is committed to the adapter's state file only after Kafka acknowledged the page.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, MetaData, Table, select, tuple_
from sqlalchemy.exc import SQLAlchemyError

from services.common.settings import ConfigError
from services.common.sql import build_engine
from services.ingest.adapters.config import AdapterBase, register_kind
from services.ingest.adapters.output import NotAcknowledged
from services.ingest.adapters.process import AdapterProcess
from services.ingest.adapters.rows import RowMapper, epoch_ms
from services.ingest.adapters.state import Known, StateUpdate, key_json
from services.ingest.publisher import Change
from services.ingest.validation import Problem

log = logging.getLogger("govbus.adapter.polling")
WATERMARK = "watermark"
LAST_KEY_DIFF = "last_key_diff"


class SoftDelete(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    value: Any = True  # the column's value on a deleted row


class PollingAdapter(AdapterBase):
    kind: Literal["polling"]
    # SQLAlchemy URL; ${VARIABLE}s are taken from the environment, so no password is in the file.
    url: str
    table: str  # "name" or "schema.name"
    cursor: str  # monotonic column: an update time or a version number
    overlap: float = Field(0, ge=0)  # seconds for a time cursor, units for a number
    columns: dict[str, str] = {}  # source column -> resource field
    soft_delete: SoftDelete | None = None
    key_diff_every_s: float = Field(0, ge=0)  # 0: no key-set diff
    interval_s: float = Field(5.0, gt=0)
    batch: int = Field(1000, ge=1, le=50_000)
    system: str | None = None


register_kind("polling", PollingAdapter)


def encode_cursor(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return json.dumps({"t": "datetime", "v": value.isoformat()})
    return json.dumps({"t": "number", "v": value})


def decode_cursor(text: str) -> Any:
    data = json.loads(text)
    return dt.datetime.fromisoformat(data["v"]) if data["t"] == "datetime" else data["v"]


def cursor_floor(watermark: Any, overlap: float) -> Any:
    """The lowest cursor the next poll reads: the watermark less the overlap window."""
    if watermark is None:
        return None
    if isinstance(watermark, dt.datetime):
        return watermark - dt.timedelta(seconds=overlap)
    return watermark - (int(overlap) if isinstance(watermark, int) else overlap)


@dataclass(frozen=True)
class Polled:
    """One source row, mapped to the resource."""

    record: dict[str, Any]
    cursor: Any
    deleted: bool


@dataclass
class Plan:
    changes: list[Change]
    rejects: list[tuple[Change, Problem]]
    update: StateUpdate
    keys: dict[str, str]  # position of a change -> the key whose state it moves


def plan_page(
    polled: Sequence[Polled],
    known: Mapping[str, Known],
    mapper: RowMapper,
    resource: str,
    system: str,
    table: str,
) -> Plan:
    """What a page of rows publishes, given what was published per key. Pure."""
    plan = Plan([], [], StateUpdate(), {})
    for row in polled:
        version = encode_cursor(row.cursor)
        ts = epoch_ms(row.cursor) if isinstance(row.cursor, dt.datetime) else None
        missing = mapper.missing_keys(row.record)
        if missing:
            change = Change(resource, "u", None, row.record, f"{table}:{version}:?", system, ts)
            plan.rejects.append((change, Problem("missing_key", f"key fields {missing} empty")))
            continue
        key = key_json(mapper.key(row.record))
        position = f"{table}:{version}:{key}"
        prev = known.get(key)
        if prev is not None and prev.version == version:
            continue  # read again in the overlap window: published already
        before = prev.row if prev is not None else None
        plan.keys[position] = key
        if row.deleted:
            if before is not None:
                plan.changes.append(Change(resource, "d", before, None, position, system, ts))
            plan.update.drop.add(key)
            continue
        op = "u" if before is not None else "c"
        plan.changes.append(Change(resource, op, before, row.record, position, system, ts))
        plan.update.put[key] = Known(version, row.record)
    return plan


def plan_key_diff(
    present: set[str], known: Mapping[str, Known], resource: str, system: str, table: str
) -> Plan:
    """Deletes for keys published once and no longer in the table. Pure."""
    plan = Plan([], [], StateUpdate(), {})
    for key, prev in known.items():
        if key in present:
            continue
        plan.update.drop.add(key)
        if prev.row is not None:
            position = f"{table}:absent:{prev.version}:{key}"
            plan.changes.append(Change(resource, "d", prev.row, None, position, system))
    return plan


def after_rejects(plan: Plan, rejected: set[str], known: Mapping[str, Known]) -> StateUpdate:
    """The state to commit once the page is acknowledged: a rejected row's version is kept, so
    the next poll does not dead-letter it again, with the row last published as its image."""
    update = plan.update
    for position in rejected:
        key = plan.keys.get(position)
        if key in update.put:
            prev = known.get(key)
            update.put[key] = Known(update.put[key].version, prev.row if prev else None)
    return update


class TablePoller:
    """Reads the source table; the adapter's only I/O with the department's database."""

    def __init__(self, cfg: PollingAdapter, engine: Engine) -> None:
        schema, _, name = cfg.table.rpartition(".")
        self.table = Table(name, MetaData(), schema=schema or None, autoload_with=engine)
        self._engine = engine
        self._cfg = cfg
        missing = [c for c in [cfg.cursor, *cfg.columns] if c not in self.table.c]
        if cfg.soft_delete is not None and cfg.soft_delete.column not in self.table.c:
            missing.append(cfg.soft_delete.column)
        if missing:
            raise ConfigError(f"table {cfg.table} has no column(s) {missing}")

    def page(self, mapper: RowMapper, low: Any, after: tuple | None) -> list[tuple[Any, Polled]]:
        """The next page in (cursor, key) order: each row's sort key and the row mapped."""
        cursor = self.table.c[self._cfg.cursor]
        keys = [self.table.c[mapper.source_column(k)] for k in mapper.key_fields]
        query = select(self.table).order_by(cursor, *keys).limit(self._cfg.batch)
        if low is not None:
            query = query.where(cursor >= low)
        if after is not None:
            query = query.where(tuple_(cursor, *keys) > tuple_(*after))
        soft = self._cfg.soft_delete
        out = []
        with self._engine.connect() as conn:
            for row in conn.execute(query).mappings():
                sort_key = (row[cursor.name], *(row[k.name] for k in keys))
                deleted = soft is not None and row[soft.column] == soft.value
                out.append((sort_key, Polled(mapper.record(row), row[cursor.name], deleted)))
        return out

    def key_set(self, mapper: RowMapper) -> set[str]:
        columns = [self.table.c[mapper.source_column(k)] for k in mapper.key_fields]
        with self._engine.connect() as conn:
            return {
                key_json(mapper.key(mapper.record(dict(r))))
                for r in conn.execute(select(*columns)).mappings()
            }


class PollingRun:
    def __init__(self, cfg: PollingAdapter, proc: AdapterProcess) -> None:
        self.cfg = cfg
        self.proc = proc
        self.system = cfg.system or proc.name
        url = os.path.expandvars(cfg.url)
        if "$" in url:
            raise ConfigError(f"{proc.name}.yaml: url names an environment variable not set")
        self.poller = TablePoller(cfg, build_engine(url))

    def mapper(self) -> RowMapper:
        record = self.proc.output.publisher.record(self.cfg.resource)
        if record is None:
            raise LookupError(f"resource {self.cfg.resource} is not in the catalog")
        return RowMapper.build(record, self.cfg.columns)

    def poll_once(self) -> int:
        """One pass to the end of the table; returns the changes published."""
        mapper, state = self.mapper(), self.proc.state
        stored = state.meta(WATERMARK)
        watermark = decode_cursor(stored) if stored else None
        low, after, published = cursor_floor(watermark, self.cfg.overlap), None, 0
        while not self.proc.stopping.is_set():
            page = self.poller.page(mapper, low, after)
            if not page:
                break
            polled = [p for _, p in page]
            known = state.known(key_json(mapper.key(p.record)) for p in polled)
            plan = plan_page(polled, known, mapper, self.cfg.resource, self.system, self.cfg.table)
            after = page[-1][0]
            if watermark is None or after[0] > watermark:
                watermark = after[0]
                plan.update.meta[WATERMARK] = encode_cursor(watermark)
            published += self._commit(plan, known)
            if len(page) < self.cfg.batch:
                break
        if self._key_diff_due():
            known = dict(state.all_known())
            plan = plan_key_diff(
                self.poller.key_set(mapper), known, self.cfg.resource, self.system, self.cfg.table
            )
            plan.update.meta[LAST_KEY_DIFF] = str(time.time())
            published += self._commit(plan, known)
        self.proc.output.succeeded()
        return published

    def _commit(self, plan: Plan, known: Mapping[str, Known]) -> int:
        result = self.proc.output.send(plan.changes, plan.rejects)
        rejected = {r.position for r in result.rejected}
        self.proc.state.commit(after_rejects(plan, rejected, known))
        return len(result.event_ids)

    def _key_diff_due(self) -> bool:
        if not self.cfg.key_diff_every_s:
            return False
        last = self.proc.state.meta(LAST_KEY_DIFF)
        return last is None or time.time() - float(last) >= self.cfg.key_diff_every_s


def run_polling(cfg: PollingAdapter, proc: AdapterProcess) -> None:
    """Poll until stopped. A source or Kafka away is retried at the next interval (the lag
    metric grows and the stalled-adapter alert fires); nothing is skipped meanwhile."""
    run: PollingRun | None = None
    last_poll = [time.time()]
    proc.metrics.lag.labels(proc.name).set_function(lambda: time.time() - last_poll[0])
    while not proc.stopping.is_set():
        try:
            run = run or PollingRun(cfg, proc)
            n = run.poll_once()
            last_poll[0] = time.time()
            if n:
                log.info("published %d changes", n)
        except (SQLAlchemyError, NotAcknowledged, LookupError) as exc:
            log.warning("poll failed, retrying in %.1f s: %s", cfg.interval_s, exc)
        proc.stopping.wait(cfg.interval_s)
