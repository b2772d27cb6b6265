"""Run the schema registry API under uvicorn."""

from __future__ import annotations

import uvicorn
from prometheus_client import CollectorRegistry

from services.catalog.registry_api import create_registry_app
from services.catalog.registry_auth import Login
from services.catalog.registry_metrics import instrument
from services.catalog.registry_store import SchemaRegistryStore


def build_registry_server(
    store: SchemaRegistryStore, host: str, port: int, login: Login
) -> uvicorn.Server:
    """A uvicorn server for the registry; the caller runs it (also from a thread, in tests)."""
    app = create_registry_app(store, login)
    instrument(app, CollectorRegistry())
    # The stdlib loop: tests and the benchmark serve the registry from a thread.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, loop="asyncio"
    )
    return uvicorn.Server(config)
