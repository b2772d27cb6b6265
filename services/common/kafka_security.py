"""The client security settings in the forms other Kafka clients take.

``Settings.kafka_security()`` is the one source (librdkafka's keys); this module renders the
same principal for Java clients (Kafka's CLI tools with ``--command-config``, a Kafka Connect
worker, ``connect_worker.py``); the router's Faust app renders it for aiokafka itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from services.common.private_files import write_private
from services.common.settings import Settings

LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _jaas_quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_client_properties(
    settings: Settings, username: str | None = None, password: str | None = None
) -> dict[str, str]:
    """Java client properties (``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``
    and the trusted CA) for this process's principal, or the one named."""
    librdkafka = settings.kafka_security(username, password)
    props = {"security.protocol": librdkafka["security.protocol"]}
    if "sasl.mechanism" in librdkafka:
        mechanism = librdkafka["sasl.mechanism"]
        props["sasl.mechanism"] = mechanism
        props["sasl.jaas.config"] = (
            f"{LOGIN_MODULES[mechanism]} required"
            f" username={_jaas_quoted(librdkafka['sasl.username'])}"
            f" password={_jaas_quoted(librdkafka['sasl.password'])};"
        )
    if "ssl.ca.location" in librdkafka:
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = librdkafka["ssl.ca.location"]
    return props


def properties_text(props: Mapping[str, str]) -> str:
    """``props`` as a Java properties file."""
    # java.util.Properties treats a backslash as an escape: double it.
    return "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())


def write_java_client_properties(
    settings: Settings, path: Path, username: str | None = None, password: str | None = None
) -> Path:
    """Write the Java client properties to ``path``, created private (it holds a password)."""
    props = java_client_properties(settings, username, password)
    write_private(path, properties_text({"bootstrap.servers": settings.kafka_bootstrap, **props}))
    return path
