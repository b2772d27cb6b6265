"""One typed, frozen settings object per process, read from the environment once.

Every variable is prefixed ``GOVBUS_`` (``GOVBUS_KAFKA_BOOTSTRAP``, ``GOVBUS_STORE_URL`` ...).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(RuntimeError):
    """A setting or config file is wrong; the message names the key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVBUS_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "localhost:9092"
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
    # Master secret for per-consumer HMAC keys; the demo default is public, so real
    # deployments must set it.
    mask_secret: SecretStr = SecretStr("govbus-demo-mask-secret-change-me")
    # Source topics the router and sink follow (``gov.<provider>.<resource>``).
    source_pattern: str = r"^gov\..+\..+"
    router_group: str = "govbus-router"
    sink_group: str = "govbus-central-store"
    router_metrics_port: int = Field(9101, ge=0, le=65535)
    sink_metrics_port: int = Field(9102, ge=0, le=65535)
    ingest_metrics_port: int = Field(9103, ge=0, le=65535)
    lag_metrics_port: int = Field(9105, ge=0, le=65535)
    adapter_metrics_port: int = Field(9106, ge=0, le=65535)
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

    @property
    def central_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'store.db'}"

    @staticmethod
    def printable_url(url: str) -> str:
        """A database URL fit for logs: the password masked."""
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)

    @field_validator("holidays")
    @classmethod
    def _holidays_are_dates(cls, value: str) -> str:
        for day in filter(None, (d.strip() for d in value.split(","))):
            dt.date.fromisoformat(day)
        return value

    @property
    def holiday_dates(self) -> frozenset[dt.date]:
        return frozenset(
            dt.date.fromisoformat(d.strip()) for d in self.holidays.split(",") if d.strip()
        )

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
        return {"bootstrap.servers": self.kafka_bootstrap, **overrides}

    def __repr_args__(self):  # secrets stay masked when printed
        for key, value in super().__repr_args__():
            secret = key in ("mask_secret", "token", "authority_token") and value is not None
            yield key, ("**********" if secret else value)


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
