"""Users of the control plane: the first authority user, the authority's user management, and
what a token proves (a user, until the token expires or is rotated)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from services.catalog.control_store import ControlStore, IssuedToken
from services.catalog.stewardship import STAFF_ROLES, is_steward, user_problem
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
        raise Forbidden(
            f"{actor.user} is {actor.role}; only the authority appoints representatives"
        )


def _check(actor: Actor, target: Actor) -> None:
    if problem := user_problem(actor, target.department, target.role, target.representative):
        raise Forbidden(problem)


def add_user(
    store: ControlStore,
    actor: Actor,
    name: str,
    department: str,
    role: Role,
    representative: bool = False,
) -> IssuedToken:
    """A new user (or a new token for the same name): by the authority, or by a department's
    representative for its own provider and consumer staff (stewardship.py)."""
    _check(actor, Actor(user=name, department=department, role=role, representative=representative))
    if (
        role is not Role.AUTHORITY
        and department not in store.departments()
        and department != "authority"
    ):
        raise Refused(f"department: unknown department {department!r}")
    with store.transaction() as conn:
        if (before := store.user_in(conn, name)) is not None:
            _check(actor, before)  # re-issuing replaces that user
        issued = store.add_user(conn, name, department, role, representative=representative)
        after = {"department": department, "role": role.value, "representative": representative}
        store.log(conn, actor.user, "user", name, "issue-token", None, after, _now())
    return issued


def appoint(store: ControlStore, actor: Actor, name: str, representative: bool) -> Actor:
    """Make ``name`` its department's chief representative, or no longer: the authority only."""
    _require_authority(actor)
    with store.transaction() as conn:
        user = store.user_in(conn, name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        if representative and user.role not in STAFF_ROLES:
            raise Refused(f"a representative is a provider or consumer; {name} is {user.role}")
        store.set_representative(conn, name, representative)
        action = "appoint" if representative else "dismiss"
        store.log(
            conn, actor.user, "user", name, action, None, {"representative": representative}, _now()
        )
    return user.model_copy(update={"representative": representative})


def _target(conn: Connection, store: ControlStore, actor: Actor, name: str) -> Actor:
    if not is_steward(actor):  # refused before saying whether the user exists
        raise Forbidden(
            f"{actor.user} may manage only its own token; the authority or the department's "
            "representative manages others"
        )
    user = store.user_in(conn, name)
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def rotate_token(store: ControlStore, actor: Actor, name: str) -> IssuedToken:
    """A new token for ``name``: a user rotates its own; the authority anyone's, a
    representative its department's staff."""
    with store.transaction() as conn:
        if actor.user != name:
            _check(actor, _target(conn, store, actor, name))
        issued = store.rotate_token(conn, name)
        if issued is None:
            raise NotFound(f"no user {name!r}")
        after = {"expires_at": issued.expires_at.isoformat()}
        store.log(conn, actor.user, "user", name, "rotate-token", None, after, _now())
    return issued


def remove_user(store: ControlStore, actor: Actor, name: str) -> None:
    """Delete a user: its token stops working at once."""
    if name == actor.user:
        raise Refused(f"{actor.user} cannot remove itself")
    with store.transaction() as conn:
        _check(actor, _target(conn, store, actor, name))
        store.remove_user(conn, name)
        store.log(conn, actor.user, "user", name, "remove", None, None, _now())
