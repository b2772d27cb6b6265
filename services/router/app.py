"""The router process: a Faust worker that runs the data path as a service thread.

Faust (its mode worker) runs the process: start-up, signals, stop, and the service that
starts and watches the data path. The data path itself is a confluent-kafka batch loop
(data_path.py) in one thread: Faust's per-message stream cost about 60 µs an event, and its
aiokafka driver cannot subscribe by pattern. The catalog and grant feeds are followed by
their own threads and applied by the data path between batches.

If the data path fails (an output Kafka did not take, a commit refused), it stops without
committing and the worker exits with a non-zero status; a restart resumes from the last
commit, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading

import faust
import mode
from confluent_kafka import Consumer
from faust.app.base import BootStrategy
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from prometheus_client import CollectorRegistry

from services.common import catalog_feed, grant_feed
from services.common.audit import AuditChain
from services.common.feed import FeedFollower
from services.common.kafka_clients import (
    bus_topic_specs,
    delivery_topic_spec,
    ensure_topics,
    make_admin,
    make_producer,
)
from services.common.metrics import BusMetrics, serve_metrics
from services.common.registry_client import make_registry_client
from services.common.schemas import source_schema
from services.common.serde import AvroCodec
from services.common.settings import Settings, load_service_settings
from services.common.topics import CATALOG, GRANTS
from services.router.backfill_runner import BackfillRunner
from services.router.data_path import DataPath, consumer_config
from services.router.forwarder import OutputWriter
from services.router.live_grants import GrantSync
from services.router.routing import Router

log = logging.getLogger("govbus.router")


def new_audit_chain(settings: Settings) -> AuditChain:
    """This process's own audit chain, keyed with the authority's audit key."""
    return AuditChain(settings.audit_key.get_secret_value().encode())


def build_router(settings: Settings) -> Router:
    secret = settings.mask_secret.get_secret_value().encode()
    codec = AvroCodec(make_registry_client(settings))
    return Router(codec, secret, source_schema(settings.schemas_dir))


def build_data_path(settings: Settings, metrics: BusMetrics) -> DataPath:
    """The data path on the live catalog and grants, each read to its end first."""
    admin = make_admin(settings)
    ensure_topics(admin, bus_topic_specs(settings))
    catalog = FeedFollower(settings, CATALOG, catalog_feed.decode).start()
    grants = FeedFollower(settings, GRANTS, grant_feed.decode).start()
    catalog.wait_caught_up()
    grants.wait_caught_up()
    router = build_router(settings)
    writer = OutputWriter(
        make_producer(settings, **{"delivery.report.only.error": True}), new_audit_chain(settings)
    )
    log.info("audit chain %s", writer.chain_id)

    def ensure_delivery_topics(topics: list[str]) -> None:
        ensure_topics(admin, [delivery_topic_spec(t, settings) for t in topics])

    sync = GrantSync(settings.source_pattern, router, metrics, ensure_delivery_topics)
    return DataPath(
        settings,
        Consumer(consumer_config(settings)),
        router,
        sync,
        writer,
        metrics,
        catalog,
        grants,
        lambda: BackfillRunner(settings, router, writer, settings.central_store_url),
    )


class DataPathService(mode.Service):
    """Runs the data path in its own thread; a failure there stops the worker non-zero."""

    def __init__(self, path: DataPath, followers: list[FeedFollower], **kwargs) -> None:
        super().__init__(**kwargs)
        self._path = path
        self._followers = followers
        self._stop_flag = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended: asyncio.Future | None = None
        self.worker: mode.Worker | None = None

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()

        def run() -> None:
            error = None
            try:
                self._path.run(self._stop_flag)
            except BaseException as exc:  # noqa: BLE001 - handed to the worker
                log.exception("data path failed; stopping without commit")
                error = exc
            loop.call_soon_threadsafe(self._ended.set_result, error)

        self._thread = threading.Thread(target=run, name="data-path", daemon=True)
        self._thread.start()

    @mode.Service.task
    async def _watch(self) -> None:
        error = await self._ended
        if error is not None and self.worker is not None:
            self.worker.crash_reason = error  # the worker re-raises it and exits non-zero
        if self.worker is not None and not self.worker.should_stop:
            await self.worker.stop()

    async def on_stop(self) -> None:
        self._stop_flag.set()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 60)
        for follower in self._followers:
            follower.stop()


class RouterBoot(BootStrategy):
    """Faust's own Kafka clients stay off: the data path brings its own (confluent-kafka)."""

    enable_kafka = False


class RouterApp(faust.App):
    BootStrategy = RouterBoot


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """This process's Kafka principal as Faust's ``broker_credentials`` (aiokafka)."""
    security = settings.kafka_security()
    protocol = security["security.protocol"]
    context = None
    if protocol in ("SASL_SSL", "SSL"):
        context = ssl.create_default_context(cafile=security.get("ssl.ca.location"))
    if protocol.startswith("SASL_"):
        return SASLCredentials(
            username=security["sasl.username"],
            password=security["sasl.password"],
            mechanism=security["sasl.mechanism"],
            ssl_context=context,
        )
    return SSLCredentials(context) if context is not None else None


def create_app(settings: Settings) -> faust.App:
    """The Faust app: no agents and no Kafka clients of its own; it hosts the data path."""
    return RouterApp(
        settings.router_group,
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        topic_disable_leader=True,
        web_enabled=False,
    )


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(levelname)s %(message)s")
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_service_settings()
    metrics = BusMetrics(CollectorRegistry())
    path = build_data_path(settings, metrics)
    port = serve_metrics(metrics.registry, settings.router_metrics_port)
    service = DataPathService(path, [path.catalog, path.grants])
    app = create_app(settings)
    log.info("router up: following %s, metrics on :%d", settings.source_pattern, port)
    # The worker keeps this logging: its own set-up would silence the bus's loggers, and grant
    # changes and backfills are what an operator looks for in this log.
    worker = faust.Worker(app, service, loglevel="WARNING", override_logging=False)
    service.worker = worker
    worker.execute_from_commandline()
