"""Real broker, real registry, real processes: the fixtures of the integration tests.

The session starts its own Kafka (KRaft) through the project's script on a port of its own,
or reuses the broker named in GOVBUS_TEST_KAFKA_BOOTSTRAP. Each test gets its own providers,
consumers and consumer groups (a unique tag in their codes), so tests never see each other.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from services.catalog.registry_auth import service_login
from services.catalog.registry_server import build_registry_server
from services.catalog.registry_store import SchemaRegistryStore
from services.common.settings import REPO_ROOT, Settings
from services.launcher import ProcessGroup
from tests.integration.seed import publish_file_feeds

KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port_pair() -> int:
    """A port p with p+1 free too: the broker listens on p, its controller on p+1."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two adjacent free ports")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    reuse = os.environ.get("GOVBUS_TEST_KAFKA_BOOTSTRAP")
    if reuse:
        yield reuse
        return
    bootstrap = f"localhost:{free_port_pair()}"
    env = {
        **os.environ,
        "GOVBUS_KAFKA_BOOTSTRAP": bootstrap,
        "GOVBUS_KAFKA_DIR": str(REPO_ROOT / ".govbus" / "test-kafka"),
        "GOVBUS_KAFKA_WAIT_S": "90",
    }
    subprocess.run(["bash", str(KAFKA_SH), "reset"], env=env, check=True)
    subprocess.run(["bash", str(KAFKA_SH), "start"], env=env, check=True)
    try:
        yield bootstrap
    finally:
        subprocess.run(["bash", str(KAFKA_SH), "stop"], env=env, check=False)


@pytest.fixture(scope="session")
def registry_url(tmp_path_factory) -> Iterator[str]:
    store = SchemaRegistryStore(f"sqlite:///{tmp_path_factory.mktemp('registry') / 'r.db'}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    login = service_login(Settings())
    server = build_registry_server(store, "127.0.0.1", sock.getsockname()[1], login)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    wait_until(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, 15, "registry")
    yield url
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s}s (last error: {last})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command_env(bootstrap: str, data_dir: Path, tag: str, **extra: str) -> dict[str, str]:
    """The environment of a `govbus` command a test runs: its own registry port, data dir,
    consumer groups and metrics ports, demo mode on (as `make` sets it); ``extra``: more
    GOVBUS_ variables."""
    registry_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")}
    env.update(
        {
            "GOVBUS_KAFKA_BOOTSTRAP": bootstrap,
            "GOVBUS_REGISTRY_PORT": str(registry_port),
            "GOVBUS_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
            "GOVBUS_DATA_DIR": str(data_dir),
            "GOVBUS_ROUTER_GROUP": f"router-{tag}",
            "GOVBUS_SINK_GROUP": f"sink-{tag}",
            "GOVBUS_ROUTER_METRICS_PORT": str(free_port()),
            "GOVBUS_SINK_METRICS_PORT": str(free_port()),
            "GOVBUS_INGEST_METRICS_PORT": str(free_port()),
            "GOVBUS_LAG_METRICS_PORT": str(free_port()),
            "GOVBUS_DEMO_MODE": "1",
            **extra,
        }
    )
    return env


def _tagged_config(tag: str, target: Path) -> None:
    """Copy deploy/catalog and deploy/grants with every department code suffixed by the tag."""
    src = REPO_ROOT / "deploy"
    catalog = yaml.safe_load((src / "catalog" / "resources.yaml").read_text(encoding="utf-8"))
    departments = yaml.safe_load((src / "catalog" / "departments.yaml").read_text("utf-8"))
    grants = yaml.safe_load((src / "grants" / "demo.yaml").read_text(encoding="utf-8"))
    departments["departments"] = {f"{k}_{tag}": v for k, v in departments["departments"].items()}
    for r in catalog["resources"]:
        r["provider"] = f"{r['provider']}_{tag}"
    for g in grants["grants"]:
        # Grant ids are keys of the shared govbus.grants and govbus.backfills topics.
        g["id"] = f"{g['id']}-{tag}"
        g["consumer"] = f"{g['consumer']}_{tag}"
        provider, code = g["resource"].split(".")
        g["resource"] = f"{provider}_{tag}.{code}"
    (target / "catalog").mkdir(parents=True)
    (target / "grants").mkdir(parents=True)
    dump = lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)  # noqa: E731
    (target / "catalog" / "resources.yaml").write_text(dump(catalog), encoding="utf-8")
    (target / "catalog" / "departments.yaml").write_text(dump(departments), encoding="utf-8")
    (target / "grants" / "demo.yaml").write_text(dump(grants), encoding="utf-8")


@dataclass
class Bus:
    """One test's own bus: settings, and the processes it runs with them."""

    tag: str
    settings: Settings
    processes: ProcessGroup

    def start(self, name: str) -> None:
        self.processes.start(name)
        port = {
            "router": self.settings.router_metrics_port,
            "sink": self.settings.sink_metrics_port,
        }
        url = f"http://127.0.0.1:{port[name]}/metrics"

        def up() -> bool:
            self.processes.check_alive()
            return httpx.get(url, timeout=1).status_code == 200

        wait_until(up, 60, name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.processes.kill(name, sig)


def new_bus(bootstrap: str, registry_url: str, tmp_path: Path, **extra: str) -> Bus:
    """A test's own bus: tagged departments, groups and metrics ports; ``extra`` settings."""
    tag = uuid.uuid4().hex[:8]
    _tagged_config(tag, tmp_path / "config")
    values = {
        "kafka_bootstrap": bootstrap,
        "registry_url": registry_url,
        "data_dir": str(tmp_path / "data"),
        "catalog_dir": str(tmp_path / "config" / "catalog"),
        "grants_dir": str(tmp_path / "config" / "grants"),
        "source_pattern": rf"^gov\.[a-z]+_{tag}\..+",
        "router_group": f"router-{tag}",
        "sink_group": f"sink-{tag}",
        "router_metrics_port": str(free_port()),
        "sink_metrics_port": str(free_port()),
        "batch_size": "200",
        # The public demo secrets: the session registry admits the demo service password.
        "demo_mode": "1",
        **extra,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")}
    env.update({f"GOVBUS_{k.upper()}": v for k, v in values.items()})
    return Bus(tag, Settings(**values), ProcessGroup(tmp_path / "logs", env))


@pytest.fixture
def bus(kafka_bootstrap: str, registry_url: str, tmp_path: Path) -> Iterator[Bus]:
    bus = new_bus(kafka_bootstrap, registry_url, tmp_path)
    # What the control plane does on its first start: the test's catalog and grants, published.
    publish_file_feeds(bus.settings)
    yield bus
    bus.processes.stop()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
