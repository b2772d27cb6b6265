"""Backfill of a resource with 1M live keys from the central store: peak RSS and time.

    make bench-backfill            # or: python benchmarks/backfill_memory.py --keys 1000000

Fills a resource's current table in the central store with N live keys (a direct bulk insert:
the state the sink leaves, however old), then runs the router's BackfillRunner for one grant
against the broker, in a process of its own that does nothing else, the way the router runs it
(a thread that reads pages, masks, encodes, produces, audits and awaits the acknowledgements).
Reports that process's peak RSS (ru_maxrss) and the time from ``start`` to the recorded
completion. With 1M keys, merges ``backfill_1m_seconds`` and ``backfill_1m_peak_rss_mb`` into
benchmarks/results/latest.json (other keys kept). The store is SQLite unless ``--store-url``
(or GOVBUS_STORE_URL) names another, e.g. PostgreSQL.

The run's delivery and audit topics, its catalog record and its completion are removed after it,
so a shared broker keeps nothing of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.backfill_support: the router's part around a backfill

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from results_file import RESULTS, merge_results  # noqa: E402
from sqlalchemy import MetaData, insert  # noqa: E402

from services.common import catalog_feed  # noqa: E402
from services.common.catalog_feed import CatalogRecord  # noqa: E402
from services.common.config_files import load_catalog, load_grants  # noqa: E402
from services.common.grant_feed import GrantRecord  # noqa: E402
from services.common.idnumbers import make_resident_id  # noqa: E402
from services.common.kafka_clients import (  # noqa: E402
    TopicSpec,
    bus_topic_specs,
    delivery_topic_spec,
    ensure_topics,
    make_admin,
)
from services.common.schemas import value_schema  # noqa: E402
from services.common.settings import Settings  # noqa: E402
from services.common.sql import build_engine  # noqa: E402
from services.common.store_tables import (  # noqa: E402
    positions_table,
    resource_tables,
    source_version,
)
from services.common.topics import BACKFILLS, CATALOG  # noqa: E402
from services.router.backfill import progress_key  # noqa: E402

PARTITIONS = 3
CHUNK = 20_000


def bench_records(settings: Settings, tag: str) -> tuple[CatalogRecord, GrantRecord]:
    """The resident population resource and the civil affairs grant, on providers of their own."""
    catalog = load_catalog(REPO / "deploy" / "catalog", settings.schemas_dir)
    entry = catalog["psb.resident_population"]
    grant = next(
        g
        for g in load_grants(REPO / "deploy" / "grants", catalog)
        if g.id == "mca-resident-population"
    )
    schema = value_schema(entry, settings.schemas_dir)
    entry = entry.model_copy(update={"provider": f"psb_{tag}"})
    grant = grant.model_copy(
        update={"id": f"bench-{tag}", "consumer": f"mca_{tag}", "resource": entry.resource_id}
    )
    return (
        CatalogRecord(resource=entry, value_schema=schema, schema_version=1),
        GrantRecord(grant=grant, activation=1),
    )


def person(n: int) -> dict:
    born = dt.date(1950, 1, 1) + dt.timedelta(days=n // 1000)
    return {
        "id_number": make_resident_id("340104", born, n % 1000),
        "name": "王建国",
        "gender": "M" if n % 2 else "F",
        "birth_date": born.isoformat(),
        "ethnicity": "汉族",
        "region_code": "340104",
        "address": f"安徽省合肥市蜀山区长江西路{n % 900 + 1}号{n % 30 + 1}栋",
        "phone": f"139{n:08d}",
        "household_type": "城镇" if n % 2 else "农村",  # every row passes the grant's filter
        "updated_at": 1_700_000_000_000 + n,
    }


def fill(store_url: str, record: CatalogRecord, keys: int) -> dict[int, int]:
    """N live keys in the current table, spread over the partitions; returns the seam."""
    engine = build_engine(store_url)
    metadata = MetaData()
    tables = resource_tables(record, metadata)
    positions = positions_table(metadata)
    metadata.create_all(engine)
    topic = record.topic
    for start in range(0, keys, CHUNK):
        rows = [
            {
                **person(n),
                "_op": "c",
                "_deleted": False,
                "_version": source_version(f"lsn:{n}"),
                "_event_id": str(uuid.UUID(int=n)),
                "_ts_ms": 1_700_000_000_000 + n,
                "_source_ts_ms": None,
                "_topic": topic,
                "_partition": n % PARTITIONS,
                "_offset": n // PARTITIONS,
            }
            for n in range(start, min(start + CHUNK, keys))
        ]
        with engine.begin() as conn:
            conn.execute(insert(tables.current), rows)
    seam = {p: (keys - 1 - p) // PARTITIONS + 1 for p in range(PARTITIONS) if p < keys}
    with engine.begin() as conn:
        conn.execute(
            insert(positions),
            [{"topic": topic, "partition": p, "next_offset": off} for p, off in seam.items()],
        )
    engine.dispose()
    return seam


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """The process's resident set now (Linux)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(s for s in status if s.startswith("VmRSS:")).split()[1]) / 1024


