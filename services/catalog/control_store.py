"""Durable state of the control plane: departments, users, resources, grants, change log, outbox.

Models are stored whole as JSON next to the columns they are looked up by, so the pydantic
model stays the one definition of each thing. Every change of a resource, grant or user is
written to the change log (who, what, when, before and after) in the same transaction, and
every change of a resource or grant to the outbox (outbox.py), which the relay publishes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection

from services.catalog import kafka_accounts, outbox
from services.catalog.workflow import Actor, Case, Role
from services.common.catalog import CatalogEntry, Department
from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.sql import build_engine

DEFAULT_TOKEN_TTL = dt.timedelta(days=90)
metadata = MetaData()


class IssuedToken(NamedTuple):
    token: str
    expires_at: dt.datetime


departments = Table(
    "departments", metadata, Column("code", String, primary_key=True), Column("body", JSON)
)
users = Table(
    "users",
    metadata,
    Column("name", String, primary_key=True),
    Column("department", String, nullable=False),
    Column("role", String, nullable=False),
    # Only a digest is kept: a leaked database does not leak working tokens.
    Column("token_sha256", String, nullable=False, unique=True),
    # After this instant the token is refused; rotating it issues a new one.
    Column("token_expires_at", DateTime(timezone=True)),
    # The department's chief representative (首席代表), appointed by the authority.
    Column("representative", Boolean, nullable=False, default=False),
)
resources = Table(
    "resources",
    metadata,
    Column("id", String, primary_key=True),
    Column("provider", String, nullable=False, index=True),
    Column("entry", JSON, nullable=False),
    Column("value_schema", JSON, nullable=False),
    # 1 at creation, +1 each time the value schema changes: followers see which one they hold.
    Column("schema_version", Integer, nullable=False, default=1),
)
grants = Table(
    "grants",
    metadata,
    Column("id", String, primary_key=True),
    Column("consumer", String, nullable=False, index=True),
    Column("resource", String, nullable=False, index=True),
    Column("state", String, nullable=False, index=True),  # the inboxes list by state
    Column("body", JSON, nullable=False),
)
changes = Table(
    "changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("object_id", String, nullable=False, index=True),
    Column("action", String, nullable=False),
    Column("before", JSON),
    Column("after", JSON),
)


def _resource(row: Any) -> Resource:
    return Resource(CatalogEntry.model_validate(row.entry), row.value_schema, row.schema_version)


def _actor(row: Any) -> Actor:
    return Actor(
        user=row.name,
        department=row.department,
        role=row.role,
        representative=bool(row.representative),
    )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _json(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


class Resource:
    """A catalog entry with the Avro value schema it currently has, and that schema's version."""

    __slots__ = ("entry", "schema_version", "value_schema")

    def __init__(
        self, entry: CatalogEntry, value_schema: dict[str, Any], schema_version: int = 1
    ) -> None:
        self.entry = entry
        self.value_schema = value_schema
        self.schema_version = schema_version

    def as_json(self) -> dict[str, Any]:
        return {
            "entry": _json(self.entry),
            "value_schema": self.value_schema,
            "schema_version": self.schema_version,
        }

    def record(self) -> CatalogRecord:
        """This resource as followers of govbus.catalog receive it."""
        return CatalogRecord(
            resource=self.entry, value_schema=self.value_schema, schema_version=self.schema_version
        )


def grant_record(case: Case) -> GrantRecord:
    """A grant as followers of govbus.grants receive it."""
    return GrantRecord(grant=case.grant, activation=case.activations)


