"""What a BackfillRunner needs from the router, for tests and the backfill benchmark that run one
without the router process: a Router with the grant routed, and an OutputWriter on one producer
with the audit chain: the router's own forwarder."""

from __future__ import annotations

from services.common.audit import GENESIS
from services.common.catalog import Grant
from services.common.catalog_feed import CatalogRecord
from services.common.kafka_clients import make_producer
from services.common.schemas import source_schema
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topics import AUDIT
from services.router.app import audit_head
from services.router.forwarder import OutputWriter
from services.router.routing import Route, Router


def route_grant(
    settings: Settings, codec: AvroCodec, resources: list[CatalogRecord], grant: Grant
) -> tuple[Router, Route]:
    """A router that knows ``resources``, with ``grant`` routed (the one place these build one)."""
    secret = settings.mask_secret.get_secret_value().encode()
    router = Router(codec, secret, source_schema(settings.schemas_dir))
    for record in resources:
        router.set_resource(record)
    return router, router.add_grant(grant)


def output_writer(settings: Settings, audit_topic: str = AUDIT) -> OutputWriter:
    """The router's writer on a producer of its own, continuing the audit chain where it ends
    (as a router process does), so tests sharing a broker keep one unbroken chain."""
    head = audit_head(settings) if audit_topic == AUDIT else GENESIS
    return OutputWriter(make_producer(settings), head, audit_topic)
