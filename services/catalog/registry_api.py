"""The Confluent Schema Registry REST subset that confluent-kafka's SchemaRegistryClient,
its Avro serde, kcat and Kafka Connect converters use, served from a SchemaRegistryStore.

Unknown query parameters are ignored, so newer clients' extra flags do no harm. Every route
but ``/`` and ``/healthz`` needs a signed-in principal, and writes the right to write
(registry_auth.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from services.catalog.compatibility import Incompatibility, details
from services.catalog.registry_auth import GlobalWriter, Login, Reader, SubjectWriter
from services.catalog.registry_errors import (
    InvalidCompatibilityError,
    InvalidSchemaError,
    InvalidVersionError,
    RegistryError,
)
from services.catalog.registry_store import (
    SUPPORTED_SCHEMA_TYPES,
    Latest,
    SchemaRegistryStore,
    StoredSchema,
    SubjectVersion,
    check_schema_type,
)

REGISTRY_MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_VERSION = 2**31 - 1


class RegistryJSONResponse(JSONResponse):
    media_type = REGISTRY_MEDIA_TYPE


class SchemaBody(BaseModel):
    """POST body of register and lookup; metadata and ruleSet are accepted and ignored."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_str: str = Field(alias="schema")
    schema_type: str = Field("AVRO", alias="schemaType")
    references: list[dict[str, Any]] = Field(default_factory=list)


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    compatibility: str | None = None
    compatibility_level: str | None = Field(None, alias="compatibilityLevel")


def _store(request: Request) -> SchemaRegistryStore:
    return request.app.state.registry_store


Store = Annotated[SchemaRegistryStore, Depends(_store)]
Deleted = Annotated[bool, Query()]
Offset = Annotated[int, Query()]
Limit = Annotated[int, Query()]
Verbose = Annotated[bool, Query()]

open_router = APIRouter()  # liveness, for health checks that hold no credentials
router = APIRouter(dependencies=[Reader])


def _page(items: list[Any], offset: int, limit: int) -> list[Any]:
    # Confluent's pagination: a non-positive limit means "all".
    start = max(offset, 0)
    return items[start : start + limit] if limit > 0 else items[start:]


def _version(raw: str) -> int | Latest:
    if raw in ("latest", "-1"):
        return "latest"
    if raw.isdigit() and 1 <= int(raw) <= MAX_VERSION:
        return int(raw)
    raise InvalidVersionError(
        f"The specified version '{raw}' is not a valid version id. "
        f'Allowed values are between [1, {MAX_VERSION}] and the string "latest"'
    )


def _schema_text(body: SchemaBody) -> str:
    check_schema_type(body.schema_type)
    if body.references:
        raise InvalidSchemaError("Schema references are not supported by this registry")
    return body.schema_str


def _schema_json(schema: StoredSchema) -> dict[str, Any]:
    # Like Confluent, schemaType is only spelled out when it is not the AVRO default.
    return {"schema": schema.schema, "guid": schema.guid}


def _version_json(found: SubjectVersion) -> dict[str, Any]:
    return {
        "subject": found.subject,
        "version": found.version,
        "id": found.schema.id,
        **_schema_json(found.schema),
    }


def _raw_schema(schema: StoredSchema) -> Response:
    return Response(content=schema.schema, media_type=REGISTRY_MEDIA_TYPE)


@open_router.get("/")
def root() -> dict[str, Any]:
    return {}


@open_router.get("/healthz")
def healthz(store: Store) -> Response:
    try:
        store.ping()
    except SQLAlchemyError as exc:
        return RegistryJSONResponse({"status": "unavailable", "reason": str(exc)}, 503)
    return RegistryJSONResponse({"status": "ok"})


@router.get("/schemas/types")
def schema_types() -> list[str]:
    return list(SUPPORTED_SCHEMA_TYPES)


@router.get("/schemas/ids/{schema_id}")
def schema_by_id(schema_id: int, store: Store) -> dict[str, Any]:
    return _schema_json(store.get_by_id(schema_id))


@router.get("/schemas/ids/{schema_id}/schema")
def raw_schema_by_id(schema_id: int, store: Store) -> Response:
    return _raw_schema(store.get_by_id(schema_id))


@router.get("/schemas/guids/{guid}")
def schema_by_guid(guid: str, store: Store) -> dict[str, Any]:
    schema = store.get_by_guid(guid)
    return {"id": schema.id, **_schema_json(schema)}


@router.get("/schemas/ids/{schema_id}/versions")
def schema_usages(
    schema_id: int, store: Store, deleted: Deleted = False, offset: Offset = 0, limit: Limit = -1
) -> list[dict[str, Any]]:
    pairs = store.usages(schema_id, include_deleted=deleted)
    return _page([{"subject": s, "version": v} for s, v in pairs], offset, limit)


@router.get("/schemas/ids/{schema_id}/subjects")
def schema_subjects(
    schema_id: int, store: Store, deleted: Deleted = False, offset: Offset = 0, limit: Limit = -1
) -> list[str]:
    subjects = dict.fromkeys(s for s, _ in store.usages(schema_id, include_deleted=deleted))
    return _page(list(subjects), offset, limit)


@router.get("/subjects")
def subjects(
    store: Store,
    subject_prefix: Annotated[str, Query(alias="subjectPrefix")] = "",
    deleted: Deleted = False,
    deleted_only: Deleted = False,
    offset: Offset = 0,
    limit: Limit = -1,
) -> list[str]:
    found = store.subjects(subject_prefix, include_deleted=deleted, deleted_only=deleted_only)
    return _page(found, offset, limit)


