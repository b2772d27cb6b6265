"""`govbus demo --events N`: N changes through the whole path, then account for every one.

Each change must end up either dead-lettered at ingest with its reason, or in the central
store; every delivery the grants call for must be on its consumer's topic; no delivery
topic, nor the dead-letter topic, may carry a valid resident ID number in clear. Exit status 1
when anything is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from services import demo_cdc
from services.bus import start_core
from services.common import catalog_feed, grant_feed
from services.common.audit import verify_chains
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import header_map
from services.common.feed import read_feed
from services.common.grant_feed import GrantRecord, for_sources
from services.common.idnumbers import find_resident_ids
from services.common.kafka_clients import (
    bus_topic_specs,
    delivery_topic_spec,
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.lag import wait_caught_up
from services.common.metrics import BusMetrics
from services.common.plan import expected_deliveries, live_plans
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import AUDIT, CATALOG, DLQ, GRANTS, delivery_topic
from services.demo_cdc import DemoThroughCdc
from services.demo_rows import problems as rows_problems
from services.demo_rows import rows_table
from services.ingest.demo_data import RESOURCES, DemoFeed
from services.ingest.feed import build_publisher, to_change, wait_for_resources
from services.ingest.publisher import Change
from services.launcher import ProcessGroup
from services.sink.central_store import CentralStore

MALFORMED = {
    "not_avro": b"\x7bnot avro at all}",
    "unknown_schema_id": struct.pack(">bI", 0, 987654321) + b"\x02\x04",
}


@dataclass
class Ledger:
    published: dict[str, list[tuple[str, Change]]] = field(default_factory=dict)
    ingest_rejected: int = 0
    injected: Counter = field(default_factory=Counter)


def publish_demo(settings: Settings, events: int, seed: int) -> Ledger:
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    missing = wait_for_resources(publisher, RESOURCES, 60.0, lambda: False)
    if missing:
        raise RuntimeError(f"resources not in govbus.catalog after 60 s: {missing}")
    ledger = Ledger()
    for demo in DemoFeed(seed=seed, invalid_rate=0.01).changes(events):
        change = to_change(demo)
        event_id = publisher.publish(change)
        if event_id is None:
            ledger.ingest_rejected += 1
        else:
            ledger.published.setdefault(change.resource, []).append((event_id, change))
        producer.poll(0)
    _inject_malformed(producer, next(iter(publisher.topics())), ledger)
    publisher.close()
    if producer.flush(60):
        raise RuntimeError("demo changes not acknowledged by Kafka")
    return ledger


def _inject_malformed(producer: Producer, topic: str, ledger: Ledger) -> None:
    """Bad input a provider could send: the router must dead-letter it and go on."""
    for reason, payload in MALFORMED.items():
        producer.produce(topic, payload, b"demo-bad")
        ledger.injected[reason] += 1


def _inject_malformed_now(settings: Settings, topic: str, ledger: Ledger) -> None:
    producer = make_producer(settings)
    _inject_malformed(producer, topic, ledger)
    if producer.flush(60):
        raise RuntimeError("malformed demo records not acknowledged by Kafka")


def live_catalog(settings: Settings, wanted: tuple[str, ...], timeout_s: float) -> dict:
    """The readable catalog records by resource id, once ``wanted`` are all there (the catalog
    service's outbox publishes them shortly after it starts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = read_feed(settings, CATALOG, catalog_feed.decode)
        readable = {k: v for k, v in found.items() if isinstance(v, CatalogRecord)}
        if set(wanted) <= set(readable):
            return readable
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"not in govbus.catalog after {timeout_s}s: {set(wanted) - set(readable)}"
            )
        time.sleep(0.5)


