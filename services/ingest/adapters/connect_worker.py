"""The Kafka Connect worker's properties, from the settings of the bus.

The worker, and the producers, consumers and admin clients it makes (``producer.``,
``consumer.``, ``admin.``), sign in to Kafka as the bus's services do: their properties are
``kafka_security.java_client_properties``, the Java form of ``settings.kafka_config()``.
``deploy/connect/connect.sh`` renders the file with
``python -m services.ingest.adapters.connect_worker <file>`` on every start.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.common.kafka_security import java_client_properties, properties_text
from services.common.private_files import write_private
from services.common.settings import Settings, load_settings

CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"


def worker_properties(settings: Settings) -> dict[str, str]:
    """A distributed worker: its group, its three topics on our broker, JSON without schemas
    (no schema registry involved: the bridge reads Debezium's JSON)."""
    group = settings.connect_group
    props: dict[str, str] = {
        "group.id": group,
        "config.storage.topic": f"{group}.configs",
        "offset.storage.topic": f"{group}.offsets",
        "status.storage.topic": f"{group}.status",
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "offset.flush.interval.ms": "1000",
        "key.converter": JSON_CONVERTER,
        "value.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "listeners": f"http://{settings.connect_host}:{settings.connect_port}",
        # Jars are on the worker's classpath (deploy/connect/pom.xml), not in a plugin dir.
        "plugin.discovery": "only_scan",
        "topic.creation.enable": "true",
    }
    client = {"bootstrap.servers": settings.kafka_bootstrap, **java_client_properties(settings)}
    for prefix in CLIENT_PREFIXES:
        props.update({f"{prefix}{k}": v for k, v in client.items()})
    return props


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.ingest.adapters.connect_worker <properties file>")
        return 2
    # Private: it holds the service's Kafka password.
    write_private(Path(argv[0]), properties_text(worker_properties(load_settings())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
