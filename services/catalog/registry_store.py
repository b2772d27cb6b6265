"""Durable storage behind the schema registry API: schemas, subject versions, compatibility config.

Error classes carry the Confluent Schema Registry error code, because those codes are the
vocabulary every registry client understands; the HTTP layer only translates them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import fastavro
from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
)
from sqlalchemy.engine import Connection, Row

from services.catalog import compatibility
from services.catalog.compatibility import Incompatibility
from services.catalog.registry_errors import (
    IncompatibleSchemaError,
    InvalidCompatibilityError,
    InvalidSchemaError,
    SchemaNotFoundError,
    SubjectConfigNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
)
from services.common.sql import build_engine

GLOBAL_CONFIG_KEY = "__GLOBAL__"
DEFAULT_COMPATIBILITY = "BACKWARD"
COMPATIBILITY_LEVELS = frozenset(compatibility.MODES)
SUPPORTED_SCHEMA_TYPES = ("AVRO",)
Latest = Literal["latest"]

registry_metadata = MetaData()

schemas_table = Table(
    "registry_schemas",
    registry_metadata,
    Column("id", Integer, primary_key=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("schema_type", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("schema_text", Text, nullable=False),
    # Global ids are never reused, even by SQLite after a delete.
    sqlite_autoincrement=True,
)

versions_table = Table(
    "registry_subject_versions",
    registry_metadata,
    Column("subject", String(255), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("schema_id", Integer, ForeignKey("registry_schemas.id"), nullable=False, index=True),
    Column("deleted", Boolean, nullable=False, default=False),
)

config_table = Table(
    "registry_config",
    registry_metadata,
    Column("subject", String(255), primary_key=True),
    Column("compatibility", String(32), nullable=False),
)


@dataclass(frozen=True)
class StoredSchema:
    id: int
    guid: str
    schema_type: str
    schema: str


@dataclass(frozen=True)
class SubjectVersion:
    subject: str
    version: int
    schema: StoredSchema
    deleted: bool = False


@dataclass(frozen=True)
class ParsedSchema:
    text: str
    fingerprint: str


def parse_avro(schema_str: str) -> ParsedSchema:
    """Validate an Avro schema and key it by a whitespace- and key-order-free JSON form.

    Not the Avro *parsing* canonical form: that drops defaults, docs, aliases and logical
    types, so two schemas differing only in a default (a compatibility-relevant change)
    would collapse onto one id and the second one's attributes would be lost.
    """
    try:
        schema_json = json.loads(schema_str)
        fastavro.parse_schema(schema_json)
    except Exception as exc:  # fastavro raises many types; all mean "not a valid schema"
        raise InvalidSchemaError(f"Invalid schema: {type(exc).__name__}: {exc}") from exc
    canonical = json.dumps(schema_json, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ParsedSchema(schema_str, hashlib.sha256(canonical.encode()).hexdigest())


def check_schema_type(schema_type: str) -> None:
    """Raise InvalidSchemaError unless the registry serves this schema type."""
    if schema_type.upper() not in SUPPORTED_SCHEMA_TYPES:
        raise InvalidSchemaError(f"Unsupported schema type {schema_type!r}; only AVRO")


def _to_schema(row: Row) -> StoredSchema:
    return StoredSchema(row.id, row.guid, row.schema_type, row.schema_text)


def _version_rows(conn: Connection, subject: str) -> list[Row]:
    query = (
        select(versions_table.c.version, versions_table.c.deleted)
        .where(versions_table.c.subject == subject)
        .order_by(versions_table.c.version)
    )
    return list(conn.execute(query))


def _visible_versions(conn: Connection, subject: str, include_deleted: bool) -> list[int]:
    numbers = [r.version for r in _version_rows(conn, subject) if include_deleted or not r.deleted]
    if not numbers:
        raise SubjectNotFoundError(f"Subject '{subject}' not found.")
    return numbers


def _subject_version(
    conn: Connection, subject: str, version: int | Latest, include_deleted: bool
) -> SubjectVersion:
    numbers = _visible_versions(conn, subject, include_deleted)
    number = numbers[-1] if version == "latest" else version
    if number not in numbers:
        raise VersionNotFoundError(f"Version {number} not found.")
    query = (
        select(versions_table.c.deleted, schemas_table)
        .join(schemas_table, schemas_table.c.id == versions_table.c.schema_id)
        .where(versions_table.c.subject == subject, versions_table.c.version == number)
    )
    row = conn.execute(query).one()
    return SubjectVersion(subject, number, _to_schema(row), row.deleted)


def _live_schemas(conn: Connection, subject: str) -> dict[int, str]:
    """Version -> schema text of a subject's versions that are not deleted."""
    query = (
        select(versions_table.c.version, schemas_table.c.schema_text)
        .join(schemas_table, schemas_table.c.id == versions_table.c.schema_id)
        .where(versions_table.c.subject == subject, versions_table.c.deleted.is_(False))
        .order_by(versions_table.c.version)
    )
    return {r.version: r.schema_text for r in conn.execute(query)}