def run_demo(settings: Settings, events: int, seed: int, console: Console) -> int:
    """Direct: the demo feed publishes. With ``provider_db_url`` (``make demo``, CDC=1): its
    changes are written into the provider tables and reach the bus through Debezium."""
    cdc = bool(settings.provider_db_url)
    admin = make_admin(settings)
    ensure_topics(admin, bus_topic_specs(settings))
    group = ProcessGroup(settings.data_dir / "logs")
    rows = None  # through CDC: the source tables against the central store
    try:
        start_core(settings, group)
        catalog = live_catalog(settings, RESOURCES, 60)
        ensure_topics(admin, [source_topic_spec(r.topic, settings) for r in catalog.values()])
        # The grants the router follows, as the control plane published them (once the router
        # is up: its start-up backfills are before the offsets read here).
        grants = read_feed(settings, GRANTS, grant_feed.decode).values()
        readable = [r for r in grants if isinstance(r, GrantRecord)]
        records = list(for_sources(readable, settings.source_pattern).values())
        ensure_topics(admin, [delivery_topic_spec(r.grant.topic, settings) for r in records])
        watched = sorted({r.grant.topic for r in records} | {DLQ})
        through = demo_cdc.DemoThroughCdc(settings, group, catalog) if cdc else None
        start = end_offsets(settings, watched)
        began = time.monotonic()
        if through is not None:
            console.print(f"writing {events} changes into the provider tables ...")
            ledger = Ledger()
            _inject_malformed_now(settings, catalog[RESOURCES[0]].resource.topic, ledger)
            through.write_and_drain(events, seed, 600)
        else:
            console.print(f"publishing {events} changes ...")
            ledger = publish_demo(settings, events, seed)
            groups = (settings.router_group, settings.sink_group)
            wait_caught_up(settings, groups, 180, group.check_alive)
        took = time.monotonic() - began
        end = end_offsets(settings, watched)
        outcome = _read_outputs(settings, start, end, through)
        if through is not None:
            ledger.published = through.published(AvroCodec(make_registry_client(settings)))
            taken = sum(map(len, ledger.published.values()))
            ledger.ingest_rejected = len(through.positions) - taken  # captured, not published
            rows = through.compare()
    finally:
        group.stop()
    store = CentralStore(settings.central_store_url, catalog.values())
    secret = settings.mask_secret.get_secret_value().encode()
    plans = live_plans(records, catalog, secret, dt.date.today())
    published = [pair for pairs in ledger.published.values() for pair in pairs]
    expected = expected_deliveries(plans, published)
    entries = {r: c.resource for r, c in catalog.items()}
    return _report(console, events, took, ledger, expected, outcome, store, rows, entries)


@dataclass
class Outcome:
    """What came out of the bus: deliveries, dead letters, leaks, and the audit trail."""

    delivered: dict[str, Counter] = field(default_factory=dict)
    dead: Counter = field(default_factory=Counter)
    leaks: int = 0
    audited: dict[str, set[str]] = field(default_factory=dict)
    audit_records: int = 0
    audit_break: str | None = None  # the first record of a chain that does not verify


def _read_outputs(settings: Settings, start, end, through: DemoThroughCdc | None) -> Outcome:
    """Through CDC, an ingest dead letter of a record that is not the run's (an older row's,
    taken by a first snapshot) is left out."""
    codec = AvroCodec(make_registry_client(settings))
    out = Outcome()
    for msg in read_range(settings, start, end):
        # Deliveries and dead letters alike: no ID number in clear.
        out.leaks += len(find_resident_ids((msg.key() or b"").decode("latin-1")))
        out.leaks += len(find_resident_ids((msg.value() or b"").decode("latin-1")))
        if msg.topic() == DLQ:
            h = header_map(msg.headers())
            if through is not None and demo_cdc.is_other_letter(h, through.positions):
                continue
            out.dead[(h.get("govbus.stage", "?"), h.get("govbus.reason", "?"))] += 1
            continue
        value = codec.decode(msg.value())
        out.delivered.setdefault(msg.topic(), Counter())[value["event_id"]] += 1
    # The whole trail, so every chain is checked from its first record.
    raw = [
        ((m.topic(), m.partition(), m.offset()), m.value())
        for m in read_range(settings, {}, end_offsets(settings, [AUDIT]))
    ]
    report = verify_chains(raw, settings.audit_key.get_secret_value().encode())
    records = [json.loads(value) for _, value in raw]
    out.audit_records = len(records)
    out.audit_break = str(report.breaks[0]) if report.breaks else None
    for r in records:
        topic = delivery_topic(r["consumer"], r["resource"].split(".", 1)[1])
        out.audited.setdefault(topic, set()).update(r["event_ids"])
    return out


