"""Login with an API token, logout, and the language toggle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from services.catalog.users import Unauthenticated, token_actor
from services.hall.pages import Hall, HallDep, base_path, check_csrf, render, session_of
from services.hall.sessions import COOKIE, LANGS, Session

router = APIRouter()


def _set_cookie(response: Response, hall: Hall, session: Session, base: str) -> None:
    response.set_cookie(
        COOKIE,
        session.sid,
        httponly=True,
        samesite="strict",
        secure=hall.secure_cookie,
        path=base or "/",
    )


def _anonymous(request: Request, hall: Hall) -> tuple[Session, bool]:
    """The browser's session, or a new one (True) to carry the login form's CSRF token."""
    session = session_of(request)
    return (session, False) if session is not None else (hall.sessions.new(), True)


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse(f"{base_path(request)}/catalog", 303)


@router.get("/login")
def login_form(request: Request, hall: HallDep, expired: int = 0) -> Response:
    session, new = _anonymous(request, hall)
    response = render(request, "login.html", session, expired=bool(expired), error=None)
    if new:
        _set_cookie(response, hall, session, base_path(request))
    return response


@router.post("/login")
async def login(
    request: Request, hall: HallDep, token: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    session = session_of(request)
    if session is None:  # no form was served to this browser: start over
        return RedirectResponse(f"{base_path(request)}/login", 303)
    await check_csrf(request, session)
    try:
        token_actor(hall.plane.store, token.strip())
    except Unauthenticated as exc:
        return render(
            request, "login.html", session, status_code=401, expired=False, error=str(exc)
        )
    signed_in = hall.sessions.login(session, token.strip())
    response = RedirectResponse(f"{base_path(request)}/catalog", 303)
    _set_cookie(response, hall, signed_in, base_path(request))
    return response


@router.post("/logout")
async def logout(request: Request, hall: HallDep) -> Response:
    session = session_of(request)
    if session is not None:
        await check_csrf(request, session)
        hall.sessions.end(session.sid)
    response = RedirectResponse(f"{base_path(request)}/login", 303)
    response.delete_cookie(COOKIE, path=base_path(request) or "/")
    return response


@router.post("/lang")
async def language(
    request: Request,
    hall: HallDep,
    lang: Annotated[str, Form()],
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Switch the session's language; back to the page it was asked from (same site only)."""
    session = session_of(request)
    base = base_path(request)
    if session is None:
        return RedirectResponse(f"{base}/login", 303)
    await check_csrf(request, session)
    if lang in LANGS:
        session.lang = lang
    # Only a path inside the hall: never an open redirect.
    target = back if back.startswith(f"{base}/") and not back.startswith("//") else f"{base}/"
    return RedirectResponse(target, 303)
