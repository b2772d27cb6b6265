"""What every data-hall page uses: the hall's state, the signed-in viewer, the CSRF check and
rendering a template with the layout's context.

The viewer is the user of the API token the session holds, checked on every request by the
API's own ``token_actor``: an expired or rotated token ends the session. What the viewer may
do is decided by the control plane's functions, exactly as for the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from services.catalog.control_plane import ControlPlane
from services.catalog.outbox_relay import OutboxRelay
from services.catalog.preview_limit import PreviewLimiter
from services.catalog.users import Unauthenticated, token_actor
from services.catalog.workflow import Actor
from services.hall import csrf
from services.hall.deliveries import DeliveryCounter
from services.hall.i18n import translator
from services.hall.listing import ResourceCache
from services.hall.nav import nav_for
from services.hall.sessions import COOKIE, Session, SessionStore

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Hall:
    plane: ControlPlane
    sessions: SessionStore
    previews: PreviewLimiter
    relay: OutboxRelay | None
    secure_cookie: bool
    templates: Jinja2Templates
    resources: ResourceCache
    deliveries: DeliveryCounter | None = None  # None: counts unknown (no Kafka at hand)


class NeedLogin(Exception):
    """No signed-in session: the page sends the browser to the login page (with why)."""

    def __init__(self, why: str | None = None) -> None:
        super().__init__(why or "")
        self.why = why


def get_hall(request: Request) -> Hall:
    return request.app.state.hall


HallDep = Annotated[Hall, Depends(get_hall)]


def session_of(request: Request) -> Session | None:
    return get_hall(request).sessions.get(request.cookies.get(COOKIE))


@dataclass
class Viewer:
    session: Session
    actor: Actor


def get_viewer(request: Request) -> Viewer:
    hall = get_hall(request)
    session = session_of(request)
    if session is None or session.token is None:
        raise NeedLogin()
    try:
        actor = token_actor(hall.plane.store, session.token)
    except Unauthenticated as exc:
        hall.sessions.end(session.sid)
        raise NeedLogin(str(exc)) from exc
    return Viewer(session, actor)


Who = Annotated[Viewer, Depends(get_viewer)]


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


async def check_csrf(request: Request, session: Session) -> None:
    """Refuse a POST without the session's CSRF token (form field or htmx header)."""
    submitted = request.headers.get(csrf.HEADER)
    if submitted is None:
        form = await request.form()  # Starlette keeps it for the route's Form parameters
        value = form.get(csrf.FIELD)
        submitted = value if isinstance(value, str) else None
    csrf.check(session.csrf, submitted, request.headers.get("origin"), own_origin(request))


async def posting_viewer(request: Request) -> Viewer:
    """The signed-in viewer of a POST, once its CSRF token checked out."""
    viewer = get_viewer(request)
    await check_csrf(request, viewer.session)
    return viewer


Poster = Annotated[Viewer, Depends(posting_viewer)]


def base_path(request: Request) -> str:
    """The hall's prefix (``/hall`` where the catalog service mounts it)."""
    return request.scope.get("root_path", "")


def render(
    request: Request,
    template: str,
    session: Session | None,
    actor: Actor | None = None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    hall = get_hall(request)
    lang = session.lang if session else "zh"
    ctx = {
        "t": translator(lang),
        "lang": lang,
        "actor": actor,
        "nav": nav_for(actor) if actor else [],
        "csrf_token": session.csrf if session else "",
        "base": base_path(request),
        "path": request.url.path,
        **context,
    }
    return hall.templates.TemplateResponse(request, template, ctx, status_code=status_code)


def page(request: Request, viewer: Viewer, template: str, **context: Any) -> Response:
    return render(request, template, viewer.session, viewer.actor, **context)
