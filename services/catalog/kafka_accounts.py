"""Department Kafka accounts in the control store: what the cluster owes each department.

Like the outbox, an account change is written in the transaction of the change that causes
it (a department or system account added, removed or rotated) and applied to Kafka later by
``KafkaAccountSync``: a request never waits on Kafka. A row is the account as it should be;
``applied`` says Kafka has it so; a removed account keeps its row (``removed``) until Kafka
has forgotten it. ``generation`` counts password rotations: the password is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.engine import Connection

from services.catalog.kafka_acls import account_name

accounts_metadata = MetaData()
kafka_accounts = Table(
    "kafka_accounts",
    accounts_metadata,
    Column("name", String, primary_key=True),
    Column("department", String, nullable=False, index=True),
    Column("removed", Boolean, nullable=False, default=False),
    Column("applied", Boolean, nullable=False, default=False),
    Column("generation", Integer, nullable=False, default=0),
)


@dataclass(frozen=True)
class KafkaAccount:
    name: str
    department: str
    removed: bool
    generation: int = 0


def _account(row) -> KafkaAccount:
    return KafkaAccount(row.name, row.department, bool(row.removed), row.generation)


def owe_department_account(conn: Connection, department: str, system: str | None = None) -> None:
    """The department's account (or its system account ``system``), owed to Kafka in the
    caller's transaction. A rotated password stays rotated."""
    name = account_name(department, system)
    before = find(conn, name)
    generation = 0 if before is None or before.removed else before.generation
    conn.execute(kafka_accounts.delete().where(kafka_accounts.c.name == name))
    conn.execute(
        kafka_accounts.insert().values(
            name=name, department=department, removed=False, applied=False, generation=generation
        )
    )


def owe_account_removal(conn: Connection, name: str) -> None:
    """One account, owed to Kafka as removed."""
    conn.execute(
        update(kafka_accounts)
        .where(kafka_accounts.c.name == name)
        .values(removed=True, applied=False)
    )


def owe_rotation(conn: Connection, name: str) -> int:
    """A new password for the account, owed to Kafka; returns its generation."""
    conn.execute(
        update(kafka_accounts)
        .where(kafka_accounts.c.name == name)
        .values(generation=kafka_accounts.c.generation + 1, applied=False)
    )
    account = find(conn, name)
    assert account is not None
    return account.generation


def owe_removal(conn: Connection, department: str) -> None:
    """Every account of the department, owed to Kafka as removed."""
    conn.execute(
        update(kafka_accounts)
        .where(kafka_accounts.c.department == department)
        .values(removed=True, applied=False)
    )


def owe_all_again(conn: Connection, departments: list[str]) -> None:
    """At start: every department has its account, and every account is applied again."""
    known = set(conn.execute(select(kafka_accounts.c.name)).scalars())
    for department in sorted(d for d in departments if account_name(d) not in known):
        owe_department_account(conn, department)
    conn.execute(update(kafka_accounts).values(applied=False))


def pending(conn: Connection) -> list[KafkaAccount]:
    query = select(kafka_accounts).where(kafka_accounts.c.applied.is_(False))
    return [_account(r) for r in conn.execute(query.order_by(kafka_accounts.c.name))]


def active(conn: Connection) -> list[KafkaAccount]:
    query = select(kafka_accounts).where(kafka_accounts.c.removed.is_(False))
    return [_account(r) for r in conn.execute(query.order_by(kafka_accounts.c.name))]


def of_department(conn: Connection, department: str) -> list[KafkaAccount]:
    """The department's accounts that are not removed, its own first."""
    query = select(kafka_accounts).where(
        (kafka_accounts.c.department == department) & kafka_accounts.c.removed.is_(False)
    )
    return [_account(r) for r in conn.execute(query.order_by(kafka_accounts.c.name))]


def find(conn: Connection, name: str) -> KafkaAccount | None:
    row = conn.execute(select(kafka_accounts).where(kafka_accounts.c.name == name)).first()
    return None if row is None else _account(row)


def mark_applied(conn: Connection, account: KafkaAccount) -> None:
    """Kafka has the account as the row says; a removed one is forgotten.

    Only if the row still says what was applied: a change made meanwhile stays owed.
    """
    same = (
        (kafka_accounts.c.name == account.name)
        & kafka_accounts.c.removed.is_(account.removed)
        & (kafka_accounts.c.generation == account.generation)
    )
    if account.removed:
        conn.execute(kafka_accounts.delete().where(same))
    else:
        conn.execute(update(kafka_accounts).where(same).values(applied=True))
