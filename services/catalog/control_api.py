"""The control-plane HTTP API: catalog, users, and the grant workflow (OpenAPI at /docs).

Every call needs ``Authorization: Bearer <token>``. The workflow decides who may do what;
this layer only authenticates, translates errors into 4xx answers with a message, and
limits what each department sees.

A change succeeds when the store commits it. Its answer says whether it is on the bus yet:
``"publication": "published"`` once the outbox relay has published every change committed
so far (waited for briefly), else ``"pending"``: stored, and published when Kafka takes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.catalog.catalog_files import export_files, import_files
from services.catalog.control_plane import ControlPlane
from services.catalog.ingest_gateway import IngestGateway, IngestUnavailable, UnknownResource
from services.catalog.outbox_relay import OutboxRelay
from services.catalog.preview_limit import PreviewLimiter, TooManyPreviews
from services.catalog.users import (
    Unauthenticated,
    add_user,
    appoint,
    remove_user,
    rotate_token,
    token_actor,
)
from services.catalog.workflow import (
    Action,
    Actor,
    Case,
    Forbidden,
    GrantRequest,
    NotFound,
    Role,
    WorkflowError,
    overdue,
    visible_to,
)
from services.common.catalog import CODE, NAME_MAX, TEXT_MAX, CatalogEntry, GrantState

bearer = HTTPBearer(auto_error=False)
# How long a change's answer waits for the relay: long enough for a live Kafka to acknowledge,
# short enough that with Kafka away the answer still comes within a second.
PUBLISH_WAIT_S = 0.5
Publication = Literal["published", "pending"]
DEFAULT_PREVIEW_RATE = "20/minute"
PUSH_MAX = 5000  # changes per pushed batch


def _plane(request: Request) -> ControlPlane:
    return request.app.state.plane


Plane = Annotated[ControlPlane, Depends(_plane)]


def _actor(
    plane: Plane, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Actor:
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer <token>'")
    return token_actor(plane.store, creds.credentials)


Who = Annotated[Actor, Depends(_actor)]


class NewUser(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=NAME_MAX)
    department: str = Field(pattern=CODE, max_length=NAME_MAX)
    role: Role
    representative: bool = False  # the department's chief representative (首席代表)


class Appointment(BaseModel):
    representative: bool


class ResourceBody(BaseModel):
    entry: CatalogEntry
    value_schema: dict[str, Any] | None = None


class Decision(BaseModel):
    reason: str | None = Field(None, max_length=TEXT_MAX)


class CaseReply(Case):
    publication: Publication


class ResourceReply(BaseModel):
    entry: CatalogEntry
    value_schema: dict[str, Any]
    schema_version: int
    publication: Publication


def _publication(plane: ControlPlane, relay: OutboxRelay | None) -> Publication:
    """Whether every change committed so far is on the bus, after waiting a moment for it."""
    head = plane.store.outbox_head()
    if head is None or (relay is not None and relay.wait_published(head, PUBLISH_WAIT_S)):
        return "published"
    return "pending"


class Files(BaseModel):
    files: dict[str, str]


class Preview(BaseModel):
    request: GrantRequest
    samples: list[dict[str, Any]] = Field(min_length=1, max_length=100)


class Pushed(BaseModel):
    """A provider's batch: each change has ``op`` (c/u/d), ``after`` and/or ``before``, and
    optionally its ``position`` in the provider's system and ``source_ts_ms``."""

    changes: list[Any] = Field(min_length=1, max_length=PUSH_MAX)


class PushReply(BaseModel):
    accepted: int
    event_ids: list[str]
    rejected: list[dict[str, Any]]


class Samples(BaseModel):
    samples: list[dict[str, Any]] = Field(min_length=1, max_length=100)


def _require(actor: Actor, *roles: Role) -> None:
    if actor.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Forbidden(f"this needs the {allowed} role; {actor.user} is {actor.role}")


class IssuedTokenReply(BaseModel):
    name: str
    token: str
    expires_at: dt.datetime


