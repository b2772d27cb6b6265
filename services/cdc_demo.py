"""The demo with a real provider database: tables, Debezium adapters, and the SQL feed."""

from __future__ import annotations

import psycopg

from services.common.settings import Settings
from services.ingest.adapters.command import RUNNERS  # noqa: F401 - registers the kinds
from services.ingest.adapters.config import load_adapters
from services.ingest.demo_data import RESOURCES
from services.ingest.sql_feed import create_tables, demo_records, pg_url
from services.launcher import ProcessGroup, wait_http


def start_cdc(settings: Settings, group: ProcessGroup) -> list[int]:
    """Provider tables first (Debezium's publication names them), then one process per
    ``debezium`` adapter file; returns their metrics ports."""
    records = demo_records(settings)
    with psycopg.connect(pg_url(settings.provider_db_url), autocommit=True) as conn:
        create_tables(conn, [records[r] for r in RESOURCES])
    adapters = load_adapters(settings.adapters_dir)
    ports = []
    for i, name in enumerate(n for n, a in adapters.items() if a.kind == "debezium"):
        port = settings.adapter_metrics_port + i
        group.start("adapter", name, "--metrics-port", str(port), label=f"adapter-{name}")
        ports.append(port)
    for port in ports:
        wait_http(f"http://localhost:{port}/metrics", 120, group)
    return ports
