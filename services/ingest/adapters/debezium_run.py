"""Run one ``debezium`` adapter: register its connector, bridge its changes, watch its slot."""

from __future__ import annotations

import logging
import time

import psycopg

from services.common.kafka_clients import (
    DAY_MS,
    TopicSpec,
    ensure_topics,
    make_admin,
    make_consumer,
)
from services.common.settings import Settings
from services.ingest.adapters.connect_rest import ConnectClient, failed_task_trace
from services.ingest.adapters.debezium import (
    DebeziumAdapter,
    change_topic,
    connector_config,
    connector_name,
    slot_name,
)
from services.ingest.adapters.debezium_bridge import DebeziumBridge
from services.ingest.adapters.debezium_widen import ColumnWidener
from services.ingest.adapters.output import AdapterMetrics
from services.ingest.adapters.process import AdapterProcess

log = logging.getLogger("govbus.adapter")
WATCH_EVERY_S = 5.0
SLOT_LAG = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, confirmed_flush_lsn::text
FROM pg_replication_slots WHERE slot_name = %s
"""


class SlotWatch:
    """The replication slot's lag in bytes, and for how long it has not moved while lagging."""

    def __init__(self, adapter: DebeziumAdapter, slot: str) -> None:
        self._adapter, self._slot = adapter, slot
        self._last: tuple[str | None, float] = (None, time.monotonic())

    def read(self) -> tuple[int, float] | None:
        try:
            with psycopg.connect(**self._adapter.connection.libpq()) as conn:
                row = conn.execute(SLOT_LAG, (self._slot,)).fetchone()
        except psycopg.Error as exc:
            log.warning("slot %s: cannot read its lag: %s", self._slot, exc)
            return None
        if row is None:
            return None  # not created yet: the connector creates it at its first start
        lag, confirmed = int(row[0] or 0), row[1]
        now = time.monotonic()
        if confirmed != self._last[0] or lag == 0:
            self._last = (confirmed, now)
        return lag, now - self._last[1]


def _register(settings: Settings, name: str, adapter: DebeziumAdapter, topic: str) -> None:
    # One partition: the table's changes keep the log's order end to end.
    spec = TopicSpec(topic, 1, {"retention.ms": str(7 * DAY_MS)})
    ensure_topics(make_admin(settings), [spec])
    client = ConnectClient(settings.connect_url)
    try:
        client.wait_ready()
        client.put_connector(connector_name(name), connector_config(name, adapter))
    finally:
        client.close()


def run_debezium(adapter: DebeziumAdapter, proc: AdapterProcess) -> None:
    """Register the connector, then bridge its changes until stopped; every few seconds read
    the slot's lag and the connector's state."""
    name, settings = proc.name, proc.settings
    topic = change_topic(name, adapter)
    _register(settings, name, adapter, topic)
    consumer = make_consumer(settings, f"govbus-adapter-{name}")
    widener = ColumnWidener(name, adapter, settings, proc.metrics)
    bridge = DebeziumBridge(adapter, topic, proc.output, consumer, settings.batch_size, widener)
    log.info("%s -> %s", topic, adapter.resource)
    watch, connect = SlotWatch(adapter, slot_name(name)), ConnectClient(settings.connect_url)
    next_watch = 0.0
    try:
        while not proc.stopping.is_set():
            bridge.step()
            halted = bridge.halted is not None and not bridge.halted.held
            proc.metrics.halted.labels(name).set(halted)
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + WATCH_EVERY_S
                _watch(name, watch, connect, proc.metrics)
    finally:
        consumer.close()
        connect.close()


def _watch(name: str, watch: SlotWatch, connect: ConnectClient, metrics: AdapterMetrics) -> None:
    lag = watch.read()
    if lag is not None:
        metrics.slot_lag_bytes.labels(name).set(lag[0])
        metrics.lag.labels(name).set(lag[1])
    try:
        trace = failed_task_trace(connect.status(connector_name(name)))
    except Exception as exc:  # the worker may be restarting: the bridge goes on
        log.warning("connector %s: no status: %s", name, exc)
        return
    if trace:
        log.error("connector %s failed: %s", name, trace.splitlines()[0][:500])


def remove_debezium(name: str, adapter: DebeziumAdapter, settings: Settings) -> None:
    """Delete the connector with its offsets, then drop its replication slot and publication:
    a slot left behind holds WAL for ever."""
    client = ConnectClient(settings.connect_url)
    try:
        client.forget(connector_name(name))
    finally:
        client.close()
    drop_slot(adapter, slot_name(name))


def drop_slot(adapter: DebeziumAdapter, slot: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    with psycopg.connect(**adapter.connection.libpq(), autocommit=True) as conn:
        conn.execute(f'DROP PUBLICATION IF EXISTS "{slot}"')
        while True:  # the slot stays active until the deleted connector's task has stopped
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is None:
                return
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"replication slot {slot} still active after {deadline_s}s")
            time.sleep(0.2)
