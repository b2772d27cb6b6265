"""The schema registry client: confluent-kafka's own, so any Confluent-compatible registry works."""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

from services.common.settings import Settings


def make_registry_client(settings: Settings) -> SchemaRegistryClient:
    """A client signed in as the bus's service user (HTTP basic auth)."""
    # "mock://..." gives confluent-kafka's in-memory registry, for unit tests.
    config = {"url": settings.registry_url}
    if not settings.registry_url.startswith("mock://"):
        config["basic.auth.user.info"] = settings.registry_auth
    return SchemaRegistryClient.new_client(config)
