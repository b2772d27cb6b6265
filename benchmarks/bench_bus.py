"""The bench's own corner of a broker: a registry, resources and grants per lane, its topics.

Every contender of ``router_bench.py`` runs in a lane of its own: one copy of the bench
resource (provider ``p<tag><lane>``, so its own source topic) with 1 or 4 active grants (so
its own delivery topics). The lanes' resources and grants are published on govbus.catalog and
govbus.grants before the run, as the control plane's outbox does, and taken off afterwards;
every topic whose name holds the run's tag is deleted at the end.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from confluent_kafka import ConsumerGroupState

from services.catalog.registry_auth import service_login
from services.catalog.registry_server import build_registry_server
from services.catalog.registry_store import SchemaRegistryStore
from services.common import catalog_feed, grant_feed
from services.common.catalog import GrantState
from services.common.catalog_feed import CatalogRecord
from services.common.config_files import file_records
from services.common.grant_feed import GrantRecord
from services.common.kafka_clients import (
    TopicSpec,
    bus_topic_specs,
    delivery_topic_spec,
    ensure_topics,
    make_admin,
    make_producer,
)
from services.common.settings import Settings
from services.common.topics import CATALOG, GRANTS

REPO = Path(__file__).resolve().parents[1]
RESOURCE = "resident_population"


@dataclass(frozen=True)
class Lane:
    """One contender's resource (its source topic) and its grants (its delivery topics)."""

    name: str
    tag: str
    consumers: int = 1

    @property
    def provider(self) -> str:
        return f"p{self.tag}{self.name}"

    @property
    def source(self) -> str:
        return f"gov.{self.provider}.{RESOURCE}"

    @property
    def pattern(self) -> str:
        return rf"^gov\.{self.provider}\.{RESOURCE}$"

    @property
    def group(self) -> str:
        return f"bench-{self.tag}-{self.name}"

    @property
    def deliveries(self) -> list[str]:
        return [f"deliver.c{self.tag}{self.name}{i}.{RESOURCE}" for i in range(self.consumers)]


def start_registry(db: Path) -> str:
    store = SchemaRegistryStore(f"sqlite:///{db}")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    login = service_login(Settings(demo_mode=True))
    server = build_registry_server(store, "127.0.0.1", sock.getsockname()[1], login)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("registry did not start")


def write_config(lanes: list[Lane], target: Path) -> None:
    """Per lane: the demo resident-population resource and its consumers' grants, all the
    demo's ``mca`` terms (fields, masking) without the row filter, so every event is
    delivered once per grant."""
    catalog = yaml.safe_load((REPO / "deploy/catalog/resources.yaml").read_text("utf-8"))
    grants = yaml.safe_load((REPO / "deploy/grants/demo.yaml").read_text("utf-8"))
    entry = next(r for r in catalog["resources"] if r["code"] == RESOURCE)
    terms = next(g for g in grants["grants"] if g["id"] == "mca-resident-population")
    resources, granted = [], []
    for lane in lanes:
        resources.append({**entry, "provider": lane.provider})
        for i, topic in enumerate(lane.deliveries):
            granted.append(
                {
                    **terms,
                    # A key of the shared govbus.grants: never a real grant's id.
                    "id": f"bench-{lane.tag}-{lane.name}-{i}",
                    "consumer": topic.split(".")[1],
                    "resource": f"{lane.provider}.{RESOURCE}",
                    "row_filter": None,
                }
            )
    for sub, name, data in (
        ("catalog", "resources.yaml", {"resources": resources}),
        ("grants", "bench.yaml", {"grants": granted}),
    ):
        (target / sub).mkdir(parents=True, exist_ok=True)
        (target / sub / name).write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")


@dataclass
class BenchBus:
    """Settings and environment of the bench's processes, and its records on the feeds."""

    tag: str
    work: Path
    bootstrap: str
    lanes: list[Lane]
    values: dict[str, str] = field(default_factory=dict)
    feeds: tuple[list[CatalogRecord], list[GrantRecord]] | None = None

    def start(self) -> Settings:
        write_config(self.lanes, self.work / "config")
        self.values = {
            "kafka_bootstrap": self.bootstrap,
            "registry_url": start_registry(self.work / "registry.db"),
            "data_dir": str(self.work / "data"),
            "catalog_dir": str(self.work / "config" / "catalog"),
            "grants_dir": str(self.work / "config" / "grants"),
            "router_metrics_port": "0",
            "demo_mode": "1",  # the demo secrets, which the bench registry admits
        }
        settings = self.settings()
        records = file_records(settings.catalog_dir, settings.grants_dir, settings.schemas_dir)
        publish_feeds(settings, *records)
        self.feeds = records
        return settings

    def settings(self, lane: Lane | None = None) -> Settings:
        return Settings(**self.lane_values(lane))

    def lane_values(self, lane: Lane | None) -> dict[str, str]:
        if lane is None:
            return dict(self.values)
        return {**self.values, "source_pattern": lane.pattern, "router_group": lane.group}

    def env(self, lane: Lane) -> dict[str, str]:
        """The environment of a lane's process: the bench's settings and nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")}
        env.update({f"GOVBUS_{k.upper()}": v for k, v in self.lane_values(lane).items()})
        env["PYTHONPATH"] = str(REPO)
        return env

    def stop(self) -> None:
        settings = self.settings()
        if self.feeds is not None:
            publish_feeds(settings, *self.feeds, remove=True)
        admin = make_admin(settings)
        mine = [t for t in admin.list_topics(timeout=10).topics if self.tag in t]
        for future in admin.delete_topics(mine, operation_timeout=30).values() if mine else []:
            future.result()


def publish_feeds(
    settings: Settings, resources: list[CatalogRecord], grants: list[GrantRecord], remove=False
) -> None:
    """Put the records on govbus.catalog and govbus.grants; with ``remove``, take them off
    again (the grants revoked, then every key deleted)."""
    ensure_topics(make_admin(settings), bus_topic_specs(settings))
    producer = make_producer(settings)
    for r in resources if not remove else []:
        producer.produce(CATALOG, catalog_feed.encode(r), r.resource_id.encode())
    for g in grants:
        if remove:
            g = g.model_copy(
                update={"grant": g.grant.model_copy(update={"state": GrantState.REVOKED})}
            )
        producer.produce(GRANTS, grant_feed.encode(g), g.grant.id.encode())
        if remove:
            producer.produce(GRANTS, None, g.grant.id.encode())
    for r in resources if remove else []:
        producer.produce(CATALOG, None, r.resource_id.encode())
    assert producer.flush(30) == 0


def output_topic_spec(name: str, settings: Settings) -> TopicSpec:
    """A delivery topic whose records carry the broker's append time: rates and latencies
    read from it do not depend on what timestamp a contender sets (Quix Streams keeps the
    input's)."""
    spec = delivery_topic_spec(name, settings)
    return TopicSpec(
        name, spec.partitions, {**spec.config, "message.timestamp.type": "LogAppendTime"}
    )


def wait_for_group(
    settings: Settings,
    group: str,
    members: int,
    alive: Callable[[], None],
    timeout_s: float = 180,
) -> None:
    """Until ``group`` is stable with ``members`` members (``alive`` raises if one died)."""
    admin = make_admin(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        found = admin.describe_consumer_groups([group])[group].result()
        if found.state == ConsumerGroupState.STABLE and len(found.members) == members:
            return
        time.sleep(0.2)
    raise TimeoutError(f"group {group} not stable with {members} members in {timeout_s}s")
