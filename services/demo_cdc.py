"""`govbus demo` through the provider database: the demo's changes written as SQL into the
source tables, carried onto the bus by the Debezium adapters (``deploy/adapters/``).

The run's own changes are told from anything else on the change topics (a first snapshot of
older rows, a backlog) by their transaction ids: each change is one transaction whose id is
read back when it is written, and Debezium's records carry it (``source.txId``). The flow has
drained when every bridge has committed past the record of its table's last change and the
router and sink have no lag.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from services.bus import start_adapters
from services.common.catalog_feed import CatalogRecord
from services.common.kafka_clients import make_consumer
from services.common.lag import committed_offsets, wait_caught_up
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.demo_rows import ResourceRows, compare_tables
from services.ingest.adapters.debezium import DebeziumAdapter, change_topic, slot_name
from services.ingest.demo_data import DemoFeed
from services.ingest.publisher import STAGE, Change
from services.ingest.sql_feed import pg_url, write_change
from services.launcher import ProcessGroup

Position = tuple[str, int, int]  # topic, partition, offset
TX_OF_POSITION = re.compile(r":tx:(\d+)$")  # debezium_mapping.source_position, streamed


@dataclass
class SqlRun:
    """What the demo wrote: per resource the transaction ids of its changes, in order."""

    events: int
    txids: dict[str, list[int]] = field(default_factory=dict)
    unapplied: int = 0  # statements that changed no row: no change for Debezium to carry


def demo_adapters(settings: Settings) -> dict[str, DebeziumAdapter]:
    """The ``debezium`` adapter files, by name."""
    from services.ingest.adapters.command import configured_adapters

    found = configured_adapters(settings).items()
    return {n: a for n, a in sorted(found) if isinstance(a, DebeziumAdapter)}


def wait_streaming(
    adapters: dict[str, DebeziumAdapter], timeout_s: float, on_tick: Callable[[], None]
) -> None:
    """Until each adapter's replication slot is in use: its connector took its snapshot and
    streams, so every change written from now on comes as a change of its own."""
    deadline = time.monotonic() + timeout_s
    waiting = dict(adapters)
    while waiting:
        on_tick()
        for name, adapter in list(waiting.items()):
            with psycopg.connect(**adapter.connection.libpq()) as conn:
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                    (slot_name(name),),
                ).fetchone()
            if row is not None and row[0]:
                del waiting[name]
        if waiting and time.monotonic() >= deadline:
            raise TimeoutError(f"connectors not streaming after {timeout_s}s: {sorted(waiting)}")
        if waiting:
            time.sleep(0.5)


def write_demo_changes(
    provider_url: str, records: dict[str, CatalogRecord], events: int, seed: int
) -> SqlRun:
    run = SqlRun(events)
    with psycopg.connect(pg_url(provider_url), autocommit=True) as conn:
        for change in DemoFeed(seed=seed, invalid_rate=0.01).changes(events):
            txid = write_change(conn, records, change)
            if txid is None:
                run.unapplied += 1
            else:
                run.txids.setdefault(change.resource, []).append(txid)
    return run


def change_topics(adapters: dict[str, DebeziumAdapter]) -> dict[str, str]:
    """Debezium's change topic of each adapter's table, by the resource it feeds."""
    return {a.resource: change_topic(n, a) for n, a in adapters.items()}


def drain(
    settings: Settings,
    adapters: dict[str, DebeziumAdapter],
    run: SqlRun,
    start: dict,
    timeout_s: float,
    on_tick: Callable[[], None],
) -> set[Position]:
    """Wait until the run's changes are through the bridges, the router and the sink; returns
    where the run's changes are on the change topics."""
    deadline = time.monotonic() + timeout_s
    topics = change_topics(adapters)
    wanted = {r: set(ids) for r, ids in run.txids.items()}
    last = {topics[r]: ids[-1] for r, ids in run.txids.items() if r in topics}
    found: set[Position] = set()
    at: dict[str, Position] = {}  # change topic -> the position of its table's last change
    # One reader from the run's start until Debezium has emitted every table's last change.
    reader = make_consumer(settings, f"govbus-demo-{uuid.uuid4().hex}")
    reader.assign([TopicPartition(t, p, o) for (t, p), o in start.items() if t in last])
    try:
        while len(at) < len(last):
            on_tick()
            for msg in reader.consume(500, 0.5):
                if msg.error() or not msg.value():
                    continue
                txid = json.loads(msg.value()).get("source", {}).get("txId")
                resource = next(r for r, t in topics.items() if t == msg.topic())
                if txid in wanted.get(resource, ()):
                    found.add((msg.topic(), msg.partition(), msg.offset()))
                if txid == last[msg.topic()]:
                    at[msg.topic()] = (msg.topic(), msg.partition(), msg.offset())
            _check(deadline, timeout_s, f"changes not on the change topics: {set(last) - set(at)}")
    finally:
        reader.close()
    admin = AdminClient(settings.kafka_config())
    groups = {change_topic(n, a): f"govbus-adapter-{n}" for n, a in adapters.items()}
    while not all(_bridged(admin, groups[t], pos) for t, pos in at.items()):
        on_tick()
        _check(deadline, timeout_s, "bridges behind their change topics")
        time.sleep(0.3)
    wait_caught_up(
        settings,
        (settings.router_group, settings.sink_group),
        max(1.0, deadline - time.monotonic()),
        on_tick,
    )
    return found


