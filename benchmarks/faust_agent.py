"""Reference contender: the router's own routing code driven by a Faust agent stream.

    python benchmarks/faust_agent.py worker --loglevel warn   (GOVBUS_* as for the router)

This is the path the data path replaced: Faust's per-message stream (aiokafka) hands the
agent batches (``take_events``), the project's ``BatchForwarder`` routes each batch with the
``Router`` (decode, fused filter/project/mask/encode per grant, audit records) and queues
the outputs on the ``OutputWriter``, and the agent waits for the flush before Faust may
acknowledge the batch. The routes come from the bench's catalog and grant files, compiled
once at start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import faust
from prometheus_client import CollectorRegistry

from services.common.config_files import file_records
from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics
from services.common.settings import load_settings
from services.router.app import build_router, faust_credentials, new_audit_chain
from services.router.forwarder import BatchForwarder, OutputWriter
from services.router.routing import RawMessage

settings = load_settings()
pattern = re.compile(settings.source_pattern)
resources, grants = file_records(settings.catalog_dir, settings.grants_dir, settings.schemas_dir)
router = build_router(settings)
for record in resources:
    if pattern.match(record.topic):
        router.set_resource(record)
        source_topic = record.topic
for record in grants:
    if pattern.match(record.source_topic):
        router.add_grant(record.grant)
writer = OutputWriter(
    make_producer(settings, **{"delivery.report.only.error": True}), new_audit_chain(settings)
)
forwarder = BatchForwarder(router, writer, BusMetrics(CollectorRegistry()))

app = faust.App(
    settings.router_group,
    broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
    broker_credentials=faust_credentials(settings),
    store="memory://",
    topic_disable_leader=True,
    web_enabled=False,
)
source = app.topic(
    source_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)


@app.agent(source)
async def route(stream) -> None:
    loop = asyncio.get_running_loop()
    async for events in stream.take_events(settings.batch_size, within=0.05):
        batch = [
            RawMessage(m.topic, m.partition, m.offset, m.key, m.value)
            for m in (e.message for e in events)
        ]
        forwarder.forward(batch, dt.date.today())
        # Faust acknowledges the batch when this body returns: only after Kafka has it all.
        await loop.run_in_executor(None, writer.flush)


if __name__ == "__main__":
    app.main()
