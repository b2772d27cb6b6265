"""Users of the control plane: the first authority user, and the authority's user management."""

from __future__ import annotations

import datetime as dt

from services.catalog.control_store import ControlStore
from services.catalog.workflow import Actor, Forbidden, NotFound, Refused, Role


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def bootstrap_authority(store: ControlStore, token: str | None) -> str | None:
    """The first user, an authority administrator; its token is returned once (else None)."""
    if store.has_users():
        return None
    with store.transaction() as conn:
        token = store.add_user(conn, "admin", "authority", Role.AUTHORITY, token)
        store.log(conn, "system", "user", "admin", "create", None, {"role": "authority"}, _now())
    return token


def add_user(store: ControlStore, actor: Actor, name: str, department: str, role: Role) -> str:
    if actor.role is not Role.AUTHORITY:
        raise Forbidden(f"{actor.user} is {actor.role}; only the authority manages users")
    if (
        role is not Role.AUTHORITY
        and department not in store.departments()
        and department != "authority"
    ):
        raise Refused(f"department: unknown department {department!r}")
    with store.transaction() as conn:
        token = store.add_user(conn, name, department, role)
        store.log(
            conn,
            actor.user,
            "user",
            name,
            "issue-token",
            None,
            {"department": department, "role": role.value},
            _now(),
        )
    return token


def remove_user(store: ControlStore, actor: Actor, name: str) -> None:
    """Delete a user: its token stops working at once."""
    if actor.role is not Role.AUTHORITY:
        raise Forbidden(f"{actor.user} is {actor.role}; only the authority manages users")
    if name == actor.user:
        raise Refused("an authority user cannot remove itself")
    with store.transaction() as conn:
        if not store.remove_user(conn, name):
            raise NotFound(f"no user {name!r}")
        store.log(conn, actor.user, "user", name, "remove", None, None, _now())
