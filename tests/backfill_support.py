"""What a BackfillRunner needs from the router, for tests and the backfill benchmark that run one
without the router process: a Router with the grant routed, and an OutputWriter on one producer
with the audit chain: the router's own forwarder."""

from __future__ import annotations

from services.common.catalog import Grant
from services.common.catalog_feed import CatalogRecord
from services.common.kafka_clients import make_producer
from services.common.schemas import source_schema
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topics import AUDIT
from services.router.app import new_audit_chain
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
    """The router's writer on a producer of its own, with an audit chain of its own (as a router
    process has), so tests sharing a broker keep every chain unbroken."""
    return OutputWriter(make_producer(settings), new_audit_chain(settings), audit_topic)
