"""The project's broker with TLS switched on by configuration: SASL_SSL on the client listener."""

from __future__ import annotations

import subprocess

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from services.common.settings import Settings
from tests.integration.brokers import PrivateBroker

STOREPASS = "test-keystore-pass"


def self_signed(tmp_path):
    """A PKCS12 key and certificate for localhost, and that certificate as the CA (PEM)."""
    keystore, ca = tmp_path / "broker.p12", tmp_path / "ca.pem"
    keytool = ["keytool", "-keystore", str(keystore), "-storepass", STOREPASS, "-alias", "b"]
    subprocess.run(
        [*keytool, "-genkeypair", "-storetype", "PKCS12", "-keyalg", "RSA", "-keysize", "2048",
         "-dname", "CN=localhost", "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-validity", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    pem = subprocess.run([*keytool, "-exportcert", "-rfc"], check=True, capture_output=True)
    ca.write_bytes(pem.stdout)
    return keystore, ca


def answers(settings: Settings) -> bool:
    try:
        return bool(AdminClient(settings.kafka_config(log_level=0)).list_topics(timeout=5).brokers)
    except KafkaException:
        return False


def test_sasl_ssl_by_configuration(tmp_path):
    keystore, ca = self_signed(tmp_path)
    env = {
        "GOVBUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "GOVBUS_KAFKA_SSL_KEYSTORE_LOCATION": str(keystore),
        "GOVBUS_KAFKA_SSL_KEYSTORE_PASSWORD": STOREPASS,
        "GOVBUS_KAFKA_SSL_CA_LOCATION": str(ca),
    }
    with PrivateBroker(tmp_path / "kafka", env=env, wait_s=180) as broker:
        tls = Settings(
            kafka_bootstrap=broker.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_ssl_ca_location=ca,
        )
        assert answers(tls)
        # SASL without TLS, or TLS with a CA that did not sign the broker's certificate: refused.
        assert not answers(Settings(kafka_bootstrap=broker.bootstrap))
        other_ca = tmp_path / "other"
        other_ca.mkdir()
        _, wrong = self_signed(other_ca)
        assert not answers(tls.model_copy(update={"kafka_ssl_ca_location": wrong}))
