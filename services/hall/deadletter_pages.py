"""Dead letters (死信): by stage and reason, each with its masked detail; the authority redrives.

The list reads ``govbus.dlq`` as ``govbus dlq list`` does (the authority and ops); a redrive is
``govbus dlq redrive`` (services/dlq_redrive.py): the authority only, by a CSRF-checked form.
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.catalog.workflow import Refused, Role
from services.dlq_redrive import Letter, RedriveError, letter_at, read_letters, redrive
from services.hall.ops_state import WATCHERS, get_ops, kafka_answers, require
from services.hall.pages import Poster, Viewer, Who, page

router = APIRouter()
SHOWN = 200  # the newest letters listed


def _matches(letter: Letter, stage: str, reason: str, resource: str) -> bool:
    return (
        (not stage or letter.stage == stage)
        and (not reason or letter.reason == reason)
        and (not resource or letter.headers.get("govbus.resource") == resource)
    )


def _render(request: Request, viewer: Viewer, stage="", reason="", resource="", done=""):
    with kafka_answers():
        letters = list(read_letters(get_ops(request).settings))
    counts = Counter((x.stage, x.reason) for x in letters)
    shown = [x for x in letters if _matches(x, stage, reason, resource)][-SHOWN:][::-1]
    return page(
        request,
        viewer,
        "deadletters.html",
        counts=sorted(counts.items()),
        letters=shown,
        total=len(letters),
        query={"stage": stage, "reason": reason, "resource": resource},
        done=done,
        may_redrive=viewer.actor.role is Role.AUTHORITY,
    )


@router.get("/deadletters")
def dead_letters(
    request: Request, viewer: Who, stage: str = "", reason: str = "", resource: str = ""
) -> Response:
    require(viewer.actor, *WATCHERS)
    return _render(request, viewer, stage[:64], reason[:64], resource[:200])


@router.post("/deadletters/{offset}/redrive")
def redrive_letter(request: Request, viewer: Poster, offset: int) -> Response:
    require(viewer.actor, Role.AUTHORITY)
    settings = get_ops(request).settings
    try:
        with kafka_answers():
            done = redrive(settings, letter_at(settings, offset), {})
    except RedriveError as exc:
        raise Refused(str(exc)) from exc
    return _render(request, viewer, done=f"{offset}: {done}")
