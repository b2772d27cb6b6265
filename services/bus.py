"""`govbus run`: the whole bus on one machine, with a demo feed and live progress."""

from __future__ import annotations

import signal
import time

from confluent_kafka import KafkaException

from services.catalog.app import authority_token_file
from services.common.lag import group_lag
from services.common.settings import Settings
from services.hall import hall_url
from services.ingest.adapters.config import AdapterBase
from services.launcher import ProcessGroup, wait_http
from services.progress import progress_line, scrape_totals


def start_core(settings: Settings, group: ProcessGroup) -> None:
    """The catalog first (registry, and the grants published), then router and sink."""
    group.start("catalog-service")
    wait_http(f"{settings.registry_url}/healthz", 30, group)
    group.start("router")
    group.start("sink")
    wait_http(f"http://localhost:{settings.router_metrics_port}/metrics", 60, group)
    wait_http(f"http://localhost:{settings.sink_metrics_port}/metrics", 60, group)


def start_adapters(
    settings: Settings, group: ProcessGroup, kinds: tuple[str, ...] | None = None
) -> dict[str, AdapterBase]:
    """One process per adapter file in ``deploy/adapters/`` (checked before any starts), of
    ``kinds`` only when given. The ``debezium`` ones run with the demo's provider database
    only (``provider_db_url``, set by deploy/with-cdc.sh with the Connect worker up), after
    its tables exist: Debezium's publication names them."""
    from services.ingest.adapters.command import configured_adapters

    cdc = bool(settings.provider_db_url)
    adapters = {
        name: adapter
        for name, adapter in sorted(configured_adapters(settings).items())
        if (cdc or adapter.kind != "debezium") and (kinds is None or adapter.kind in kinds)
    }
    if cdc:
        from services.ingest.sql_feed import create_demo_tables

        create_demo_tables(settings)
    for name in adapters:
        group.start("adapter", name, label=f"adapter-{name}")
    return adapters


def _lag(settings: Settings, group: str) -> int | str:
    try:
        return group_lag(settings, group, settings.source_pattern)
    except KafkaException:  # coordinator moving or loading: show it as unknown this round
        return "?"


def _summed(totals) -> dict[str, float]:
    summed: dict[str, float] = {}
    for one in totals:
        for name, value in one.items():
            summed[name] = summed.get(name, 0.0) + value
    return summed


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def run_bus(settings: Settings, rate: float, interval_s: float = 2.0) -> None:
    # Ctrl-C and a service manager's SIGTERM stop the bus the same way, even when the shell
    # that started us ignored SIGINT (as background jobs do).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    group = ProcessGroup(settings.data_dir / "logs")
    try:
        start_core(settings, group)
        group.start("lag-exporter")
        adapters = start_adapters(settings, group)
        # What comes in: the adapters' counts, and the feed's when it publishes directly.
        ingest_urls = [
            f"http://localhost:{a.metrics_port}/metrics"
            for a in adapters.values()
            if a.metrics_port
        ]
        if settings.provider_db_url:  # the demo's changes go through PostgreSQL and Debezium
            group.start("feed", "--rate", str(rate), "--sql", settings.provider_db_url)
        else:
            group.start("feed", "--rate", str(rate))
            ingest_urls.append(f"http://localhost:{settings.ingest_metrics_port}/metrics")
        for url in ingest_urls:
            wait_http(url, 120, group)
        if adapters:
            print(f"adapters: {', '.join(adapters)}", flush=True)
        print(
            f"data hall (web console): {hall_url(settings)}; log in with a user's API token "
            f"(the first authority's is in {authority_token_file(settings)} unless "
            "GOVBUS_AUTHORITY_TOKEN set it)",
            flush=True,
        )
        print(f"govbus is up; logs in {group.log_dir}. Ctrl-C stops everything.", flush=True)
        previous, last = None, time.monotonic()
        while True:
            time.sleep(interval_s)
            group.check_alive()
            now = time.monotonic()
            lags = {
                name: _lag(settings, group)
                for name, group in (
                    ("router", settings.router_group),
                    ("sink", settings.sink_group),
                )
            }
            line, previous = progress_line(
                _summed(scrape_totals(url) for url in ingest_urls),
                scrape_totals(f"http://localhost:{settings.router_metrics_port}/metrics"),
                scrape_totals(f"http://localhost:{settings.sink_metrics_port}/metrics"),
                lags,
                now - last,
                previous,
            )
            last = now
            print(line, flush=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        group.stop()
        print("all govbus processes stopped.", flush=True)
