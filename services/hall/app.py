"""The data hall's app, mounted by the catalog service at ``/hall``.

Pages come from routers (``PAGE_ROUTERS``); every refusal renders as a page with its status
and reason (a fragment for htmx calls): a workflow refusal with the control plane's own
message, a bad form with what is wrong, a missing CSRF token as 403. Never a 500 for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from services.catalog.control_plane import ControlPlane
from services.catalog.outbox_relay import OutboxRelay
from services.catalog.preview_limit import PreviewLimiter, TooManyPreviews
from services.catalog.workflow import WorkflowError
from services.hall import (
    catalog_pages,
    department_pages,
    grant_pages,
    inbox_pages,
    login_pages,
    request_pages,
)
from services.hall.csrf import CsrfRefused
from services.hall.deliveries import DeliveryCounter
from services.hall.listing import ResourceCache
from services.hall.pages import (
    TEMPLATES,
    Hall,
    NeedLogin,
    base_path,
    get_viewer,
    render,
    session_of,
)
from services.hall.security_headers import SecurityHeaders
from services.hall.sessions import SessionStore

STATIC = Path(__file__).parent / "static"
PAGE_ROUTERS: list[APIRouter] = [
    department_pages.router,
    login_pages.router,
    catalog_pages.router,
    request_pages.router,
    grant_pages.router,
    inbox_pages.router,
]


def create_hall_app(
    plane: ControlPlane,
    previews: PreviewLimiter,
    relay: OutboxRelay | None = None,
    secure_cookie: bool = False,
    session_idle_s: float = 8 * 3600,
    deliveries: DeliveryCounter | None = None,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    app = FastAPI(title="govbus data hall", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    sessions = SessionStore(session_idle_s)
    app.state.hall = Hall(
        plane,
        sessions,
        previews,
        relay,
        secure_cookie,
        templates,
        ResourceCache(plane.store),
        deliveries,
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in [*PAGE_ROUTERS, *routers]:
        app.include_router(router)

    def refusal(request: Request, status: int, message: str) -> Response:
        session = session_of(request)
        actor = None
        if session is not None and session.token is not None:
            try:
                actor = get_viewer(request).actor
            except NeedLogin:
                session = None
        fragment = request.headers.get("hx-request") == "true"
        template = "_error.html" if fragment else "error.html"
        return render(
            request, template, session, actor, status_code=status, status=status, message=message
        )

    @app.exception_handler(NeedLogin)
    async def _login(request: Request, exc: NeedLogin) -> Response:
        target = f"{base_path(request)}/login" + ("?expired=1" if exc.why else "")
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, 303)

    @app.exception_handler(WorkflowError)
    async def _workflow(request: Request, exc: WorkflowError) -> Response:
        return refusal(request, exc.status, exc.message)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        return refusal(request, 403, str(exc))

    @app.exception_handler(TooManyPreviews)
    async def _too_many(request: Request, exc: TooManyPreviews) -> Response:
        response = refusal(request, 429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
        )
        return refusal(request, 422, f"invalid form: {problems}")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return refusal(request, exc.status_code, str(exc.detail))

    return app
