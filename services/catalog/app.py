"""The catalog service process. For now: the schema registry (Confluent REST subset)."""

from __future__ import annotations

import logging

from services.catalog.registry_server import serve_registry
from services.common.settings import load_settings


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s catalog %(levelname)s %(message)s")
    settings = load_settings()
    logging.getLogger("govbus.catalog").info(
        "schema registry on :%d, store %s",
        settings.registry_port,
        settings.printable_url(settings.schema_store_url),
    )
    serve_registry(settings.schema_store_url, settings.registry_host, settings.registry_port)
