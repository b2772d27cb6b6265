"""The router process: a Faust app whose agent only moves batches of bytes.

Offsets are acknowledged by Faust's ``take_events`` only after the batch body returns,
and the body returns only once every output and dead letter is acknowledged by Kafka.

Grants come from ``govbus.grants``: read to its end at start-up, then followed by a timer on
the agent's event loop. A batch and a grant change never overlap: both hold the same gate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Iterable

import faust
from prometheus_client import CollectorRegistry

from services.common.audit import GENESIS
from services.common.catalog import CatalogEntry
from services.common.config_files import load_catalog
from services.common.grant_feed import GrantFollower, GrantRecord, for_sources
from services.common.kafka_clients import (
    bus_topic_specs,
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.metrics import BusMetrics, observe_ages, serve_metrics
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings, load_settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import AUDIT
from services.router.faust_tuning import LEAN_SETTINGS, use_uvloop
from services.router.forwarder import BatchForwarder
from services.router.live_grants import GrantSync, completed_backfills
from services.router.routing import STAGE, RawMessage, Router

log = logging.getLogger("govbus.router")
FATAL_EXIT = 70  # crash-only: die before any offset of an undelivered batch is committed


def _raw(event) -> RawMessage:
    m = event.message
    return RawMessage(m.topic, m.partition, m.offset, m.key, m.value)


GRANT_POLL_S = 0.5  # how often the router applies grant changes (activation, revocation)


def build_router(
    settings: Settings, catalog: dict[str, CatalogEntry], records: Iterable[GrantRecord] = ()
) -> Router:
    """A router on the catalog, routing every given grant record whatever its state."""
    codec = AvroCodec(make_registry_client(settings))
    router = Router(catalog.values(), codec)
    secret = settings.mask_secret.get_secret_value().encode()
    for r in records:
        router.add_grant(r.grant, r.value_schema, secret, r.resource)
    return router


def audit_head(settings: Settings) -> str:
    """Hash of the last record on the audit topic, where this router's chain continues."""
    end = end_offsets(settings, [AUDIT])
    last = {tp: off - 1 for tp, off in end.items() if off > 0}
    records = [json.loads(m.value()) for m in read_range(settings, last, end)]
    return records[-1]["hash"] if records else GENESIS


def source_topics(settings: Settings) -> list[str]:
    """Every existing topic the router follows: the catalog's, and stray gov.* ones to reject."""
    pattern = re.compile(settings.source_pattern)
    names = make_admin(settings).list_topics(timeout=30).topics
    return sorted(n for n in names if pattern.match(n))


def create_app(
    settings: Settings,
    forwarder: BatchForwarder,
    topics: list[str],
    follower: GrantFollower,
    grants: GrantSync,
) -> faust.App:
    app = faust.App(
        settings.router_group,
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, settings.batch_size * 2),
        **LEAN_SETTINGS,
    )
    # Faust's aiokafka driver cannot subscribe by pattern, so the router subscribes to the
    # matching topics that exist at start-up (the catalog's are created before).
    source = app.topic(*topics, value_serializer="raw", key_serializer="raw")
    # Held by a batch from routing to acknowledgement, and by a grant change with its backfill.
    gate = asyncio.Lock()

    @app.timer(interval=GRANT_POLL_S)
    async def follow_grants():
        changes = follower.changes()
        if not changes and not grants.pending(dt.date.today()):
            return
        async with gate:
            try:
                # Synchronous, in a thread so the loop keeps its heartbeats during a backfill;
                # no batch runs meanwhile: the agent waits at the gate.
                await asyncio.get_running_loop().run_in_executor(
                    None, _apply_grants, grants, changes
                )
            except Exception:
                # A backfill not acknowledged: the restart redoes it (nothing recorded yet).
                log.exception("grant changes not applied; exiting")
                os._exit(FATAL_EXIT)

    @app.agent(source)
    async def route(stream):
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(settings.batch_size, within=0.05):
            started = time.monotonic()
            try:
                async with gate:
                    forwarder.forward([_raw(e) for e in events], dt.date.today())
                    # The flush blocks, so it runs in a thread while the loop keeps fetching.
                    await loop.run_in_executor(None, forwarder.wait_acknowledged)
            except asyncio.CancelledError:
                # Shutting down mid-batch: finish delivering before Faust acks the batch.
                _finish_or_die(forwarder)
                raise
            except Exception:
                log.exception("batch of %d not delivered; exiting without commit", len(events))
                os._exit(FATAL_EXIT)
            forwarder.metrics.latency.labels(STAGE).observe(time.monotonic() - started)
            observe_ages(forwarder.metrics, STAGE, [e.message.timestamp for e in events])
            forwarder.metrics.batch_size.labels(STAGE).observe(len(events))

    return app


def _apply_grants(grants: GrantSync, records: list[GrantRecord]) -> None:
    grants.apply(records)
    grants.backfill_pending(dt.date.today())


def _finish_or_die(forwarder: BatchForwarder) -> None:
    try:
        forwarder.wait_acknowledged(30.0)
    except Exception:
        log.exception("could not finish the batch on shutdown; exiting without commit")
        os._exit(FATAL_EXIT)


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(levelname)s %(message)s")
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    use_uvloop()
    settings = load_settings()
    catalog = load_catalog(settings.catalog_dir, settings.schemas_dir)
    admin = make_admin(settings)
    ensure_topics(admin, bus_topic_specs(settings))
    follower = GrantFollower(settings).start()
    follower.wait_caught_up()
    records = list(for_sources(follower.changes(), settings.source_pattern).values())
    resources = [e.topic for e in catalog.values()] + [r.resource.topic for r in records]
    ensure_topics(admin, [source_topic_spec(t, settings) for t in sorted(set(resources))])
    metrics = BusMetrics(CollectorRegistry())
    router = build_router(settings, catalog)
    forwarder = BatchForwarder(router, make_producer(settings), metrics, audit_head(settings))
    grants = GrantSync(settings, router, forwarder, completed_backfills(settings))
    # Every active grant not backfilled yet is backfilled before routing starts.
    _apply_grants(grants, records)
    port = serve_metrics(metrics.registry, settings.router_metrics_port)
    topics = source_topics(settings)
    app = create_app(settings, forwarder, topics, follower, grants)
    log.info(
        "router up: %d grants, %d topics, metrics on :%d", len(router.grants()), len(topics), port
    )
    # The worker keeps this logging: its own set-up would silence the bus's loggers, and grant
    # changes and backfills are what an operator looks for in this log.
    faust.Worker(app, loglevel="WARNING", override_logging=False).execute_from_commandline()
