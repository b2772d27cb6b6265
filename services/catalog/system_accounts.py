"""A department's system accounts: named Kafka principals of its hosts (ETL, warehouse reader).

Each is ``dept.<code>.<name>`` with the department's ACLs, and is owed to Kafka in the
transaction that adds, removes or rotates it, like the department's own account
(kafka_accounts.py); the account sync applies it. The authority and the department's own
users manage them, as they see its Kafka access.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Connection

from services.catalog import kafka_accounts
from services.catalog.control_store import ControlStore
from services.catalog.kafka_acls import account_name, system_name_problem, system_of
from services.catalog.stewardship import account_problem
from services.catalog.workflow import Actor, Conflict, Forbidden, NotFound, Refused


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_access(store: ControlStore, actor: Actor, code: str) -> None:
    """The authority, or the department's own users, may see and manage its Kafka access."""
    if problem := account_problem(actor, code):
        raise Forbidden(problem)
    if code not in store.departments():
        raise NotFound(f"no department {code!r}")


def _valid(system: str) -> str:
    if problem := system_name_problem(system):
        raise Refused(problem)
    return system


def list_accounts(store: ControlStore, actor: Actor, code: str) -> list[dict[str, object]]:
    check_access(store, actor, code)
    with store.reading() as conn:
        accounts = kafka_accounts.of_department(conn, code)
    return [
        {"name": system, "principal": a.name, "generation": a.generation}
        for a in accounts
        if (system := system_of(a.name, code)) is not None
    ]


def add_account(store: ControlStore, actor: Actor, code: str, system: str) -> str:
    """Add a system account; returns its principal name."""
    check_access(store, actor, code)
    name = account_name(code, _valid(system))
    with store.transaction() as conn:
        if code not in store.departments_in(conn):  # removed since the check above
            raise NotFound(f"no department {code!r}")
        before = kafka_accounts.find(conn, name)
        if before is not None and not before.removed:
            raise Conflict(f"department {code} already has the system account {system!r}")
        kafka_accounts.owe_department_account(conn, code, system)
        after = {"department": code}
        store.log(conn, actor.user, "kafka_account", name, "create", None, after, _now())
    return name


def _existing(conn: Connection, code: str, system: str) -> str:
    name = account_name(code, _valid(system))
    account = kafka_accounts.find(conn, name)
    if account is None or account.removed:
        raise NotFound(f"department {code} has no system account {system!r}")
    return name


def remove_account(store: ControlStore, actor: Actor, code: str, system: str) -> None:
    """Remove a system account: it stops working once the sync has applied it."""
    check_access(store, actor, code)
    with store.transaction() as conn:
        name = _existing(conn, code, system)
        kafka_accounts.owe_account_removal(conn, name)
        before = {"department": code}
        store.log(conn, actor.user, "kafka_account", name, "remove", before, None, _now())


def rotate_account(store: ControlStore, actor: Actor, code: str, system: str) -> int:
    """A new password for a system account; the old one stops working once the sync has
    applied it. Returns the new generation."""
    check_access(store, actor, code)
    with store.transaction() as conn:
        name = _existing(conn, code, system)
        generation = kafka_accounts.owe_rotation(conn, name)
        after = {"department": code, "generation": generation}
        store.log(conn, actor.user, "kafka_account", name, "rotate", None, after, _now())
    return generation