def _report(console, events, took, ledger, expected, outcome: Outcome, store, rows, entries) -> int:
    delivered, dead, leaks = outcome.delivered, outcome.dead, outcome.leaks
    problems = []
    t = Table(title=f"govbus demo: {events} changes in {took:.1f}s")
    for col in ("resource", "published", "stored (new this run)", "live rows", "history rows"):
        t.add_column(col, justify="right" if col != "resource" else "left")
    counts = store.counts()
    for resource, items in sorted(ledger.published.items()):
        ids = [e for e, _ in items]
        stored = store.stored_event_ids(resource, ids)
        if len(stored) != len(ids):
            problems.append(
                f"{resource}: {len(ids) - len(stored)} changes not in the central store"
            )
        c = counts[resource]
        t.add_row(resource, str(len(ids)), str(len(stored)), str(c["live"]), str(c["history"]))
    console.print(t)

    d = Table(title="deliveries per consumer and resource")
    for col in ("topic", "expected", "delivered", "duplicates", "missing"):
        d.add_column(col, justify="right" if col != "topic" else "left")
    for topic, want in sorted(expected.items()):
        got = delivered.get(topic, Counter())
        missing = len(want - set(got))
        dups = sum(n - 1 for n in got.values())
        if missing:
            problems.append(f"{topic}: {missing} deliveries missing")
        d.add_row(topic, str(len(want)), str(len(set(got) & want)), str(dups), str(missing))
    console.print(d)

    q = Table(title="dead letters per stage and reason")
    for col in ("stage", "reason", "count"):
        q.add_column(col)
    for (stage, reason), n in sorted(dead.items()):
        q.add_row(stage, reason, str(n))
    console.print(q)
    ingest_dead = sum(n for (stage, _), n in dead.items() if stage == "ingest")
    if ingest_dead != ledger.ingest_rejected:
        problems.append(f"ingest rejected {ledger.ingest_rejected}, DLQ holds {ingest_dead}")
    for reason, n in ledger.injected.items():
        if dead[("router", reason)] < n:
            problems.append(f"injected {n} {reason} records, DLQ holds {dead[('router', reason)]}")
    accounted = ledger.ingest_rejected + sum(len(v) for v in ledger.published.values())
    if accounted != events:
        problems.append(f"{events - accounted} changes unaccounted for")
    if leaks:
        problems.append(
            f"{leaks} valid resident ID numbers in clear on delivery topics and the DLQ"
        )
    console.print(f"resident ID numbers in clear on delivery topics and the DLQ: {leaks}")
    unaudited = sum(len(want - outcome.audited.get(t, set())) for t, want in expected.items())
    chain = "intact" if outcome.audit_break is None else f"BROKEN at {outcome.audit_break}"
    console.print(
        f"audit trail: {outcome.audit_records} records, chain {chain}, "
        f"deliveries missing from it: {unaudited}"
    )
    if outcome.audit_break is not None or unaudited:
        problems.append(f"audit trail: chain {chain}, {unaudited} deliveries not audited")
    if rows is not None:
        console.print(rows_table(rows, entries))
        problems += rows_problems(rows)
    for p in problems:
        console.print(f"[red]UNACCOUNTED[/red] {p}")
    if not problems:
        console.print("[green]every change accounted for[/green]")
    return 1 if problems else 0