def _bridged(admin: AdminClient, group: str, position: Position) -> bool:
    topic, partition, offset = position
    committed = committed_offsets(admin, group, [TopicPartition(topic, partition)], 10.0)
    return committed.get((topic, partition), -1) > offset


def _check(deadline: float, timeout_s: float, what: str) -> None:
    if time.monotonic() >= deadline:
        raise TimeoutError(f"not drained after {timeout_s}s: {what}")


def run_events(
    settings: Settings,
    codec: AvroCodec,
    records: dict[str, CatalogRecord],
    run: SqlRun,
    start: dict,
    end: dict,
) -> dict[str, list[tuple[str, Change]]]:
    """The run's changes as the bridges published them: (event id, change) per resource."""
    by_topic = {records[r].resource.topic: r for r in run.txids}
    wanted = {r: set(ids) for r, ids in run.txids.items()}
    out: dict[str, list[tuple[str, Change]]] = {}
    ranges = {tp: o for tp, o in end.items() if tp[0] in by_topic}
    for msg in read_range(settings, start, ranges):
        if msg.key() == b"demo-bad":  # the malformed records the demo adds for the router
            continue
        value = codec.decode(msg.value())
        resource, source = by_topic[msg.topic()], value["source"]
        tx = TX_OF_POSITION.search(source["position"] or "")
        if tx is None or int(tx.group(1)) not in wanted[resource]:
            continue
        change = Change(
            resource, value["op"], value["before"], value["after"], source["position"], ""
        )
        out.setdefault(resource, []).append((value["event_id"], change))
    return out


def is_other_letter(headers: dict[str, str], run_positions: set[Position]) -> bool:
    """An ingest dead letter of a record on a change topic that is not the run's."""
    if headers.get("govbus.stage") != STAGE:
        return False
    try:
        position = (
            headers["govbus.source.topic"],
            int(headers["govbus.source.partition"]),
            int(headers["govbus.source.offset"]),
        )
    except (KeyError, ValueError):
        return False
    return position not in run_positions


class DemoThroughCdc:
    """The demo's CDC side in ``govbus demo``: started before the run's offsets are read."""

    def __init__(
        self, settings: Settings, group: ProcessGroup, catalog: dict[str, CatalogRecord]
    ) -> None:
        self.settings, self.group, self.catalog = settings, group, catalog
        self.adapters = demo_adapters(settings)
        start_adapters(settings, group, kinds=("debezium",))
        wait_streaming(self.adapters, 300, group.check_alive)
        self.sources = [r.resource.topic for r in catalog.values()]
        self.sources += list(change_topics(self.adapters).values())
        self.start = end_offsets(settings, self.sources)
        self.run = SqlRun(0)
        self.positions: set[Position] = set()

    def write_and_drain(self, events: int, seed: int, timeout_s: float) -> None:
        self.run = write_demo_changes(self.settings.provider_db_url, self.catalog, events, seed)
        self.positions = drain(
            self.settings, self.adapters, self.run, self.start, timeout_s, self.group.check_alive
        )

    def published(self, codec: AvroCodec) -> dict[str, list[tuple[str, Change]]]:
        end = end_offsets(self.settings, self.sources)
        return run_events(self.settings, codec, self.catalog, self.run, self.start, end)

    def compare(self) -> dict[str, ResourceRows]:
        """Each adapter's source table against the central store, row by row."""
        tables = {a.table: self.catalog[a.resource] for a in self.adapters.values()}
        return compare_tables(
            self.settings.provider_db_url, self.settings.central_store_url, tables
        )
