"""The Kafka Connect worker's properties, from the one Kafka client config of the bus.

``settings.kafka_config()`` (librdkafka keys) is the only place the broker address and its
security settings live; the worker, and the producers, consumers and admin clients it makes,
get the same settings here under their Java names. ``deploy/connect/connect.sh`` renders the
file with ``python -m services.ingest.adapters.connect_worker <file>``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.common.settings import Settings, load_settings

# librdkafka keys whose Java client key has the same meaning; other keys are the Python
# clients' own tuning and stay out of the worker.
JAVA_KEYS = {
    "bootstrap.servers": "bootstrap.servers",
    "security.protocol": "security.protocol",
    "sasl.mechanism": "sasl.mechanism",
    "sasl.mechanisms": "sasl.mechanism",
    "ssl.ca.location": "ssl.truststore.location",
    "client.dns.lookup": "client.dns.lookup",
}
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_client_properties(librdkafka: Mapping[str, Any]) -> dict[str, str]:
    """The Java client properties of a librdkafka config; SASL credentials become a JAAS line."""
    props = {JAVA_KEYS[k]: str(v) for k, v in librdkafka.items() if k in JAVA_KEYS}
    user, password = librdkafka.get("sasl.username"), librdkafka.get("sasl.password")
    if user is not None and password is not None:
        mechanism = props.get("sasl.mechanism", "SCRAM-SHA-512")
        module = PLAIN_LOGIN if mechanism == "PLAIN" else SCRAM_LOGIN
        props["sasl.jaas.config"] = (
            f"{module} required username={_quoted(str(user))} password={_quoted(str(password))};"
        )
    if "ssl.truststore.location" in props:
        props["ssl.truststore.type"] = "PEM"
    return props


def worker_properties(settings: Settings) -> dict[str, str]:
    """A distributed worker: its group, its three topics on our broker, JSON without schemas."""
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
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "listeners": f"http://{settings.connect_host}:{settings.connect_port}",
        # Jars are on the worker's classpath (deploy/connect/pom.xml), not in a plugin dir.
        "plugin.discovery": "only_scan",
        "topic.creation.enable": "true",
    }
    client = java_client_properties(settings.kafka_config())
    for prefix in CLIENT_PREFIXES:
        props.update({f"{prefix}{k}": v for k, v in client.items()})
    return props


def render(props: Mapping[str, str]) -> str:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    lines = ["# Rendered by govbus from its settings on every start; edit the settings."]
    return "\n".join(lines + [f"{k}={escape(v)}" for k, v in props.items()]) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.ingest.adapters.connect_worker <properties file>")
        return 2
    Path(argv[0]).write_text(render(worker_properties(load_settings())), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
