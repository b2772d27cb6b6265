"""What the operations pages (flow, dead letters, audit, scorecard) read, and who may see them.

The catalog service installs them on the hall with the bus's settings (Kafka, the processes'
metrics ports, the audit and mask keys) and its scorecard; each page checks the viewer's role
first, as the API and the ``govbus dlq``/``audit`` commands do.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from fastapi import APIRouter, FastAPI, Request

from services.catalog.scorecard_watch import ScorecardWatch
from services.catalog.workflow import Actor, Forbidden, Role, WorkflowError
from services.common.settings import Settings
from services.hall.nav import WATCHERS as NAV_WATCHERS

WATCHERS = tuple(sorted(NAV_WATCHERS))  # may see the whole bus's operation


class Unavailable(WorkflowError):
    """Kafka did not answer in time: the page says so (503), and a retry may work."""

    status = 503


@contextmanager
def kafka_answers() -> Iterator[None]:
    """Kafka that does not answer (a timeout, a broker away) becomes a 503 with the reason."""
    try:
        yield
    except (TimeoutError, KafkaException) as exc:
        raise Unavailable(f"Kafka did not answer: {exc}; try again shortly") from exc


def require(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Forbidden(f"this page needs the {allowed} role; {actor.user} is {actor.role}")


@dataclass
class AuditCheck:
    """The latest verification of the audit chains (``govbus audit verify``), run on request
    in the background: it reads the whole trail and every delivery."""

    running: bool = False
    at: dt.datetime | None = None
    ok: bool | None = None
    lines: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, settings: Settings) -> bool:
        """Start a verification; False when one is running already."""
        with self._lock:
            if self.running:
                return False
            self.running = True
        threading.Thread(target=self._run, args=(settings,), daemon=True).start()
        return True

    def _run(self, settings: Settings) -> None:
        from services.audit_verify import verify_bus

        try:
            verdict = verify_bus(settings)
            ok, lines = verdict.ok, verdict.summary()
        except Exception as exc:  # noqa: BLE001 - Kafka away: say so on the page
            ok, lines = None, [f"not verified: {exc}"]
        with self._lock:
            self.running, self.at, self.ok, self.lines = False, dt.datetime.now(dt.UTC), ok, lines


@dataclass
class Ops:
    settings: Settings
    scorecard: ScorecardWatch
    audit: AuditCheck = field(default_factory=AuditCheck)

    def metrics_urls(self) -> dict[str, str]:
        """The bus processes' /metrics, by role (the ports ``make run`` uses)."""
        s = self.settings
        ports = {
            "ingest": s.ingest_metrics_port,
            "router": s.router_metrics_port,
            "sink": s.sink_metrics_port,
            "lag": s.lag_metrics_port,
        }
        return {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}


def get_ops(request: Request) -> Ops:
    return request.app.state.ops


def install_ops_pages(hall: FastAPI, ops: Ops, routers: list[APIRouter]) -> None:
    """Add the operations pages to the hall, with what they read."""
    hall.state.ops = ops
    for router in routers:
        hall.include_router(router)
    # The resource page's freshness slot (resource_freshness.html) asks the scorecard.
    hall.state.hall.templates.env.globals["freshness_of"] = lambda rid: _freshness(ops, rid)


def _freshness(ops: Ops, resource_id: str):
    try:
        return ops.scorecard.latest().resource(resource_id)
    except Exception:  # noqa: BLE001 - a store away: the page shows no freshness
        return None
