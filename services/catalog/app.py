"""The catalog service process: the schema registry and, under /api, the control plane.

On a new control store it imports the catalog and grant files under deploy/ and creates the
first authority user. At every start it owes the bus every resource and grant the store holds
(and a revocation for each grant only the topic knows), and runs the outbox relay that
publishes them, so the topics say what the store says. The service starts and answers with
Kafka away; the relay publishes once Kafka is back.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.catalog.control_api import create_control_app
from services.catalog.control_plane import ControlPlane
from services.catalog.control_store import ControlStore
from services.catalog.convergence import owe_everything, revoke_strays
from services.catalog.departments_api import departments_router
from services.catalog.ingest_gateway import IngestGateway
from services.catalog.kafka_account_sync import KafkaAccountSync
from services.catalog.outbox_relay import OutboxRelay
from services.catalog.registry_api import create_registry_app
from services.catalog.registry_auth import user_login
from services.catalog.registry_metrics import instrument
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.scorecard_api import scorecard_router
from services.catalog.scorecard_sources import DeadLetterTally, compute
from services.catalog.scorecard_watch import ScorecardWatch
from services.catalog.users import bootstrap_authority
from services.catalog.workflow import SYSTEM, Calendar
from services.common import grant_feed
from services.common.feed import read_feed
from services.common.private_files import write_private
from services.common.settings import Settings, load_service_settings
from services.common.sql import build_engine
from services.common.topics import GRANTS
from services.hall import PREFIX as HALL_PREFIX
from services.hall.app import create_hall_app
from services.hall.deliveries import DeliveryCounter
from services.hall.department_pages import use_account_sync
from services.hall.ops_pages import OPS_ROUTERS
from services.hall.ops_state import Ops, install_ops_pages

log = logging.getLogger("govbus.catalog")
EXPIRY_SWEEP_S = 30.0


def build_control_plane(settings: Settings, registry: SchemaRegistryStore) -> ControlPlane:
    return ControlPlane(
        ControlStore(settings.control_url, settings.max_message_bytes, settings.token_ttl),
        registry,
        Calendar(
            holidays=settings.holiday_dates,
            workdays=settings.workday_dates,
            provider_days=settings.provider_due_days,
            authority_days=settings.authority_due_days,
        ),
        settings.schemas_dir,
    )


def start_control_plane(settings: Settings, plane: ControlPlane) -> OutboxRelay:
    """First start: import deploy/ and create the authority user. Every start: owe the bus
    the whole state, and start the relay that publishes it."""
    if not plane.store.resources():
        counts = plane.import_folder(
            SYSTEM, settings.catalog_dir, settings.grants_dir, settings.schemas_dir
        )
        log.info("new control store: imported %s", counts)
    given = settings.authority_token.get_secret_value() if settings.authority_token else None
    token = bootstrap_authority(plane.store, given)
    if token is not None and given is None:
        path = authority_token_file(settings)
        write_private(path, token + "\n")
        log.info("authority user 'admin' created; its token is in %s", path)
    owed = owe_everything(plane.store, dt.datetime.now(dt.UTC))
    log.info("owing the bus %d records: every resource and grant", owed)

    def revoke_unknown() -> None:
        on_topic = read_feed(settings, GRANTS, grant_feed.decode)
        strays = revoke_strays(plane.store, on_topic, dt.datetime.now(dt.UTC))
        if strays:
            log.warning("grants on govbus.grants unknown to the store, revoked: %s", strays)

    return OutboxRelay(plane.store, settings, prepare=revoke_unknown).start()


def authority_token_file(settings: Settings) -> Path:
    return settings.data_dir / "authority.token"


def scorecard_watch(settings: Settings, plane: ControlPlane) -> ScorecardWatch:
    """The scorecard from the control store, the central store and Kafka, kept current."""
    central, tally = build_engine(settings.central_store_url), DeadLetterTally()
    return ScorecardWatch(
        lambda now: compute(plane.store, central, settings, tally, now),
        settings.scorecard_interval_s,
    )


def build_catalog_app(
    settings: Settings,
    registry: SchemaRegistryStore,
    plane: ControlPlane,
    relay: OutboxRelay,
    accounts: KafkaAccountSync,
    scorecard: ScorecardWatch,
) -> tuple[FastAPI, IngestGateway]:
    """The service's app: the registry, the control API with departments and the scorecard,
    HTTP push, and the data hall (the web console) at /hall."""
    app = create_registry_app(registry, user_login(settings, plane.store))
    metrics = CollectorRegistry()
    instrument(app, metrics)
    metrics.register(scorecard)
    ingest = IngestGateway(settings, metrics)
    control = create_control_app(plane, relay, settings.preview_rate, ingest)
    control.include_router(departments_router(accounts))
    control.include_router(scorecard_router(scorecard))
    app.mount("/api", control)
    hall = create_hall_app(
        plane,
        control.state.previews,
        relay,
        settings.hall_secure_cookie,
        settings.hall_session_idle_hours * 3600,
        DeliveryCounter(settings),
    )
    install_ops_pages(hall, Ops(settings, scorecard), OPS_ROUTERS)
    use_account_sync(hall, accounts)
    app.mount(HALL_PREFIX, hall)
    return app, ingest


def _sweep_expired(plane: ControlPlane, relay: OutboxRelay, stop: threading.Event) -> None:
    while not stop.wait(EXPIRY_SWEEP_S):
        try:
            for case in plane.expire_due():
                log.info("grant %s expired", case.grant.id)
                relay.notify()
        except Exception:  # noqa: BLE001 - the store may be away; the next round retries
            log.exception("expiry sweep failed")


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s catalog %(levelname)s %(message)s")
    settings = load_service_settings()
    registry = SchemaRegistryStore(settings.schema_store_url)
    plane = build_control_plane(settings, registry)
    relay = start_control_plane(settings, plane)
    # Department credentials and ACLs, applied to Kafka as the store owes them.
    accounts = KafkaAccountSync(plane.store, settings).start()
    stop = threading.Event()
    threading.Thread(target=_sweep_expired, args=(plane, relay, stop), daemon=True).start()
    log.info(
        "schema registry on :%d (store %s), control plane on /api (store %s), data hall on /hall",
        settings.registry_port,
        settings.printable_url(settings.schema_store_url),
        settings.printable_url(settings.control_url),
    )
    scorecard = scorecard_watch(settings, plane).start()
    app, ingest = build_catalog_app(settings, registry, plane, relay, accounts, scorecard)
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
        if ingest is not None:
            ingest.close()
        relay.stop()
        accounts.stop()
        scorecard.stop()
        registry.close()
        plane.store.close()
