"""Departments: the authority adds and removes them; each comes and goes with its Kafka account.

The account (SCRAM credentials and ACLs) is owed to Kafka in the same transaction as the
department, and applied by the account sync (kafka_account_sync.py).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from services.catalog import control_store as tables
from services.catalog.control_store import ControlStore
from services.catalog.kafka_accounts import owe_department_account, owe_removal
from services.catalog.workflow import Actor, Conflict, Forbidden, NotFound, Role
from services.common.catalog import Department, GrantState

# A grant in one of these states no longer moves data, so it does not hold its consumer.
ENDED = (GrantState.REJECTED, GrantState.REVOKED, GrantState.EXPIRED)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _authority_only(actor: Actor) -> None:
    if actor.role is not Role.AUTHORITY:
        raise Forbidden(f"{actor.user} is {actor.role}; only the authority manages departments")


def put_department(store: ControlStore, actor: Actor, code: str, department: Department) -> None:
    """Add (or rename) a department; its Kafka account is owed at once."""
    _authority_only(actor)
    with store.transaction() as conn:
        before = store.departments_in(conn).get(code)
        store.put_department(conn, code, department)
        owe_department_account(conn, code)
        after = department.model_dump(mode="json")
        before_json = None if before is None else before.model_dump(mode="json")
        action = "update" if before else "create"
        store.log(conn, actor.user, "department", code, action, before_json, after, _now())


def remove_department(store: ControlStore, actor: Actor, code: str) -> None:
    """Remove a department that provides nothing and holds no live grant: its users and its
    Kafka account go with it (the account stops working once the sync applies it)."""
    _authority_only(actor)
    with store.transaction() as conn:
        before = store.departments_in(conn).get(code)
        if before is None:
            raise NotFound(f"no department {code!r}")
        provided = conn.execute(
            select(tables.resources.c.id).where(tables.resources.c.provider == code)
        ).scalars()
        if resources := sorted(provided):
            raise Conflict(f"department {code} still provides {', '.join(resources)}")
        live = [
            c.grant.id for c in store.find_cases(conn, consumer=code) if c.grant.state not in ENDED
        ]
        if live:
            raise Conflict(f"department {code} still holds grants {', '.join(live)}: revoke them")
        conn.execute(tables.departments.delete().where(tables.departments.c.code == code))
        conn.execute(tables.users.delete().where(tables.users.c.department == code))
        owe_removal(conn, code)
        store.log(
            conn,
            actor.user,
            "department",
            code,
            "remove",
            before.model_dump(mode="json"),
            None,
            _now(),
        )
