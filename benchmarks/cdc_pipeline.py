"""The bus side of the CDC bench: one Debezium adapter feeding one router with one grant.

The bench lane's resource (``bench_bus.Lane``, the demo's resident population) gets a source
table in a fresh provider database, an adapter file for it, and its three topics made before
anything writes to them, each stamped with the broker's append time: Debezium's raw change
topic, ``gov.<provider>.resident_population`` and the consumer's delivery topic. Then the
router and the adapter (``govbus adapter``, which registers the connector and runs the
bridge) start as processes of their own, as in ``make run``.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import psycopg
import yaml
from bench_bus import BenchBus, Lane, output_topic_spec
from cdc_source import TABLE, create_table
from cdc_timing import RawStamp, raw_stamp
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Message, TopicPartition
from contenders import ROUTER, check_alive, processes, start_lane
from sqlalchemy import make_url

from services.common.catalog_feed import CatalogRecord
from services.common.kafka_clients import (
    TopicSpec,
    ensure_topics,
    make_admin,
    make_consumer,
    source_topic_spec,
)
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import Offsets, read_range
from services.ingest.adapters.connect_rest import ConnectClient
from services.ingest.adapters.debezium import (
    DebeziumAdapter,
    change_topic,
    connector_name,
    slot_name,
)
from services.ingest.adapters.debezium_run import drop_slot
from services.ingest.sql_feed import pg_url

ADAPTER = [sys.executable, "-m", "services.cli", "adapter"]
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


@dataclass
class Stamps:
    """What the three topics hold between two sets of offsets, by the broker's append time."""

    raw: dict[str, tuple[int, int]]  # position -> (transaction id, append ms)
    raw_commits: dict[int, int]  # transaction id -> source.ts_ms
    gov: dict[str, tuple[str, int, int]]  # event id -> (position, commit ms, append ms)
    delivered: dict[str, int]  # event id -> append ms


@dataclass
class CdcPipeline:
    lane: Lane  # the resource and its grant
    settings: Settings
    name: str  # of the adapter, its connector and slot
    provider_url: str
    raw_topic: str
    alive: Callable[[], None]
    pids: dict[str, int]  # router and adapter process ids (for a profiler)
    probe: Consumer  # reads end offsets

    @property
    def topics(self) -> list[str]:
        return [self.raw_topic, self.lane.source, *self.lane.deliveries]

    @property
    def connector(self) -> str:
        return connector_name(self.name)

    def offsets(self) -> Offsets:
        """The three topics' end offsets (one long-lived client: no sign-in per look)."""
        out = {}
        for topic in self.topics:
            metadata = self.probe.list_topics(topic, timeout=10).topics[topic]
            for p in metadata.partitions:
                tp = TopicPartition(topic, p)
                out[(topic, p)] = self.probe.get_watermark_offsets(tp, timeout=10)[1]
        return out

    def wait_delivered(self, since: Offsets, n: int, timeout_s: float = 900) -> None:
        """Until ``n`` more changes than at ``since`` are on the delivery topic."""
        (topic,) = self.lane.deliveries
        count = lambda offsets: sum(o for (t, _), o in offsets.items() if t == topic)  # noqa: E731
        deadline = time.monotonic() + timeout_s
        while (done := count(self.offsets()) - count(since)) < n:
            self.alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {done} of {n} changes after {timeout_s}s")
            time.sleep(0.5)

    def stamps(self, start: Offsets, end: Offsets) -> Stamps:
        codec = AvroCodec(make_registry_client(self.settings))
        found = Stamps({}, {}, {}, {})
        for m in read_range(self.settings, start, end):
            appended = _appended(m)
            if m.topic() == self.raw_topic:
                s: RawStamp = raw_stamp(m.value())
                found.raw[s.position] = (s.tx, appended)
                found.raw_commits[s.tx] = s.committed
            elif m.topic() == self.lane.source:
                event = codec.decode(m.value())
                source = event["source"]
                found.gov[event["event_id"]] = (source["position"], source["ts_ms"], appended)
            else:
                found.delivered[codec.decode(m.value())["event_id"]] = appended
        return found


