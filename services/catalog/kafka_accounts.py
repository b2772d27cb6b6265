"""Department Kafka accounts in the control store: what the cluster owes each department.

Like the outbox, an account change is written in the transaction of the change that causes
it (a department added or removed) and applied to Kafka later by ``KafkaAccountSync``: a
request never waits on Kafka. A row is the account as it should be; ``applied`` says Kafka
has it so; a removed account keeps its row (``removed``) until Kafka has forgotten it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Boolean, Column, MetaData, String, Table, select, update
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
)


@dataclass(frozen=True)
class KafkaAccount:
    name: str
    department: str
    removed: bool


def _account(row) -> KafkaAccount:
    return KafkaAccount(row.name, row.department, bool(row.removed))


def owe_department_account(conn: Connection, department: str) -> None:
    """The department's account, owed to Kafka in the caller's transaction."""
    name = account_name(department)
    conn.execute(kafka_accounts.delete().where(kafka_accounts.c.name == name))
    conn.execute(
        kafka_accounts.insert().values(
            name=name, department=department, removed=False, applied=False
        )
    )


def owe_removal(conn: Connection, department: str) -> None:
    """Every account of the department, owed to Kafka as removed."""
    conn.execute(
        update(kafka_accounts)
        .where(kafka_accounts.c.department == department)
        .values(removed=True, applied=False)
    )


def owe_all_again(conn: Connection, departments: list[str]) -> None:
    """At start: every department has its account, and every account is applied again."""
    known = set(conn.execute(select(kafka_accounts.c.department)).scalars())
    for department in sorted(set(departments) - known):
        owe_department_account(conn, department)
    conn.execute(update(kafka_accounts).values(applied=False))


def pending(conn: Connection) -> list[KafkaAccount]:
    query = select(kafka_accounts).where(kafka_accounts.c.applied.is_(False))
    return [_account(r) for r in conn.execute(query.order_by(kafka_accounts.c.name))]


def active(conn: Connection) -> list[KafkaAccount]:
    query = select(kafka_accounts).where(kafka_accounts.c.removed.is_(False))
    return [_account(r) for r in conn.execute(query.order_by(kafka_accounts.c.name))]


def find(conn: Connection, name: str) -> KafkaAccount | None:
    row = conn.execute(select(kafka_accounts).where(kafka_accounts.c.name == name)).first()
    return None if row is None else _account(row)


def mark_applied(conn: Connection, account: KafkaAccount) -> None:
    """Kafka has the account as the row says; a removed one is forgotten.

    Only if the row still says what was applied: a change made meanwhile stays owed.
    """
    same = (kafka_accounts.c.name == account.name) & (kafka_accounts.c.removed.is_(account.removed))
    if account.removed:
        conn.execute(kafka_accounts.delete().where(same))
    else:
        conn.execute(update(kafka_accounts).where(same).values(applied=True))