def run_backfill(spec: dict) -> dict:
    """The measured process: a router's BackfillRunner, and nothing else."""
    from services.common.serde import AvroCodec
    from services.router.backfill_runner import BackfillRunner
    from tests.backfill_support import output_writer, route_grant

    settings = Settings(kafka_bootstrap=spec["bootstrap"])
    catalog_record, record = bench_records(settings, spec["tag"])
    # An in-memory registry: the measure is the backfill's, not a registry's.
    codec = AvroCodec(SchemaRegistryClient.new_client({"url": f"mock://{spec['tag']}"}))
    router, route = route_grant(settings, codec, [catalog_record], record.grant)
    writer = output_writer(settings, audit_topic=spec["audit_topic"])
    runner = BackfillRunner(settings, router, writer, spec["store_url"])
    seam = {(catalog_record.topic, int(p)): off for p, off in spec["seam"].items()}
    at_start = rss_mb()
    started = time.monotonic()
    runner.start(record, route, seam)
    while not all(runner.is_done(record.backfill_id, p) for p in seam):
        if not runner.running():
            raise RuntimeError("the backfill ended without completing: see the log")
        time.sleep(0.1)  # polling a flag; the runner's own thread does the work
    seconds = time.monotonic() - started
    runner.stop()
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "start_rss_mb": round(at_start, 1),
    }


def cleanup(
    settings: Settings,
    record: CatalogRecord,
    grant: GrantRecord,
    topics: list[str],
    seam: dict[int, int],
):
    admin = make_admin(settings)
    for future in admin.delete_topics(topics).values():
        future.result()
    producer = Producer(settings.kafka_config())
    producer.produce(CATALOG, None, record.resource_id.encode())
    for partition in seam:
        key = progress_key(grant.backfill_id, (record.topic, int(partition)))
        producer.produce(BACKFILLS, None, key.encode())
    producer.flush(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--store-url", default=os.environ.get("GOVBUS_STORE_URL", ""))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.child:
        print(json.dumps(run_backfill(json.loads(args.child))))
        return

    bootstrap = os.environ.get("GOVBUS_KAFKA_BOOTSTRAP", "localhost:9092")
    settings = Settings(kafka_bootstrap=bootstrap)
    tag = uuid.uuid4().hex[:8]
    catalog_record, record = bench_records(settings, tag)
    with tempfile.TemporaryDirectory(prefix="govbus-bench-") as tmp:
        store_url = args.store_url or f"sqlite:///{tmp}/store.db"
        filled = time.monotonic()
        seam = fill(store_url, catalog_record, args.keys)
        print(f"store: {args.keys} live keys in {time.monotonic() - filled:.1f}s")

        admin = make_admin(settings)
        audit_topic = f"bench.audit.{tag}"
        delivery = delivery_topic_spec(record.grant.topic, settings)
        ensure_topics(admin, [*bus_topic_specs(settings), delivery, TopicSpec(audit_topic, 1)])
        producer = Producer(settings.kafka_config())
        producer.produce(
            CATALOG, catalog_feed.encode(catalog_record), catalog_record.resource_id.encode()
        )
        assert producer.flush(30) == 0
        spec = {
            "bootstrap": bootstrap,
            "tag": tag,
            "store_url": store_url,
            "seam": seam,
            "audit_topic": audit_topic,
        }
        try:
            child = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
        finally:
            cleanup(settings, catalog_record, record, [delivery.name, audit_topic], seam)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"backfill of {args.keys} keys ({store_url.split(':', 1)[0]}): {figures['seconds']}s, "
        f"peak RSS {figures['peak_rss_mb']} MB (RSS when it started: {figures['start_rss_mb']} MB)"
    )
    if args.keys == 1_000_000:
        merge_results(
            {
                "backfill_1m_seconds": figures["seconds"],
                "backfill_1m_peak_rss_mb": figures["peak_rss_mb"],
            }
        )
        print(f"written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
