"""The router's own CPU per event, without Kafka: decode, then route a batch and queue it.

    python benchmarks/route_cpu.py --events 20000
    python benchmarks/route_cpu.py --compare OTHER_CHECKOUT   # both trees, alternating

Demo changes of all three resources (services/ingest/demo_data.py), the demo catalog and
grants, a mock registry and a producer that drops what it is given: what is left is the data
path's Python (decode, routes, filter, projection, masking, encode, audit records, metrics)
in µs of CPU per event (process time: a loaded machine stretches wall time, not this), best
of a few rounds. ``--compare`` runs this script from another checkout
(say, the commit before a change) in the same run, so both figures share the machine's load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.common.audit import AuditChain
from services.common.catalog_feed import CatalogRecord
from services.common.config_files import load_catalog, load_grants
from services.common.metrics import BusMetrics
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.settings import REPO_ROOT
from services.common.topics import value_subject
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import to_change
from services.ingest.publisher import make_envelope
from services.router.forwarder import BatchForwarder, OutputWriter
from services.router.routing import RawMessage, Router

TODAY = dt.date(2026, 11, 26)
BATCH = 1000
SCHEMAS = REPO_ROOT / "schemas" / "avro"


class DroppingProducer:
    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None) -> None:
        pass

    def poll(self, _timeout=None) -> int:
        return 0

    def flush(self, _timeout=None) -> int:
        return 0


def build(n: int) -> tuple[Router, BatchForwarder, list[RawMessage]]:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from services.common.serde import AvroCodec

    codec = AvroCodec(SchemaRegistryClient.new_client({"url": "mock://route-cpu"}))
    router = Router(codec, b"route-cpu-master-secret", source_schema(SCHEMAS))
    catalog = load_catalog(REPO_ROOT / "deploy" / "catalog", SCHEMAS)
    encoders, entries = {}, {}
    for entry in catalog.values():
        schema = value_schema(entry, SCHEMAS)
        router.set_resource(CatalogRecord(resource=entry, value_schema=schema, schema_version=1))
        full = envelope_schema(schema, source_schema(SCHEMAS))
        encoders[entry.resource_id] = codec.encoder(value_subject(entry.topic), full)
        entries[entry.resource_id] = entry
    for g in load_grants(REPO_ROOT / "deploy" / "grants", catalog):
        router.add_grant(g)
    messages = []
    for i, demo in enumerate(DemoFeed(seed=3).changes(n)):
        change = to_change(demo)
        entry = entries[change.resource]
        value = encoders[change.resource](make_envelope(change, entry, 1_764_000_000_000, f"e{i}"))
        messages.append(RawMessage(entry.topic, 0, i, b"k", value))
    writer = OutputWriter(DroppingProducer(), AuditChain(b"bench"))
    return router, BatchForwarder(router, writer, BusMetrics(CollectorRegistry())), messages


def measure(n: int, rounds: int) -> dict[str, float]:
    router, forwarder, messages = build(n)
    best = {"decode_us": float("inf"), "route_us": float("inf")}
    for _ in range(rounds):
        decode_s = route_s = 0.0
        for i in range(0, len(messages), BATCH):
            batch = messages[i : i + BATCH]
            t0 = time.process_time()
            decoded = [router.decode_event(m) for m in batch]
            t1 = time.process_time()
            forwarder.forward(batch, TODAY, decoded)
            route_s += time.process_time() - t1
            decode_s += t1 - t0
        best["decode_us"] = min(best["decode_us"], decode_s / n * 1e6)
        best["route_us"] = min(best["route_us"], route_s / n * 1e6)
    best["total_us"] = best["decode_us"] + best["route_us"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another checkout, measured alternately")
    parser.add_argument("--json", action="store_true", help="one JSON line (for --compare)")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.events, args.rounds)))
        return
    trees = {"this": REPO_ROOT} | ({"other": args.compare.resolve()} if args.compare else {})
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(2):  # alternate, so a load change on the machine hits both
        for name, tree in trees.items():
            command = [sys.executable, str(Path(__file__).resolve()), "--json"]
            command += ["--events", str(args.events), "--rounds", str(args.rounds)]
            out = subprocess.run(
                command,
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[name].append(json.loads(out))
    print(f"{'tree':<6} {'decode µs':>10} {'route µs':>10} {'total µs':>10}  per event")
    for name, results in runs.items():
        best = {k: min(r[k] for r in results) for k in results[0]}
        print(
            f"{name:<6} {best['decode_us']:>10.1f} {best['route_us']:>10.1f} "
            f"{best['total_us']:>10.1f}"
        )


if __name__ == "__main__":
    main()
