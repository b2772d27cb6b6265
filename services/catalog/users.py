"""Users of the control plane: the first authority user, the authority's user management, and
what a token proves (a user, until the token expires or is rotated)."""

from __future__ import annotations

import datetime as dt

from services.catalog.control_store import ControlStore, IssuedToken
from services.catalog.workflow import Actor, Forbidden, NotFound, Refused, Role


class Unauthenticated(Exception):
    """No credentials, or credentials that prove no one; the message says which."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def token_actor(store: ControlStore, token: str, now: dt.datetime | None = None) -> Actor:
    """The user the token belongs to; Unauthenticated if it is unknown or expired."""
    found = store.token_holder(token)
    if found is None:
        raise Unauthenticated("unknown or revoked token")
    actor, expires_at = found
    if expires_at <= (now or _now()):
        raise Unauthenticated(
            f"the token of {actor.user} expired at {expires_at:%Y-%m-%d %H:%M} UTC; "
            "the authority issues a new one with 'govbus user rotate-token'"
        )
    return actor


def bootstrap_authority(store: ControlStore, token: str | None) -> str | None:
    """The first user, an authority administrator; its token is returned once (else None)."""
    if store.has_users():
        return None
    with store.transaction() as conn:
        issued = store.add_user(conn, "admin", "authority", Role.AUTHORITY, token)
        store.log(conn, "system", "user", "admin", "create", None, {"role": "authority"}, _now())
    return issued.token


def _require_authority(actor: Actor) -> None:
    if actor.role is not Role.AUTHORITY:
        raise Forbidden(f"{actor.user} is {actor.role}; only the authority manages users")


def add_user(
    store: ControlStore, actor: Actor, name: str, department: str, role: Role
) -> IssuedToken:
    _require_authority(actor)
    if (
        role is not Role.AUTHORITY
        and department not in store.departments()
        and department != "authority"
    ):
        raise Refused(f"department: unknown department {department!r}")
    with store.transaction() as conn:
        issued = store.add_user(conn, name, department, role)
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
    return issued


def rotate_token(store: ControlStore, actor: Actor, name: str) -> IssuedToken:
    """A new token for ``name``: the authority rotates anyone's, a user only its own."""
    if actor.role is not Role.AUTHORITY and actor.user != name:
        raise Forbidden(f"{actor.user} may rotate only its own token; the authority rotates others")
    with store.transaction() as conn:
        issued = store.rotate_token(conn, name)
        if issued is None:
            raise NotFound(f"no user {name!r}")
        after = {"expires_at": issued.expires_at.isoformat()}
        store.log(conn, actor.user, "user", name, "rotate-token", None, after, _now())
    return issued


def remove_user(store: ControlStore, actor: Actor, name: str) -> None:
    """Delete a user: its token stops working at once."""
    _require_authority(actor)
    if name == actor.user:
        raise Refused("an authority user cannot remove itself")
    with store.transaction() as conn:
        if not store.remove_user(conn, name):
            raise NotFound(f"no user {name!r}")
        store.log(conn, actor.user, "user", name, "remove", None, None, _now())