def _compatibility(conn: Connection, subject: str | None) -> str:
    """A subject's own level if set, else the global one, else BACKWARD."""
    keys = [GLOBAL_CONFIG_KEY] if subject is None else [subject, GLOBAL_CONFIG_KEY]
    query = select(config_table).where(config_table.c.subject.in_(keys))
    levels = {r.subject: r.compatibility for r in conn.execute(query)}
    return next((levels[k] for k in keys if k in levels), DEFAULT_COMPATIBILITY)


def _schema_id_for(conn: Connection, parsed: ParsedSchema) -> int:
    found = conn.execute(
        select(schemas_table.c.id).where(schemas_table.c.fingerprint == parsed.fingerprint)
    ).scalar()
    if found is not None:
        return found
    inserted = conn.execute(
        schemas_table.insert().values(
            guid=str(uuid.uuid4()),
            schema_type="AVRO",
            fingerprint=parsed.fingerprint,
            schema_text=parsed.text,
        )
    )
    return inserted.inserted_primary_key[0]


class SchemaRegistryStore:
    """Schemas (global ids) and the subject versions that point at them, in one SQL database."""

    def __init__(self, url: str) -> None:
        self._engine = build_engine(url)
        # Check-then-insert (same schema? next version?) must not interleave, and an
        # in-memory SQLite database is one connection shared by all threads.
        self._lock = threading.Lock()
        registry_metadata.create_all(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._lock, self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._lock, self._engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        with self._reading() as conn:
            conn.execute(text("SELECT 1"))

    def register(self, subject: str, schema_str: str, schema_type: str = "AVRO") -> tuple[int, int]:
        """Register a schema under a subject; returns (global id, version), idempotently.

        A new version must pass the subject's compatibility level (IncompatibleSchemaError)."""
        check_schema_type(schema_type)
        parsed = parse_avro(schema_str)
        with self._writing() as conn:
            schema_id = _schema_id_for(conn, parsed)
            existing = conn.execute(
                select(versions_table.c.version).where(
                    versions_table.c.subject == subject,
                    versions_table.c.schema_id == schema_id,
                    versions_table.c.deleted.is_(False),
                )
            ).scalar()
            if existing is not None:
                return schema_id, existing
            # Checked in the same transaction as the insert, so no registration slips between.
            mode = _compatibility(conn, subject)
            problems = compatibility.check(mode, parsed.text, _live_schemas(conn, subject))
            if problems:
                details = ", ".join(compatibility.details(problems, mode))
                raise IncompatibleSchemaError(
                    "Schema being registered is incompatible with an earlier schema for "
                    f'subject "{subject}", details: [{details}]'
                )
            # Versions keep counting past soft-deleted ones, as in Confluent's registry.
            rows = _version_rows(conn, subject)
            version = rows[-1].version + 1 if rows else 1
            conn.execute(
                versions_table.insert().values(
                    subject=subject, version=version, schema_id=schema_id, deleted=False
                )
            )
        return schema_id, version

    def get_by_id(self, schema_id: int) -> StoredSchema:
        with self._reading() as conn:
            row = conn.execute(select(schemas_table).where(schemas_table.c.id == schema_id)).first()
        if row is None:
            raise SchemaNotFoundError(f"Schema {schema_id} not found")
        return _to_schema(row)

    def get_by_guid(self, guid: str) -> StoredSchema:
        with self._reading() as conn:
            row = conn.execute(select(schemas_table).where(schemas_table.c.guid == guid)).first()
        if row is None:
            raise SchemaNotFoundError(f"Schema {guid} not found")
        return _to_schema(row)

    def usages(self, schema_id: int, include_deleted: bool = False) -> list[tuple[str, int]]:
        """(subject, version) pairs that point at a schema id."""
        self.get_by_id(schema_id)
        query = select(versions_table.c.subject, versions_table.c.version).where(
            versions_table.c.schema_id == schema_id
        )
        if not include_deleted:
            query = query.where(versions_table.c.deleted.is_(False))
        order = (versions_table.c.subject, versions_table.c.version)
        with self._reading() as conn:
            return [(r.subject, r.version) for r in conn.execute(query.order_by(*order))]

    def subjects(
        self, prefix: str = "", include_deleted: bool = False, deleted_only: bool = False
    ) -> list[str]:
        query = select(versions_table.c.subject, versions_table.c.deleted).distinct()
        if prefix:
            query = query.where(versions_table.c.subject.startswith(prefix, autoescape=True))
        with self._reading() as conn:
            rows = conn.execute(query).all()
        live = {r.subject for r in rows if not r.deleted}
        every = {r.subject for r in rows}
        if deleted_only:
            return sorted(every - live)
        return sorted(every if include_deleted else live)

    def versions(
        self, subject: str, include_deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        with self._reading() as conn:
            rows = _version_rows(conn, subject)
        if deleted_only:
            rows = [r for r in rows if r.deleted]
        elif not include_deleted:
            rows = [r for r in rows if not r.deleted]
        if not rows:
            raise SubjectNotFoundError(f"Subject '{subject}' not found.")
        return [r.version for r in rows]

    def get_version(
        self, subject: str, version: int | Latest, include_deleted: bool = False
    ) -> SubjectVersion:
        """One version of a subject; "latest" is the highest visible version."""
        with self._reading() as conn:
            return _subject_version(conn, subject, version, include_deleted)

    def lookup(
        self, subject: str, schema_str: str, include_deleted: bool = False
    ) -> SubjectVersion:
        """The version of a subject holding this schema (POST /subjects/{subject})."""
        parsed = parse_avro(schema_str)
        query = (
            select(versions_table.c.version)
            .join(schemas_table, schemas_table.c.id == versions_table.c.schema_id)
            .where(
                versions_table.c.subject == subject,
                schemas_table.c.fingerprint == parsed.fingerprint,
            )
            .order_by(versions_table.c.deleted, versions_table.c.version.desc())
        )
        if not include_deleted:
            query = query.where(versions_table.c.deleted.is_(False))
        with self._reading() as conn:
            _visible_versions(conn, subject, include_deleted)
            version = conn.execute(query).scalar()
            if version is None:
                raise SchemaNotFoundError("Schema not found")
            return _subject_version(conn, subject, version, include_deleted)

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every live version, or hard-delete an already soft-deleted subject."""
        where = versions_table.c.subject == subject
        with self._writing() as conn:
            rows = _version_rows(conn, subject)
            if not rows:
                raise SubjectNotFoundError(f"Subject '{subject}' not found.")
            live = [r.version for r in rows if not r.deleted]
            if permanent and live:
                raise SubjectNotSoftDeletedError(
                    f"Subject '{subject}' must be soft deleted before it is permanently deleted"
                )
            if permanent:
                conn.execute(versions_table.delete().where(where))
                return [r.version for r in rows]
            if not live:
                raise SubjectSoftDeletedError(f"Subject '{subject}' was soft deleted.")
            conn.execute(versions_table.update().where(where).values(deleted=True))
            conn.execute(config_table.delete().where(config_table.c.subject == subject))
            return live

    def delete_version(self, subject: str, version: int | Latest, permanent: bool = False) -> int:
        """Soft-delete one version, or hard-delete one that is already soft-deleted."""
        with self._writing() as conn:
            found = _subject_version(conn, subject, version, include_deleted=permanent)
            if permanent and not found.deleted:
                raise SubjectNotSoftDeletedError(
                    f"Subject '{subject}' version {found.version} must be soft deleted before "
                    "it is permanently deleted"
                )
            where = (versions_table.c.subject == subject) & (
                versions_table.c.version == found.version
            )
            if permanent:
                conn.execute(versions_table.delete().where(where))
            else:
                conn.execute(versions_table.update().where(where).values(deleted=True))
        return found.version

    def test_compatibility(
        self, subject: str, schema_str: str, version: int | Latest | None = None
    ) -> tuple[str, list[Incompatibility]]:
        """(level, problems) of a candidate schema against one version of a subject, or with
        None against the versions registering would check. Nothing to check is compatible."""
        parsed = parse_avro(schema_str)
        with self._reading() as conn:
            mode = _compatibility(conn, subject)
            previous = _live_schemas(conn, subject)
            if isinstance(version, int):
                found = _subject_version(conn, subject, version, include_deleted=False)
                previous = {found.version: found.schema.schema}
            elif version == "latest":
                previous = dict(list(previous.items())[-1:])
        return mode, compatibility.check(mode, parsed.text, previous)

    def get_compatibility(self, subject: str | None = None) -> str:
        """A subject's own level if set, else the global one, else BACKWARD."""
        with self._reading() as conn:
            return _compatibility(conn, subject)

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        level = level.upper()
        if level not in COMPATIBILITY_LEVELS:
            valid = ", ".join(sorted(COMPATIBILITY_LEVELS))
            raise InvalidCompatibilityError(
                f"Invalid compatibility level {level!r}; valid: {valid}"
            )
        key = GLOBAL_CONFIG_KEY if subject is None else subject
        with self._writing() as conn:
            conn.execute(config_table.delete().where(config_table.c.subject == key))
            conn.execute(config_table.insert().values(subject=key, compatibility=level))
        return level

    def delete_compatibility(self, subject: str | None = None) -> str:
        """Drop a subject's own level (or reset the global one); returns the level it had."""
        key = GLOBAL_CONFIG_KEY if subject is None else subject
        with self._writing() as conn:
            old = conn.execute(
                select(config_table.c.compatibility).where(config_table.c.subject == key)
            ).scalar()
            if old is None and subject is not None:
                raise SubjectConfigNotFoundError(
                    f"Subject '{subject}' does not have subject-level compatibility configured"
                )
            conn.execute(config_table.delete().where(config_table.c.subject == key))
        return old or DEFAULT_COMPATIBILITY
