"""部门管理 / My department: a department's chief representative manages its users and Kafka
system accounts here; the authority does the same for any department and sees what the
representatives did (the change log). Every step is the control plane's own function, under
the rule of services/catalog/stewardship.py, exactly as the API applies it.

A new token or password is shown in the answer to the form that made it, and nowhere after.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Form, Request
from starlette.responses import RedirectResponse, Response

from services.catalog.control_store import ControlStore
from services.catalog.kafka_account_sync import KafkaAccountSync
from services.catalog.stewardship import STAFF_ROLES, department_page_problem
from services.catalog.system_accounts import (
    add_account,
    list_accounts,
    remove_account,
    rotate_account,
)
from services.catalog.users import add_user, remove_user, rotate_token
from services.catalog.workflow import Actor, Forbidden, NotFound, Refused, Role
from services.hall.pages import HallDep, Poster, Viewer, Who, base_path, page

router = APIRouter()
OVERSIGHT_SCAN = 1000  # newest change-log entries searched for the representatives' actions
OVERSIGHT_SHOWN = 50


def use_account_sync(hall: FastAPI, accounts: KafkaAccountSync) -> None:
    """What applies the page's account changes to Kafka and knows their passwords."""
    hall.state.accounts = accounts


def _sync(request: Request) -> KafkaAccountSync | None:
    return getattr(request.app.state, "accounts", None)  # None: no Kafka at hand


def representative_actions(
    store: ControlStore, department: str | None = None
) -> list[dict[str, Any]]:
    """The newest change-log entries made by representatives (of ``department``, else any)."""
    reps = {
        u.user for u in store.users() if u.representative and department in (None, u.department)
    }
    found = [c for c in store.changes(limit=OVERSIGHT_SCAN) if c["actor"] in reps]
    return found[:OVERSIGHT_SHOWN]


def _checked(hall: Any, actor: Actor, code: str) -> None:
    if problem := department_page_problem(actor, code):
        raise Forbidden(problem)
    if code not in hall.plane.store.departments():
        raise NotFound(f"no department {code!r}")


def _show(request: Request, hall: Any, viewer: Viewer, code: str, **done: Any) -> Response:
    store = hall.plane.store
    oversight = None
    if viewer.actor.role is Role.AUTHORITY:
        oversight = representative_actions(store, code)
    return page(
        request,
        viewer,
        "department.html",
        code=code,
        users=[u for u in store.users() if u.department == code],
        accounts=list_accounts(store, viewer.actor, code),
        staff_roles=STAFF_ROLES,
        oversight=oversight,
        **done,
    )


@router.get("/department")
def department_home(request: Request, hall: HallDep, viewer: Who) -> Response:
    actor = viewer.actor
    if actor.role is not Role.AUTHORITY:
        _checked(hall, actor, actor.department)
        return RedirectResponse(f"{base_path(request)}/department/{actor.department}", 303)
    store = hall.plane.store
    return page(
        request,
        viewer,
        "department.html",
        code=None,
        departments=sorted(store.departments()),
        oversight=representative_actions(store),
    )


@router.get("/department/{code}")
def department(code: str, request: Request, hall: HallDep, viewer: Who) -> Response:
    _checked(hall, viewer.actor, code)
    return _show(request, hall, viewer, code)


@router.post("/department/{code}/users")
def new_user(
    code: str,
    request: Request,
    hall: HallDep,
    viewer: Poster,
    name: str = Form(..., max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$"),
    role: str = Form(...),
) -> Response:
    _checked(hall, viewer.actor, code)
    if role not in {r.value for r in STAFF_ROLES}:
        raise Refused(f"role: a department's user is a provider or consumer, not {role!r}")
    issued = add_user(hall.plane.store, viewer.actor, name, code, Role(role))
    return _show(request, hall, viewer, code, token_for=name, token=issued.token)


@router.post("/department/{code}/users/{name}/rotate")
def new_token(code: str, name: str, request: Request, hall: HallDep, viewer: Poster) -> Response:
    _checked(hall, viewer.actor, code)
    issued = rotate_token(hall.plane.store, viewer.actor, name)
    return _show(request, hall, viewer, code, token_for=name, token=issued.token)


@router.post("/department/{code}/users/{name}/remove")
def drop_user(code: str, name: str, request: Request, hall: HallDep, viewer: Poster) -> Response:
    _checked(hall, viewer.actor, code)
    remove_user(hall.plane.store, viewer.actor, name)
    return _show(request, hall, viewer, code, removed=name)


def _password_shown(request: Request, code: str, system: str) -> dict[str, Any]:
    accounts = _sync(request)
    if accounts is None:
        return {"password_for": system, "password": None}
    accounts.notify()
    password = accounts.client_config(code, system).get("sasl.password")
    return {"password_for": system, "password": password}


@router.post("/department/{code}/accounts")
def new_account(
    code: str,
    request: Request,
    hall: HallDep,
    viewer: Poster,
    name: str = Form(..., max_length=64),
) -> Response:
    _checked(hall, viewer.actor, code)
    add_account(hall.plane.store, viewer.actor, code, name)
    return _show(request, hall, viewer, code, **_password_shown(request, code, name))


@router.post("/department/{code}/accounts/{name}/rotate")
def new_password(code: str, name: str, request: Request, hall: HallDep, viewer: Poster) -> Response:
    _checked(hall, viewer.actor, code)
    rotate_account(hall.plane.store, viewer.actor, code, name)
    return _show(request, hall, viewer, code, **_password_shown(request, code, name))


@router.post("/department/{code}/accounts/{name}/remove")
def drop_account(code: str, name: str, request: Request, hall: HallDep, viewer: Poster) -> Response:
    _checked(hall, viewer.actor, code)
    remove_account(hall.plane.store, viewer.actor, code, name)
    if (accounts := _sync(request)) is not None:
        accounts.notify()
    return _show(request, hall, viewer, code, removed=name)
