"""One adapter process: its publisher, metrics endpoint, position store and stop signal."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics, serve_metrics
from services.common.settings import Settings
from services.ingest.adapters.output import AdapterMetrics, AdapterOutput
from services.ingest.adapters.state import AdapterState
from services.ingest.feed import build_publisher

log = logging.getLogger("govbus.adapter")


@dataclass
class AdapterProcess:
    name: str
    settings: Settings
    output: AdapterOutput
    metrics: AdapterMetrics
    state: AdapterState
    stopping: threading.Event


@contextlib.contextmanager
def adapter_process(name: str, settings: Settings, metrics_port: int) -> Iterator[AdapterProcess]:
    """Everything an adapter runs with; SIGTERM and SIGINT set ``stopping``."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s adapter {name} %(levelname)s %(message)s"
    )
    registry = CollectorRegistry()
    metrics = AdapterMetrics(registry)
    port = serve_metrics(registry, metrics_port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(registry), producer)
    directory = settings.data_dir / "adapters"
    directory.mkdir(parents=True, exist_ok=True)
    state = AdapterState(directory / f"{name}.db")
    log.info("up: metrics on :%d, position in %s", port, directory / f"{name}.db")
    try:
        yield AdapterProcess(
            name,
            settings,
            AdapterOutput(name, publisher, producer, metrics),
            metrics,
            state,
            stopping,
        )
    finally:
        publisher.close()
        state.close()
        producer.flush(10)
