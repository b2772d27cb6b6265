"""Listing grants fast with 10,000 in the store: the store narrows by the viewer's department
and reads the stored cases, the page parses only the ones it shows, and the API's visibility
rule (visible_to) is still applied to each of them."""

from __future__ import annotations

import threading
from typing import Any

from services.catalog.control_store import ControlStore, Resource
from services.catalog.workflow import Actor, Case, Role, visible_to


def narrowing(actor: Actor) -> dict[str, str]:
    """What the store may leave out for this viewer: never more than visible_to hides."""
    if actor.role is Role.CONSUMER:
        return {"consumer": actor.department}
    if actor.role is Role.PROVIDER:
        return {"provider": actor.department}
    return {}


def shown(actor: Actor, bodies: list[dict[str, Any]]) -> list[Case]:
    cases = [Case.model_validate(b) for b in bodies]
    return [c for c in cases if visible_to(actor, c)]


def by_due_date(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earliest due first, so the longest overdue lead; then the oldest request. ISO dates
    sort as text."""
    return sorted(bodies, key=lambda b: (b.get("step_due") or "9999", b["requested_at"]))


class ResourceCache:
    """The catalog's resources, parsed once per change: the change log's head says when the
    store changed (read before the resources, so a racing change only refreshes sooner)."""

    def __init__(self, store: ControlStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._head = -1
        self._resources: list[Resource] = []

    def resources(self) -> list[Resource]:
        head = self._store.last_change_seq()
        with self._lock:
            if head != self._head:
                self._resources = self._store.resources()
                self._head = head
            return self._resources
