"""The schema registry client: confluent-kafka's own, so any Confluent-compatible registry works."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from services.common.settings import Settings


def make_registry_client(settings: Settings) -> SchemaRegistryClient:
    # "mock://..." gives confluent-kafka's in-memory registry, for unit tests.
    return SchemaRegistryClient.new_client({"url": settings.registry_url})