def create_control_app(
    plane: ControlPlane,
    relay: OutboxRelay | None = None,
    preview_rate: str = DEFAULT_PREVIEW_RATE,
    ingest: IngestGateway | None = None,
) -> FastAPI:
    previews = PreviewLimiter(preview_rate)
    app = FastAPI(
        title="govbus control plane",
        description="Data resource catalog and the share (grant) workflow: the consumer "
        "requests, the provider approves, the authority activates and supervises.",
    )
    app.state.plane = plane
    app.state.previews = previews  # the data hall's previews count against the same limit

    def case_reply(case: Case) -> CaseReply:
        return CaseReply(**dict(case), publication=_publication(plane, relay))

    @app.get("/whoami")
    def whoami(actor: Who) -> Actor:
        return actor

    @app.get("/departments")
    def departments(actor: Who, plane: Plane) -> dict[str, Any]:
        return {k: v.model_dump() for k, v in plane.store.departments().items()}

    @app.get("/users")
    def users(actor: Who, plane: Plane) -> list[Actor]:
        """Everyone to the authority and ops; its own department to a representative."""
        if actor.representative:
            return [u for u in plane.store.users() if u.department == actor.department]
        _require(actor, Role.AUTHORITY, Role.OPS)
        return plane.store.users()

    @app.post("/users", status_code=201)
    def new_user(body: NewUser, actor: Who, plane: Plane) -> IssuedTokenReply:
        issued = add_user(
            plane.store, actor, body.name, body.department, body.role, body.representative
        )
        return IssuedTokenReply(name=body.name, **issued._asdict())

    @app.post("/users/{name}/token")
    def new_token(name: str, actor: Who, plane: Plane) -> IssuedTokenReply:
        """Rotate a token: the old one is refused from now on."""
        return IssuedTokenReply(name=name, **rotate_token(plane.store, actor, name)._asdict())

    @app.put("/users/{name}/representative")
    def representative(name: str, body: Appointment, actor: Who, plane: Plane) -> Actor:
        """Appoint (or dismiss) a department's chief representative: the authority only."""
        return appoint(plane.store, actor, name, body.representative)

    @app.delete("/users/{name}", status_code=204)
    def delete_user(name: str, actor: Who, plane: Plane) -> None:
        remove_user(plane.store, actor, name)

    @app.get("/resources")
    def resources(actor: Who, plane: Plane) -> list[dict[str, Any]]:
        return [r.as_json() for r in plane.store.resources()]

    @app.get("/resources/{resource_id}")
    def resource(resource_id: str, actor: Who, plane: Plane) -> dict[str, Any]:
        return plane.resource(resource_id).as_json()

    @app.put("/resources/{resource_id}")
    def put_resource(
        resource_id: str, body: ResourceBody, actor: Who, plane: Plane
    ) -> ResourceReply:
        if body.entry.resource_id != resource_id:
            raise WorkflowError(f"path names {resource_id}, body {body.entry.resource_id}")
        res = plane.put_resource(actor, body.entry, body.value_schema)
        return ResourceReply(**res.as_json(), publication=_publication(plane, relay))

    @app.get("/catalog/export")
    def export(actor: Who, plane: Plane) -> Files:
        return Files(files=export_files(plane))

    @app.post("/catalog/import")
    def import_(body: Files, actor: Who, plane: Plane) -> dict[str, Any]:
        counts = import_files(plane, actor, body.files)
        return {**counts, "publication": _publication(plane, relay)}

    @app.get("/grants", response_model_exclude_none=True)
    def grants(
        actor: Who,
        plane: Plane,
        consumer: str | None = None,
        resource: str | None = None,
        state: GrantState | None = None,
    ) -> list[Case]:
        cases = plane.store.cases(consumer, resource, state)
        return [c for c in cases if visible_to(actor, c)]

    @app.get("/grants/overdue", response_model_exclude_none=True)
    def late(actor: Who, plane: Plane) -> list[Case]:
        today = dt.date.today()
        return [c for c in overdue(plane.store.cases(), today) if visible_to(actor, c)]

    @app.post("/grants/preview")
    def preview(body: Preview, actor: Who, plane: Plane) -> list[dict[str, Any] | None]:
        """Dry run of a request on sample records: nothing is stored or published. Pseudonyms
        come from a key made for this call, so they match no delivery."""
        previews.take(actor.user)
        return plane.preview_request(actor, body.request, body.samples)

    @app.get("/grants/{grant_id}", response_model_exclude_none=True)
    def grant(grant_id: str, actor: Who, plane: Plane) -> Case:
        case = plane.case(grant_id)
        if not visible_to(actor, case):
            raise NotFound(f"no grant {grant_id!r}")
        return case

    @app.get("/grants/{grant_id}/history")
    def history(grant_id: str, actor: Who, plane: Plane) -> list[dict[str, Any]]:
        grant(grant_id, actor, plane)
        return plane.store.changes(grant_id)

    @app.post("/grants/{grant_id}/preview")
    def preview_grant(
        grant_id: str, body: Samples, actor: Who, plane: Plane
    ) -> list[dict[str, Any] | None]:
        case = grant(grant_id, actor, plane)
        previews.take(actor.user)
        return plane.preview(case.grant, body.samples)

    @app.post("/grants", status_code=201, response_model_exclude_none=True)
    def request(body: GrantRequest, actor: Who, plane: Plane) -> CaseReply:
        return case_reply(plane.request(actor, body))

    @app.post("/grants/{grant_id}/{action}", response_model_exclude_none=True)
    def act(grant_id: str, action: Action, actor: Who, plane: Plane, body: Decision) -> CaseReply:
        if action is Action.EXPIRE:
            raise Forbidden("expiry happens when a grant's validity ends; revoke it instead")
        if action is Action.SUSPEND:
            raise Forbidden("a grant is suspended by a catalog edit it no longer fits; revoke it")
        return case_reply(plane.act(actor, grant_id, action, body.reason))

    @app.get("/changes")
    def change_log(
        actor: Who, plane: Plane, object_id: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        _require(actor, Role.AUTHORITY, Role.OPS)
        return plane.store.changes(object_id, min(max(limit, 1), 1000))

    @app.post("/ingest/{resource_id}", status_code=202)
    def push(resource_id: str, body: Pushed, actor: Who) -> PushReply:
        """HTTP push: answered once Kafka acknowledged the accepted changes; each rejected one
        is listed with why (and is on the dead-letter topic)."""
        _require(actor, Role.PROVIDER)
        if resource_id.split(".", 1)[0] != actor.department:
            raise Forbidden(
                f"{actor.user} pushes for department {actor.department}, whose resources are "
                f"{actor.department}.*; {resource_id} belongs to another department"
            )
        if ingest is None:
            raise IngestUnavailable("this service takes no pushed changes")
        try:
            result = ingest.push(actor.department, actor.user, resource_id, body.changes)
        except UnknownResource as exc:
            raise NotFound(str(exc)) from exc
        return PushReply(
            accepted=len(result.event_ids), event_ids=result.event_ids, rejected=result.rejected
        )

    @app.exception_handler(IngestUnavailable)
    async def _unavailable(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503, {"Retry-After": "5"})

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 401, {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(TooManyPreviews)
    async def _too_many(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyPreviews)
        return JSONResponse({"detail": str(exc)}, 429, {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(WorkflowError)
    async def _workflow(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WorkflowError)
        return JSONResponse({"detail": exc.message}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse({"detail": f"invalid request: {problems}"}, 422)

    return app