@router.get("/subjects/{subject}/versions")
def subject_versions(
    subject: str,
    store: Store,
    deleted: Deleted = False,
    deleted_only: Deleted = False,
    offset: Offset = 0,
    limit: Limit = -1,
) -> list[int]:
    found = store.versions(subject, include_deleted=deleted, deleted_only=deleted_only)
    return _page(found, offset, limit)


@router.post("/subjects/{subject}/versions")
def register(subject: str, body: SchemaBody, store: Store, _: SubjectWriter) -> dict[str, Any]:
    # The schema is left out on purpose: the client then caches the exact text it sent.
    schema_id, version = store.register(subject, _schema_text(body))
    guid = store.get_by_id(schema_id).guid
    return {"id": schema_id, "guid": guid, "subject": subject, "version": version}


@router.post("/subjects/{subject}")
def lookup(subject: str, body: SchemaBody, store: Store, deleted: Deleted = False) -> dict:
    return _version_json(store.lookup(subject, _schema_text(body), include_deleted=deleted))


@router.delete("/subjects/{subject}")
def delete_subject(
    subject: str, store: Store, _: SubjectWriter, permanent: bool = False
) -> list[int]:
    return store.delete_subject(subject, permanent=permanent)


@router.get("/subjects/{subject}/versions/{version}")
def subject_version(subject: str, version: str, store: Store, deleted: Deleted = False) -> dict:
    return _version_json(store.get_version(subject, _version(version), include_deleted=deleted))


@router.get("/subjects/{subject}/versions/{version}/schema")
def subject_version_schema(
    subject: str, version: str, store: Store, deleted: Deleted = False
) -> Response:
    found = store.get_version(subject, _version(version), include_deleted=deleted)
    return _raw_schema(found.schema)


@router.delete("/subjects/{subject}/versions/{version}")
def delete_version(
    subject: str, version: str, store: Store, _: SubjectWriter, permanent: bool = False
) -> int:
    return store.delete_version(subject, _version(version), permanent=permanent)


def _compatibility_json(
    mode: str, problems: list[Incompatibility], verbose: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        body["messages"] = details(problems, mode) if problems else []
    return body


@router.post("/compatibility/subjects/{subject}/versions/{version}")
def compatibility_with_version(
    subject: str, version: str, body: SchemaBody, store: Store, verbose: Verbose = False
) -> dict[str, Any]:
    """Would this schema evolve that one version under the subject's level?"""
    mode, problems = store.test_compatibility(subject, _schema_text(body), _version(version))
    return _compatibility_json(mode, problems, verbose)


@router.post("/compatibility/subjects/{subject}/versions")
def compatibility_with_versions(
    subject: str, body: SchemaBody, store: Store, verbose: Verbose = False
) -> dict[str, Any]:
    """Would registering this schema pass: latest, or every version if transitive."""
    mode, problems = store.test_compatibility(subject, _schema_text(body))
    return _compatibility_json(mode, problems, verbose)


def _level(body: ConfigBody) -> str:
    level = body.compatibility or body.compatibility_level
    if not level:
        raise InvalidCompatibilityError("Invalid compatibility level: none given")
    return level


@router.get("/config")
def global_config(store: Store) -> dict[str, str]:
    return {"compatibilityLevel": store.get_compatibility()}


@router.put("/config")
def set_global_config(body: ConfigBody, store: Store, _: GlobalWriter) -> dict[str, str]:
    return {"compatibility": store.set_compatibility(_level(body))}


@router.delete("/config")
def delete_global_config(store: Store, _: GlobalWriter) -> dict[str, str]:
    return {"compatibilityLevel": store.delete_compatibility()}


@router.get("/config/{subject}")
def subject_config(subject: str, store: Store) -> dict[str, str]:
    # Falls back to the global level, as confluent-kafka's get_compatibility() documents.
    return {"compatibilityLevel": store.get_compatibility(subject)}


@router.put("/config/{subject}")
def set_subject_config(
    subject: str, body: ConfigBody, store: Store, _: SubjectWriter
) -> dict[str, str]:
    return {"compatibility": store.set_compatibility(_level(body), subject)}


@router.delete("/config/{subject}")
def delete_subject_config(subject: str, store: Store, _: SubjectWriter) -> dict[str, str]:
    return {"compatibilityLevel": store.delete_compatibility(subject)}


def _error(status: int, error_code: int, message: str) -> RegistryJSONResponse:
    # A 401 names the scheme, so clients and browsers know to send basic credentials.
    headers = {"WWW-Authenticate": 'Basic realm="govbus registry"'} if status == 401 else None
    return RegistryJSONResponse({"error_code": error_code, "message": message}, status, headers)


async def _registry_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return _error(exc.http_status, exc.error_code, exc.message)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}")


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return _error(422, 422, f"Unprocessable request: {problems}")


def create_registry_app(store: SchemaRegistryStore, login: Login) -> FastAPI:
    """A FastAPI app serving the registry REST API from the given store to whom ``login``
    admits."""
    app = FastAPI(title="govbus schema registry", default_response_class=RegistryJSONResponse)
    app.state.registry_store = store
    app.state.registry_login = login
    app.include_router(open_router)
    app.include_router(router)
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app
