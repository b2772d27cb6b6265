"""One typed, frozen settings object per process, read from the environment once.

Every variable is prefixed ``GOVBUS_`` (``GOVBUS_KAFKA_BOOTSTRAP``, ``GOVBUS_STORE_URL`` ...).
"""

from __future__ import annotations

import base64
import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


DEMO_MASK_SECRET = "govbus-demo-mask-secret-change-me"
DEMO_REGISTRY_PASSWORD = "govbus-demo-registry-password"
DEMO_AUDIT_KEY = "govbus-demo-audit-key-change-me"


def _dates(value: str) -> frozenset[dt.date]:
    """Comma-separated ISO dates; a bad one raises ValueError naming it."""
    return frozenset(dt.date.fromisoformat(d.strip()) for d in value.split(",") if d.strip())


class ConfigError(RuntimeError):
    """A setting or config file is wrong; the message names the key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVBUS_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "localhost:9092"
    # How every client authenticates to Kafka. The default is the project's own broker
    # (deploy/kafka/kafka.sh), whose service password that script generates into the file.
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL", "SSL", "PLAINTEXT"] = (
        "SASL_PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str = Field("govbus", min_length=1)
    # The password itself, or else the file holding it.
    kafka_password: SecretStr | None = None
    kafka_password_file: Path = REPO_ROOT / ".govbus" / "kafka-service.password"
    # CA certificate (PEM) the clients trust, with SASL_SSL or SSL; the system's CAs if unset.
    kafka_ssl_ca_location: Path | None = None
    # Derives the SCRAM passwords of department accounts; generated into a private file
    # under data_dir when unset.
    kafka_account_secret: SecretStr | None = None
    registry_url: str = "http://localhost:8081"
    registry_host: str = "127.0.0.1"
    registry_port: int = Field(8081, ge=1, le=65535)
    data_dir: Path = REPO_ROOT / ".govbus"
    store_url: str = ""
    registry_store_url: str = ""
    control_store_url: str = ""
    # The control-plane API (served by the catalog service) and the token the CLI sends.
    api_url: str = "http://localhost:8081/api"
    token: SecretStr | None = None
    # Token of the first authority user on a new control store; generated when unset.
    authority_token: SecretStr | None = None
    # Working days each open workflow step may take, and the public holidays not counted.
    provider_due_days: int = Field(10, ge=1)
    authority_due_days: int = Field(5, ge=1)
    holidays: str = Field("", description="comma-separated dates, e.g. 2026-10-01,2026-10-02")
    # Weekend days worked to make up for a holiday (调休), for years chinesecalendar lacks.
    workdays: str = Field("", description="comma-separated dates, e.g. 2027-02-06")
    # How often the catalog service computes the scorecard (govbus_scorecard_*, /api/scorecard).
    scorecard_interval_s: float = Field(60.0, gt=0)
    catalog_dir: Path = REPO_ROOT / "deploy" / "catalog"
    grants_dir: Path = REPO_ROOT / "deploy" / "grants"
    schemas_dir: Path = REPO_ROOT / "schemas" / "avro"
    # One YAML file per provider adapter (Debezium CDC, polling, file drop).
    adapters_dir: Path = REPO_ROOT / "deploy" / "adapters"
    # The Kafka Connect worker that runs the Debezium connectors (deploy/connect/connect.sh).
    connect_host: str = "127.0.0.1"
    connect_port: int = Field(8083, ge=1, le=65535)
    connect_group: str = Field("govbus-connect", pattern=r"^[A-Za-z0-9._-]+$")
    # The demo providers' database: when set, `govbus run` writes the demo's changes as SQL
    # into its tables and the Debezium adapters in adapters_dir carry them onto the bus.
    provider_db_url: str = ""
    # Master secret for per-consumer HMAC keys. The demo default is public: the bus refuses
    # to start with it unless demo mode is on (refuse_demo_secrets).
    mask_secret: SecretStr = SecretStr(DEMO_MASK_SECRET)
    # The bus's own services sign in to the schema registry as this user (HTTP basic auth);
    # the registry gives it the authority's rights. The demo password is public too.
    registry_user: str = Field("govbus", pattern=r"^[A-Za-z0-9_.-]+$")
    registry_password: SecretStr = SecretStr(DEMO_REGISTRY_PASSWORD)
    # Public demo defaults are accepted only with GOVBUS_DEMO_MODE=1 (make run, make demo).
    demo_mode: bool = False
    # API tokens stop working this many days after they are issued or rotated.
    token_ttl_days: float = Field(90, gt=0)
    # Grant previews per user, in the `limits` notation ("20/minute", "100/hour").
    preview_rate: str = "20/minute"
    # The data hall's session cookie: Secure (sent over HTTPS only) when the hall is served
    # behind TLS; a session ends after this many idle hours, or when its token stops working.
    hall_secure_cookie: bool = False
    hall_session_idle_hours: float = Field(8, gt=0)
    # The authority's key for the audit trail's HMAC chains: whoever can write govbus.audit but
    # lacks it cannot forge a record that verifies. The demo default is public.
    audit_key: SecretStr = SecretStr(DEMO_AUDIT_KEY)
    # The authority's key pair for dead letters (base64 X25519, ``govbus dlq keygen``): ingest
    # seals a rejected change's original to the public key; only the private key opens it.
    # Neither set: one pair kept in ``<data_dir>/dlq-authority.key`` (a single machine).
    dlq_public_key: str | None = None
    dlq_private_key: SecretStr | None = None
    # Source topics the router and sink follow (``gov.<provider>.<resource>``).
    source_pattern: str = r"^gov\..+\..+"
    router_group: str = "govbus-router"
    # How soon the group gives a dead router's partitions to the others (librdkafka's default;
    # the broker's group.min.session.timeout.ms, 6 s by default, is the floor).
    router_session_timeout_ms: int = Field(45_000, ge=1000)
    sink_group: str = "govbus-central-store"
    router_metrics_port: int = Field(9101, ge=0, le=65535)
    sink_metrics_port: int = Field(9102, ge=0, le=65535)
    ingest_metrics_port: int = Field(9103, ge=0, le=65535)
    lag_metrics_port: int = Field(9105, ge=0, le=65535)
    topic_partitions: int = Field(3, ge=1)
    max_message_bytes: int = Field(1_000_000, ge=1024)
    batch_size: int = Field(1000, ge=1)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for host in value.split(","):
            if ":" not in host:
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("preview_rate")
    @classmethod
    def _rate_parses(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError naming what it could not read
        return value

    @field_validator("dlq_public_key", "dlq_private_key")
    @classmethod
    def _is_a_curve25519_key(cls, value):
        if value is not None:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            try:
                raw = base64.b64decode(text, validate=True)
            except ValueError as exc:
                raise ValueError("expected a base64 key (govbus dlq keygen makes one)") from exc
            if len(raw) != 32:
                raise ValueError(f"expected a 32-byte key, got {len(raw)} bytes")
        return value

    @property
    def central_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'store.db'}"

    @staticmethod
    def printable_url(url: str) -> str:
        """A database URL fit for logs: the password masked."""
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)

    @field_validator("holidays", "workdays")
    @classmethod
    def _are_dates(cls, value: str) -> str:
        _dates(value)
        return value

    @property
    def holiday_dates(self) -> frozenset[dt.date]:
        return _dates(self.holidays)

    @property
    def workday_dates(self) -> frozenset[dt.date]:
        return _dates(self.workdays)

    @property
    def connect_url(self) -> str:
        return f"http://{self.connect_host}:{self.connect_port}"

    @property
    def control_url(self) -> str:
        return self.control_store_url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    @property
    def schema_store_url(self) -> str:
        return self.registry_store_url or f"sqlite:///{self.data_dir / 'registry.db'}"

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka configuration shared by every client of this process."""
        return {"bootstrap.servers": self.kafka_bootstrap, **self.kafka_security(), **overrides}

    def kafka_security(
        self, username: str | None = None, password: str | None = None
    ) -> dict[str, str]:
        """The librdkafka security keys: this process's principal, or the one named."""
        config = {"security.protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL_"):
            config |= {
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": username or self.kafka_username,
                "sasl.password": password if username else self.kafka_service_password(),
            }
        if self.kafka_security_protocol in ("SASL_SSL", "SSL") and self.kafka_ssl_ca_location:
            config["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        return config

    def kafka_service_password(self) -> str:
        if self.kafka_password is not None:
            return self.kafka_password.get_secret_value()
        try:
            return self.kafka_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"GOVBUS_KAFKA_PASSWORD_FILE: cannot read {self.kafka_password_file} "
                f"({exc.strerror}); set GOVBUS_KAFKA_PASSWORD, or start the project's broker "
                "(deploy/kafka/kafka.sh start), which creates it"
            ) from exc

    @property
    def registry_auth(self) -> str:
        """``user:password`` as confluent-kafka's ``basic.auth.user.info`` takes it."""
        return f"{self.registry_user}:{self.registry_password.get_secret_value()}"

    @property
    def token_ttl(self) -> dt.timedelta:
        return dt.timedelta(days=self.token_ttl_days)

    def refuse_demo_secrets(self) -> None:
        """A service refuses to start with a public demo secret unless demo mode is on."""
        public = [
            name
            for name, value, demo in (
                ("GOVBUS_MASK_SECRET", self.mask_secret, DEMO_MASK_SECRET),
                ("GOVBUS_REGISTRY_PASSWORD", self.registry_password, DEMO_REGISTRY_PASSWORD),
                ("GOVBUS_AUDIT_KEY", self.audit_key, DEMO_AUDIT_KEY),
            )
            if value.get_secret_value() == demo
        ]
        if public and not self.demo_mode:
            raise ConfigError(
                f"{', '.join(public)}: still the public demo value; set a secret of your own, "
                "or GOVBUS_DEMO_MODE=1 for a demo"
            )

    def __repr_args__(self):  # secrets stay masked when printed
        for key, value in super().__repr_args__():
            secret = key in SECRET_SETTINGS and value is not None
            yield key, ("**********" if secret else value)


SECRET_SETTINGS = (
    "mask_secret",
    "audit_key",
    "token",
    "authority_token",
    "registry_password",
    "dlq_private_key",
    "kafka_password",
    "kafka_account_secret",
)


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read the environment once; a bad value stops start-up naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GOVBUS_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"bad configuration: {problems}") from exc


def load_service_settings() -> Settings:
    """The settings of a bus service: as load_settings, and no public demo secret outside
    demo mode."""
    settings = load_settings()
    settings.refuse_demo_secrets()
    return settings
