"""Router throughput against a plain confluent-kafka pass-through, side by side on one broker.

    make bench                      # or: python benchmarks/router_throughput.py --events 100000

Loads N realistic resident-population change events once, then measures, on copies of the
same bytes in topics with the same settings:
  passthrough  consume -> produce the same bytes -> flush -> commit (confluent-kafka loop)
  router       the govbus router process (its batch loop in the Faust worker, one grant per
               event: decode with the current schema, filter, project, mask, encode, produce,
               acknowledge, commit), following the bench resource and grant from the catalog
               and grant feeds
Throughput is counted from the broker's timestamps of the first and last output record,
so process start-up is not part of it. Writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from services.catalog.registry_auth import service_login
from services.catalog.registry_server import build_registry_server
from services.catalog.registry_store import SchemaRegistryStore
from services.common import catalog_feed, grant_feed
from services.common.catalog import GrantState
from services.common.catalog_feed import CatalogRecord
from services.common.config_files import file_records
from services.common.grant_feed import GrantRecord
from services.common.kafka_clients import (
    bus_topic_specs,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    source_topic_spec,
)
from services.common.metrics import BusMetrics
from services.common.settings import Settings
from services.common.topic_reader import end_offsets
from services.common.topics import CATALOG, GRANTS
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "latest.json"


def start_registry(db: Path) -> str:
    store = SchemaRegistryStore(f"sqlite:///{db}")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    login = service_login(Settings())
    server = build_registry_server(store, "127.0.0.1", sock.getsockname()[1], login)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    import httpx

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("registry did not start")


def bench_config(tag: str, target: Path) -> None:
    """One resource, one grant without a row filter: every event gets exactly one delivery."""
    catalog = yaml.safe_load((REPO / "deploy/catalog/resources.yaml").read_text("utf-8"))
    grants = yaml.safe_load((REPO / "deploy/grants/demo.yaml").read_text("utf-8"))
    entry = next(r for r in catalog["resources"] if r["code"] == "resident_population")
    entry["provider"] = f"psb{tag}"
    grant = next(g for g in grants["grants"] if g["id"] == "mca-resident-population")
    grant.update(
        id=f"bench-{tag}",  # a key of the shared govbus.grants: never a real grant's id
        consumer=f"mca{tag}",
        resource=f"psb{tag}.resident_population",
        row_filter=None,
    )
    for sub, name, data in (
        ("catalog", "resources.yaml", {"resources": [entry]}),
        ("grants", "bench.yaml", {"grants": [grant]}),
    ):
        (target / sub).mkdir(parents=True, exist_ok=True)
        (target / sub / name).write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")


def load_events(settings: Settings, tag: str, n: int) -> str:
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    sent = 0
    for c in DemoFeed(seed=42).changes(n * 3):
        if not c.resource.endswith("resident_population"):
            continue
        publisher.publish(
            Change(f"psb{tag}.resident_population", c.op, c.before, c.after, c.position, c.system)
        )
        producer.poll(0)
        sent += 1
        if sent == n:
            break
    assert producer.flush(120) == 0
    return f"gov.psb{tag}.resident_population"


def copy_topic(settings: Settings, source: str, target: str) -> None:
    """Same bytes, same topic settings: each contender reads its own copy."""
    ensure_topics(make_admin(settings), [source_topic_spec(target, settings)])
    consumer = make_consumer(settings, f"copy-{uuid.uuid4()}")
    producer = make_producer(settings, **{"linger.ms": 20})
    end = end_offsets(settings, [source])
    todo = {tp: off for tp, off in end.items() if off > 0}
    consumer.assign([TopicPartition(t, p, 0) for t, p in todo])
    while todo:
        for m in consumer.consume(1000, 1.0):
            if m.error():
                continue
            producer.produce(target, m.value(), m.key(), partition=m.partition())
            if m.offset() + 1 >= todo.get((m.topic(), m.partition()), 0):
                todo.pop((m.topic(), m.partition()), None)
        producer.poll(0)
    producer.flush(120)
    consumer.close()


def output_rate(settings: Settings, topic: str, expected: int, timeout_s: float) -> float:
    """Records/s between the first and last output record's broker timestamps."""
    deadline = time.monotonic() + timeout_s
    while sum(end_offsets(settings, [topic]).values()) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: fewer than {expected} records after {timeout_s}s")
        time.sleep(0.5)
    consumer = Consumer(settings.kafka_config(**{"group.id": f"ts-{uuid.uuid4()}"}))
    ends = end_offsets(settings, [topic])
    first, last, seen = None, None, 0
    consumer.assign([TopicPartition(t, p, 0) for (t, p) in ends])
    while seen < sum(ends.values()):
        for m in consumer.consume(2000, 1.0):
            if m.error():
                continue
            ts = m.timestamp()[1]
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
            seen += 1
    consumer.close()
    return seen / max((last - first) / 1000.0, 0.001)


