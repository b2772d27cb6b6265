"""The catalog service process: the schema registry and, under /api, the control plane.

On a new control store it imports the catalog and grant files under deploy/ and creates the
first authority user; at every start it publishes every grant's state to govbus.grants, so
the router follows what the store says before any request comes in.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.catalog.control_api import create_control_app
from services.catalog.control_plane import ControlPlane, bootstrap_authority
from services.catalog.control_store import ControlStore
from services.catalog.registry_api import create_registry_app
from services.catalog.registry_metrics import instrument
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.workflow import SYSTEM, Calendar
from services.common.grant_feed import publish_grants, read_grants
from services.common.kafka_clients import bus_topic_specs, ensure_topics, make_admin
from services.common.settings import Settings, load_settings

log = logging.getLogger("govbus.catalog")
EXPIRY_SWEEP_S = 30.0


def build_control_plane(settings: Settings) -> ControlPlane:
    return ControlPlane(
        ControlStore(settings.control_url),
        functools.partial(publish_grants, settings),
        Calendar(
            holidays=settings.holiday_dates,
            provider_days=settings.provider_due_days,
            authority_days=settings.authority_due_days,
        ),
        settings.schemas_dir,
        settings.mask_secret.get_secret_value().encode(),
    )


def start_control_plane(settings: Settings, plane: ControlPlane) -> None:
    """First start: import deploy/ and create the authority user. Every start: publish."""
    ensure_topics(make_admin(settings), bus_topic_specs(settings))
    if not plane.store.resources():
        counts = plane.import_folder(
            SYSTEM, settings.catalog_dir, settings.grants_dir, settings.schemas_dir
        )
        log.info("new control store: imported %s", counts)
    given = settings.authority_token.get_secret_value() if settings.authority_token else None
    token = bootstrap_authority(plane.store, given)
    if token is not None and given is None:
        path = authority_token_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n", encoding="utf-8")
        os.chmod(path, 0o600)
        log.info("authority user 'admin' created; its token is in %s", path)
    published = plane.publish_all(read_grants(settings).values())
    log.info("published %d grants to govbus.grants", published)


def authority_token_file(settings: Settings) -> Path:
    return settings.data_dir / "authority.token"


def build_catalog_app(registry: SchemaRegistryStore, plane: ControlPlane) -> FastAPI:
    app = create_registry_app(registry)
    instrument(app, CollectorRegistry())
    app.mount("/api", create_control_app(plane))
    return app


def _sweep_expired(plane: ControlPlane, stop: threading.Event) -> None:
    while not stop.wait(EXPIRY_SWEEP_S):
        try:
            for case in plane.expire_due():
                log.info("grant %s expired", case.grant.id)
        except Exception:  # noqa: BLE001 - Kafka or the store may be away; next round retries
            log.exception("expiry sweep failed")


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s catalog %(levelname)s %(message)s")
    settings = load_settings()
    registry = SchemaRegistryStore(settings.schema_store_url)
    plane = build_control_plane(settings)
    start_control_plane(settings, plane)
    stop = threading.Event()
    threading.Thread(target=_sweep_expired, args=(plane, stop), daemon=True).start()
    log.info(
        "schema registry on :%d (store %s), control plane on /api (store %s)",
        settings.registry_port,
        settings.printable_url(settings.schema_store_url),
        settings.printable_url(settings.control_url),
    )
    app = build_catalog_app(registry, plane)
    config = uvicorn.Config(
        app,
        host=settings.registry_host,
        port=settings.registry_port,
        log_level="warning",
        access_log=False,
        loop="asyncio",
    )
    try:
        uvicorn.Server(config).run()
    finally:
        stop.set()
        registry.close()
        plane.store.close()
