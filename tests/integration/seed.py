"""What the control plane's outbox puts on the bus at first start, for a test's own catalog.

The test's catalog and grant files (deploy/ with tagged department codes) become records on
``govbus.catalog`` and ``govbus.grants``, and the resources' source topics are created.
"""

from __future__ import annotations

from confluent_kafka import Producer

from services.common import catalog_feed, config_files, grant_feed
from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.kafka_clients import (
    bus_topic_specs,
    ensure_topics,
    make_admin,
    source_topic_spec,
)
from services.common.settings import Settings
from services.common.topics import CATALOG, GRANTS


def file_records(settings: Settings) -> tuple[list[CatalogRecord], list[GrantRecord]]:
    s = settings
    return config_files.file_records(s.catalog_dir, s.grants_dir, s.schemas_dir)


def publish_records(
    settings: Settings, resources: list[CatalogRecord] = (), grants: list[GrantRecord] = ()
) -> None:
    """Produce the records (resources first, as the outbox orders them); wait for the acks."""
    admin = make_admin(settings)
    ensure_topics(admin, bus_topic_specs(settings))
    ensure_topics(admin, [source_topic_spec(r.topic, settings) for r in resources])
    producer = Producer(settings.kafka_config(**{"enable.idempotence": True}))
    for r in resources:
        producer.produce(CATALOG, catalog_feed.encode(r), r.resource_id.encode())
    for g in grants:
        producer.produce(GRANTS, grant_feed.encode(g), g.grant.id.encode())
    assert producer.flush(30) == 0


def publish_file_feeds(settings: Settings) -> tuple[list[CatalogRecord], list[GrantRecord]]:
    resources, grants = file_records(settings)
    publish_records(settings, resources, grants)
    return resources, grants