class ControlStore:
    def __init__(
        self,
        url: str,
        max_record_bytes: int = 1_000_000,
        token_ttl: dt.timedelta = DEFAULT_TOKEN_TTL,
    ) -> None:
        self._engine = build_engine(url)
        self._lock = threading.Lock()  # read-check-write steps of the workflow never interleave
        self._max_record_bytes = max_record_bytes
        self.token_ttl = token_ttl
        metadata.create_all(self._engine)
        outbox.outbox_metadata.create_all(self._engine)
        kafka_accounts.accounts_metadata.create_all(self._engine)
        # Stores made before the data hall's inboxes lack the grants' state index.
        for index in grants.indexes:
            index.create(self._engine, checkfirst=True)
        # Stores made before schema versions were kept: every schema they hold is version 1.
        self._add_column("resources", "schema_version", "INTEGER NOT NULL DEFAULT 1")
        # Stores made before tokens expired: their tokens get one lifetime from now.
        expiry = DateTime(timezone=True).compile(dialect=self._engine.dialect)
        if self._add_column("users", "token_expires_at", expiry):
            with self._engine.begin() as conn:
                conn.execute(users.update().values(token_expires_at=self._token_expiry()))
        # Stores made before representatives: nobody is one.
        self._add_column("users", "representative", "BOOLEAN NOT NULL DEFAULT FALSE")
        # Stores made before passwords rotated: every account is at its first password.
        self._add_column("kafka_accounts", "generation", "INTEGER NOT NULL DEFAULT 0")

    def _add_column(self, table: str, column: str, ddl: str) -> bool:
        """Add a column a store made by an older version lacks; True if it was added."""
        if column in {c["name"] for c in inspect(self._engine).get_columns(table)}:
            return False
        with self._engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
        return True

    def _token_expiry(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.token_ttl

    def close(self) -> None:
        self._engine.dispose()

    # -- outbox -----------------------------------------------------------------------------
    def owe_resource(self, conn: Connection, resource: Resource, now: dt.datetime) -> int:
        """The resource's record, owed to govbus.catalog in this transaction; returns its seq."""
        return outbox.enqueue_resource(conn, resource.record(), now, self._max_record_bytes)

    def owe_grant(self, conn: Connection, record: GrantRecord, now: dt.datetime) -> int:
        """A grant's record, owed to govbus.grants in this transaction; returns its seq."""
        return outbox.enqueue_grant(conn, record, now, self._max_record_bytes)

    def outbox_pending(self, after_seq: int = 0, limit: int = 500) -> list[outbox.OutboxRow]:
        return outbox.pending(self._engine, after_seq, limit)

    def outbox_head(self) -> int | None:
        """The newest seq not yet published, or None when the bus has everything."""
        with self.reading() as conn:
            return outbox.head(conn)

    def mark_published(self, seq: int) -> None:
        """Kafka acknowledged every record up to ``seq``: they are no longer owed."""
        with self.transaction() as conn:
            outbox.delete_through(conn, seq)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One unit of work: the lock held, committed at the end or rolled back."""
        with self._lock, self._engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    # -- change log -------------------------------------------------------------------------
    @staticmethod
    def log(
        conn: Connection,
        actor: str,
        kind: str,
        object_id: str,
        action: str,
        before: Any,
        after: Any,
        now: dt.datetime,
    ) -> None:
        conn.execute(
            changes.insert().values(
                at=now,
                actor=actor,
                kind=kind,
                object_id=object_id,
                action=action,
                before=before,
                after=after,
            )
        )

    def last_change_seq(self) -> int:
        """The change log's newest entry: every catalog or grant change moves it."""
        with self.reading() as conn:
            return conn.execute(select(func.max(changes.c.seq))).scalar() or 0

    def changes(self, object_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(changes).order_by(changes.c.seq.desc()).limit(limit)
        if object_id:
            query = query.where(changes.c.object_id == object_id)
        with self.reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**r, "at": r["at"].isoformat()} for r in rows]

    # -- departments and users --------------------------------------------------------------
    @staticmethod
    def put_department(conn: Connection, code: str, department: Department) -> None:
        conn.execute(departments.delete().where(departments.c.code == code))
        conn.execute(departments.insert().values(code=code, body=_json(department)))

    @staticmethod
    def departments_in(conn: Connection) -> dict[str, Department]:
        rows = conn.execute(select(departments)).all()
        return {r.code: Department.model_validate(r.body) for r in rows}

    def departments(self) -> dict[str, Department]:
        with self.reading() as conn:
            return self.departments_in(conn)

    def add_user(
        self,
        conn: Connection,
        name: str,
        department: str,
        role: Role,
        token: str | None = None,
        representative: bool = False,
    ) -> IssuedToken:
        """Create (or re-issue) a user's token; the clear token is returned only here."""
        issued = IssuedToken(token or secrets.token_urlsafe(24), self._token_expiry())
        conn.execute(users.delete().where(users.c.name == name))
        conn.execute(
            users.insert().values(
                name=name,
                department=department,
                role=role.value,
                representative=representative,
                token_sha256=token_digest(issued.token),
                token_expires_at=issued.expires_at,
            )
        )
        return issued

    def rotate_token(self, conn: Connection, name: str) -> IssuedToken | None:
        """A new token for the user, the old one refused from now on; None: no such user."""
        issued = IssuedToken(secrets.token_urlsafe(24), self._token_expiry())
        changed = conn.execute(
            users.update()
            .where(users.c.name == name)
            .values(token_sha256=token_digest(issued.token), token_expires_at=issued.expires_at)
        ).rowcount
        return issued if changed else None

    @staticmethod
    def set_representative(conn: Connection, name: str, representative: bool) -> bool:
        query = users.update().where(users.c.name == name)
        return conn.execute(query.values(representative=representative)).rowcount > 0

    @staticmethod
    def user_in(conn: Connection, name: str) -> Actor | None:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        return None if row is None else _actor(row)

    @staticmethod
    def remove_user(conn: Connection, name: str) -> bool:
        return conn.execute(users.delete().where(users.c.name == name)).rowcount > 0

    def token_holder(self, token: str) -> tuple[Actor, dt.datetime] | None:
        """The user a token belongs to, and when the token expires (UTC)."""
        with self.reading() as conn:
            row = conn.execute(
                select(users).where(users.c.token_sha256 == token_digest(token))
            ).first()
        if row is None:
            return None
        expires_at = row.token_expires_at
        if expires_at.tzinfo is None:  # SQLite keeps no zone; the store writes UTC
            expires_at = expires_at.replace(tzinfo=dt.UTC)
        return _actor(row), expires_at

    def users(self) -> list[Actor]:
        with self.reading() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
        return [_actor(r) for r in rows]

    def has_users(self) -> bool:
        with self.reading() as conn:
            return conn.execute(select(users.c.name).limit(1)).first() is not None

    # -- resources --------------------------------------------------------------------------
    @staticmethod
    def get_resource(conn: Connection, resource_id: str) -> Resource | None:
        row = conn.execute(select(resources).where(resources.c.id == resource_id)).first()
        if row is None:
            return None
        return _resource(row)

    @staticmethod
    def put_resource(conn: Connection, resource: Resource) -> None:
        e = resource.entry
        conn.execute(resources.delete().where(resources.c.id == e.resource_id))
        conn.execute(
            resources.insert().values(
                id=e.resource_id,
                provider=e.provider,
                entry=_json(e),
                value_schema=resource.value_schema,
                schema_version=resource.schema_version,
            )
        )

    @staticmethod
    def find_resources(conn: Connection) -> list[Resource]:
        return [_resource(r) for r in conn.execute(select(resources).order_by(resources.c.id))]

    def resources(self) -> list[Resource]:
        with self.reading() as conn:
            return self.find_resources(conn)

    def resource(self, resource_id: str) -> Resource | None:
        with self.reading() as conn:
            return self.get_resource(conn, resource_id)

    # -- grants -----------------------------------------------------------------------------
    @staticmethod
    def get_case(conn: Connection, grant_id: str) -> Case | None:
        row = conn.execute(select(grants.c.body).where(grants.c.id == grant_id)).first()
        return None if row is None else Case.model_validate(row.body)

    @staticmethod
    def put_case(conn: Connection, case: Case) -> None:
        g = case.grant
        conn.execute(grants.delete().where(grants.c.id == g.id))
        conn.execute(
            grants.insert().values(
                id=g.id, consumer=g.consumer, resource=g.resource, state=g.state, body=_json(case)
            )
        )

    @staticmethod
    def _where_cases(
        query: Any,
        consumer: str | None = None,
        resource: str | None = None,
        state: str | None = None,
        provider: str | None = None,
    ) -> Any:
        if consumer:
            query = query.where(grants.c.consumer == consumer)
        if resource:
            query = query.where(grants.c.resource == resource)
        if provider:
            query = query.where(grants.c.resource.startswith(f"{provider}.", autoescape=True))
        if state:
            query = query.where(grants.c.state == state)
        return query

    @classmethod
    def find_case_bodies(
        cls,
        conn: Connection,
        consumer: str | None = None,
        resource: str | None = None,
        state: str | None = None,
        provider: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        by_due: bool = False,
    ) -> list[dict[str, Any]]:
        """Cases as stored (JSON), by grant id or (``by_due``) by the open step's due date
        then the request's time: for pages that show a few of many."""
        body = grants.c.body
        order = (
            (body["step_due"].as_string(), body["requested_at"].as_string(), grants.c.id)
            if by_due
            else (grants.c.id,)
        )
        query = select(body).order_by(*order).limit(limit).offset(offset)
        query = cls._where_cases(query, consumer, resource, state, provider)
        return [r.body for r in conn.execute(query)]

    def count_cases(self, **where: Any) -> int:
        query = self._where_cases(select(func.count()).select_from(grants), **where)
        with self.reading() as conn:
            return conn.execute(query).scalar() or 0

    @classmethod
    def find_cases(
        cls,
        conn: Connection,
        consumer: str | None = None,
        resource: str | None = None,
        state: str | None = None,
    ) -> list[Case]:
        bodies = cls.find_case_bodies(conn, consumer, resource, state)
        return [Case.model_validate(b) for b in bodies]

    def case_bodies(self, **where: Any) -> list[dict[str, Any]]:
        with self.reading() as conn:
            return self.find_case_bodies(conn, **where)

    def cases(
        self, consumer: str | None = None, resource: str | None = None, state: str | None = None
    ) -> list[Case]:
        with self.reading() as conn:
            return self.find_cases(conn, consumer, resource, state)

    def case(self, grant_id: str) -> Case | None:
        with self.reading() as conn:
            return self.get_case(conn, grant_id)