def run_passthrough(settings: Settings, source: str, target: str, n: int) -> float:
    ensure_topics(make_admin(settings), [source_topic_spec(target, settings)])
    consumer = make_consumer(settings, f"pass-{uuid.uuid4()}")
    producer = make_producer(settings)
    consumer.subscribe([source])
    done = 0
    while done < n:
        batch = consumer.consume(settings.batch_size, 1.0)
        for m in batch:
            if m.error():
                continue
            producer.produce(target, m.value(), m.key())
            done += 1
        if batch:
            producer.flush()  # the same at-least-once order as the router: flush, then commit
            consumer.commit(asynchronous=False)
    consumer.close()
    return output_rate(settings, target, n, 60)


def bench_records(settings: Settings) -> tuple[list[CatalogRecord], list[GrantRecord]]:
    """The bench resource and grant as the control plane's outbox publishes them."""
    return file_records(settings.catalog_dir, settings.grants_dir, settings.schemas_dir)


def publish_feeds(
    settings: Settings, resources: list[CatalogRecord], grants: list[GrantRecord], remove=False
) -> None:
    """Put the records on govbus.catalog and govbus.grants; with ``remove``, take them off
    again (the grant revoked, then both keys deleted)."""
    ensure_topics(make_admin(settings), bus_topic_specs(settings))
    producer = make_producer(settings)
    for r in resources if not remove else []:
        producer.produce(CATALOG, catalog_feed.encode(r), r.resource_id.encode())
    for g in grants:
        if remove:
            g = g.model_copy(
                update={"grant": g.grant.model_copy(update={"state": GrantState.REVOKED})}
            )
        producer.produce(GRANTS, grant_feed.encode(g), g.grant.id.encode())
        if remove:
            producer.produce(GRANTS, None, g.grant.id.encode())
    for r in resources if remove else []:
        producer.produce(CATALOG, None, r.resource_id.encode())
    assert producer.flush(30) == 0


def run_router(
    settings: Settings, env: dict[str, str], n: int, delivery_topic: str, log: Path
) -> float:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "router"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    try:
        return output_rate(settings, delivery_topic, n, 600)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    n = args.events
    tag = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="govbus-bench-"))
    bootstrap = os.environ.get("GOVBUS_KAFKA_BOOTSTRAP", "localhost:9092")
    feeds: tuple[list[CatalogRecord], list[GrantRecord]] | None = None
    try:
        bench_config(tag, work / "config")
        values = {
            "kafka_bootstrap": bootstrap,
            "registry_url": start_registry(work / "registry.db"),
            "data_dir": str(work / "data"),
            "catalog_dir": str(work / "config" / "catalog"),
            "grants_dir": str(work / "config" / "grants"),
            "source_pattern": rf"^gov\.psb{tag}\.resident_population$",
            "router_group": f"bench-router-{tag}",
            "router_metrics_port": "0",
            "demo_mode": "1",  # the demo secrets, which the bench registry admits
        }
        settings = Settings(**values)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")}
        env.update({f"GOVBUS_{k.upper()}": v for k, v in values.items()})
        # Ingest and the router follow govbus.catalog and govbus.grants: the bench resource and
        # grant are published there first (ingest dead-letters a resource it does not know),
        # and taken off after the run. The router group is new and the grant is active before
        # the router starts, so the activation backfill (from an empty store) is empty.
        feeds = bench_records(settings)
        publish_feeds(settings, *feeds)
        print(f"loading {n} resident-population change events ...", flush=True)
        source = load_events(settings, tag, n)
        passthrough_copy = f"{source}.passthrough"
        copy_topic(settings, source, passthrough_copy)
        delivery = f"deliver.mca{tag}.resident_population"

        print("passthrough ...", flush=True)
        passthrough = run_passthrough(settings, passthrough_copy, f"bench.out.{tag}", n)
        print("router ...", flush=True)
        router = run_router(settings, env, n, delivery, work / "router.log")
        result = {
            "events": n,
            "router_events_per_s": round(router),
            "passthrough_events_per_s": round(passthrough),
            "ratio": round(router / passthrough, 3),
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\npassthrough (confluent-kafka)   {passthrough:>10,.0f} events/s")
        print(f"router (batch loop)             {router:>10,.0f} events/s")
        print(f"ratio router / passthrough      {router / passthrough:>10.3f}")
        print(f"written to {RESULTS.relative_to(REPO)}")
    finally:
        if feeds is not None:
            publish_feeds(settings, *feeds, remove=True)
        _delete_topics(bootstrap, tag)
        shutil.rmtree(work, ignore_errors=True)


def _delete_topics(bootstrap: str, tag: str) -> None:
    """Leave the broker as we found it: a running bus would dead-letter our stray topics."""
    admin = make_admin(Settings(kafka_bootstrap=bootstrap))
    mine = [t for t in admin.list_topics(timeout=10).topics if tag in t]
    for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else []:
        future.result()


if __name__ == "__main__":
    main()