def _appended(m: Message) -> int:
    kind, ms = m.timestamp()
    if kind != TIMESTAMP_LOG_APPEND_TIME:
        raise ValueError(f"{m.topic()}: records must carry the broker's append time")
    return ms


def _adapter_file(bus: BenchBus, name: str, record: CatalogRecord, db_url: str):
    url = make_url(db_url)
    connection = {"host": url.host, "port": url.port, "database": url.database}
    config = {
        "kind": "debezium",
        "resource": record.resource_id,
        "connection": {**connection, "user": url.username},
        "table": TABLE,
        "key": list(record.resource.key_fields),
    }
    (bus.work / "adapters").mkdir(parents=True, exist_ok=True)
    (bus.work / "adapters" / f"{name}.yaml").write_text(yaml.safe_dump(config), "utf-8")
    return DebeziumAdapter.model_validate(config)


def _create_database(server_url: str) -> tuple[str, str]:
    """A fresh provider database on the server: (its URL, its name)."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False), name


def _drop_database(server_url: str, name: str, adapter: DebeziumAdapter, adapter_name: str):
    """The slot and publication (a slot left behind holds WAL for ever), then the database."""
    drop_slot(adapter, slot_name(adapter_name), deadline_s=60)
    with psycopg.connect(pg_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _make_topics(settings: Settings, lane: Lane, raw_topic: str) -> None:
    """All three with the append time; one partition for the raw topic, as the adapter makes
    it (the table's changes in the log's order)."""
    gov = source_topic_spec(lane.source, settings)
    specs = [
        TopicSpec(raw_topic, 1, APPEND_TIME),
        TopicSpec(gov.name, gov.partitions, {**gov.config, **APPEND_TIME}),
        *(output_topic_spec(t, settings) for t in lane.deliveries),
    ]
    ensure_topics(make_admin(settings), specs)


def lane_record(bus: BenchBus, lane: Lane) -> CatalogRecord:
    assert bus.feeds is not None, "the bench bus is not started"
    return next(r for r in bus.feeds[0] if r.resource.provider == lane.provider)


@contextmanager
def cdc_pipeline(bus: BenchBus, lane: Lane, server_url: str) -> Iterator[CdcPipeline]:
    """The running pipeline, its provider database made on the PostgreSQL server at
    ``server_url``; after it, what it made there and on Connect is removed (the bench bus
    removes its topics). The bus's settings must name the Connect worker."""
    record = lane_record(bus, lane)
    db_url, database = _create_database(server_url)
    name = f"bench-{lane.tag}"
    adapter = _adapter_file(bus, name, record, db_url)
    settings = bus.settings(lane)
    with ExitStack() as stack:
        stack.callback(_drop_database, server_url, database, adapter, name)
        create_table(db_url, record)
        raw_topic = change_topic(name, adapter)
        _make_topics(settings, lane, raw_topic)
        stack.callback(_forget_connector, settings, connector_name(name))
        routers = stack.enter_context(processes(bus, lane, ROUTER))
        start_lane(bus, lane, routers)
        # The adapter's own lane names its log; it has no topics of its own.
        adapter_lane = Lane("adapter", lane.tag, consumers=0)
        adapters = stack.enter_context(processes(bus, adapter_lane, [*ADAPTER, name]))

        def alive() -> None:
            check_alive(bus, lane, routers)
            check_alive(bus, adapter_lane, adapters)

        pids = {"router": routers[0].pid, "adapter": adapters[0].pid}
        probe = make_consumer(settings, f"bench-{lane.tag}-probe")
        stack.callback(probe.close)
        yield CdcPipeline(lane, settings, name, db_url, raw_topic, alive, pids, probe)


def _forget_connector(settings: Settings, name: str) -> None:
    client = ConnectClient(settings.connect_url)
    try:
        client.forget(name)
    finally:
        client.close()
