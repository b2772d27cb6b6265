"""Topic names of the bus, in one place."""

from __future__ import annotations

DLQ = "govbus.dlq"
AUDIT = "govbus.audit"
CATALOG = "govbus.catalog"  # resources with their schemas, keyed by resource id
GRANTS = "govbus.grants"
BACKFILLS = "govbus.backfills"  # completed backfills, keyed by grant id


def source_topic(provider: str, resource: str) -> str:
    return f"gov.{provider}.{resource}"


def delivery_topic(consumer: str, resource: str) -> str:
    return f"deliver.{consumer}.{resource}"


def parse_source_topic(topic: str) -> tuple[str, str] | None:
    """(provider, resource) of a ``gov.<provider>.<resource>`` topic, else None."""
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] != "gov" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def key_subject(topic: str) -> str:
    return f"{topic}-key"


def value_subject(topic: str) -> str:
    return f"{topic}-value"
