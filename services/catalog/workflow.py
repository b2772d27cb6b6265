"""The grant workflow as pure functions: who may move a grant from which state to which.

The consumer states a need (request), the provider answers (approve or reject, with a
reason), the authority activates, and the authority or the provider may revoke. The share
type decides the path: an unconditional resource skips the provider's step, a not-shared
one cannot be requested. Each open step has a due date counted in working days.

A catalog edit that an active grant no longer fits (the resource made not shared, a field it
keeps in clear raised to L4, a row filter naming a field that is gone) suspends the grant;
the authority may activate it again once it fits, or revoke it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from enum import StrEnum

import chinese_calendar
from pydantic import Field

from services.common.catalog import (
    CatalogEntry,
    Grant,
    GrantState,
    GrantTerms,
    Sensitivity,
    ShareType,
    Strict,
    check_grant_against_catalog,
    l4_in_clear,
    row_filter_problem,
)
from services.common.masking import MaskSpec

OPEN = (GrantState.REQUESTED, GrantState.APPROVED)
FINAL = (GrantState.REJECTED, GrantState.REVOKED, GrantState.EXPIRED)


class Role(StrEnum):
    PROVIDER = "provider"
    CONSUMER = "consumer"
    AUTHORITY = "authority"
    OPS = "ops"  # read-only


class Actor(Strict):
    user: str
    department: str
    role: Role
    # The department's chief representative (首席代表): keeps the role, and manages the
    # department's users and accounts (stewardship.py); set by the authority only.
    representative: bool = False


SYSTEM = Actor(user="system", department="authority", role=Role.AUTHORITY)


class WorkflowError(Exception):
    """A step that may not be taken; ``status`` is the HTTP status that says why."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(WorkflowError):
    status = 403


class Conflict(WorkflowError):
    status = 409


class Refused(WorkflowError):
    status = 422


class NotFound(WorkflowError):
    status = 404


class Calendar(Strict):
    """Working days as the State Council's schedule has them: holidays off, and the weekend
    days moved to make up for them (调休) worked, from ``chinesecalendar`` for the years it
    covers, Monday to Friday after that. ``holidays`` and ``workdays`` override both, for a
    year the library does not know yet or a provincial decision."""

    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()  # weekend days worked (调休)
    provider_days: int = Field(10, ge=1)  # the provider's answer to a request
    authority_days: int = Field(5, ge=1)  # the authority's activation of an approved grant

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError:  # a year the schedule is not published for yet
            return day.weekday() < 5

    def add_working_days(self, start: dt.date, days: int) -> dt.date:
        day, left = start, days
        while left > 0:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day


class GrantRequest(GrantTerms):
    """What a consumer asks for. Masking not given follows the field's sensitivity."""


class Case(Strict):
    """A grant and its way through the workflow."""

    grant: Grant
    requested_by: str
    requested_at: dt.datetime
    step_due: dt.date | None = None  # due date of the open step; None once decided
    decided_by: str | None = None  # the provider's answer (or "skipped: unconditional")
    activated_by: str | None = None
    l4_clear_approved_by: str | None = None
    closed_by: str | None = None  # rejected, revoked or expired by
    reason: str | None = None  # of a rejection, revocation or suspension
    updated_at: dt.datetime
    # How many times the grant was activated: each activation gets its own backfill.
    activations: int = Field(0, ge=0)

    @property
    def waiting_for(self) -> Role | None:
        return {GrantState.REQUESTED: Role.PROVIDER, GrantState.APPROVED: Role.AUTHORITY}.get(
            self.grant.state
        )


def visible_to(actor: Actor, case: Case) -> bool:
    """Consumers see their own grants, providers those on their resources, others all."""
    if actor.role is Role.CONSUMER:
        return case.grant.consumer == actor.department
    if actor.role is Role.PROVIDER:
        return case.grant.resource.split(".", 1)[0] == actor.department
    return True


def default_masking(entry: CatalogEntry, field_name: str) -> MaskSpec:
    """L1 and L2 go as they are; personal fields are masked unless the request says otherwise.

    Key fields are hmac-masked so delivered keys stay unique and joinable for one consumer.
    """
    level = entry.fields[field_name].sensitivity
    if level in (Sensitivity.L1, Sensitivity.L2):
        return MaskSpec(method="keep")
    return MaskSpec(method="hmac" if field_name in entry.key_fields else "redact")


def new_case(
    request: GrantRequest,
    entry: CatalogEntry,
    actor: Actor,
    grant_id: str,
    now: dt.datetime,
    calendar: Calendar,
) -> Case:
    """A consumer's request, checked against the catalog, at its first open step."""
    if actor.role is not Role.CONSUMER:
        raise Forbidden(
            f"only a consumer department may request a grant; {actor.user} is {actor.role}"
        )
    if entry.share_type is ShareType.NOT_SHARED:
        raise Refused(
            f"resource {entry.resource_id} is not shared (不予共享): the catalog does not allow "
            "sharing it with any department"
        )
    unknown = [f for f in request.fields if f not in entry.fields]
    if unknown:
        raise Refused(f"fields {unknown} are not in resource {entry.resource_id}")
    masking = {
        name: request.masking.get(name) or default_masking(entry, name) for name in request.fields
    }
    skip_provider = entry.share_type is ShareType.UNCONDITIONAL
    state = GrantState.APPROVED if skip_provider else GrantState.REQUESTED
    try:
        grant = Grant(
            id=grant_id,
            consumer=actor.department,
            **request.model_dump(exclude={"masking"}),
            masking=masking,
            state=state,
        )
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    problems = check_grant_against_catalog(grant, entry)
    if problems:
        raise Refused("; ".join(problems))
    days = calendar.authority_days if skip_provider else calendar.provider_days
    return Case(
        grant=grant,
        requested_by=actor.user,
        requested_at=now,
        step_due=calendar.add_working_days(now.date(), days),
        decided_by="skipped: unconditional share" if skip_provider else None,
        updated_at=now,
    )


class Action(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    ACTIVATE = "activate"
    REVOKE = "revoke"
    EXPIRE = "expire"
    SUSPEND = "suspend"  # by a catalog edit, never asked for directly


LIVE = (GrantState.ACTIVE, GrantState.SUSPENDED)

# Action -> (states it applies to, roles that may take it).
RULES: Mapping[Action, tuple[tuple[GrantState, ...], tuple[Role, ...]]] = {
    Action.APPROVE: ((GrantState.REQUESTED,), (Role.PROVIDER,)),
    Action.REJECT: (OPEN, (Role.PROVIDER, Role.AUTHORITY)),
    Action.ACTIVATE: ((GrantState.APPROVED, GrantState.SUSPENDED), (Role.AUTHORITY,)),
    Action.REVOKE: ((*OPEN, *LIVE), (Role.AUTHORITY, Role.PROVIDER)),
    Action.EXPIRE: ((*LIVE, *OPEN), (Role.AUTHORITY,)),
    Action.SUSPEND: ((GrantState.ACTIVE,), (Role.AUTHORITY,)),
}


def as_delivered(grant: Grant, entry: CatalogEntry) -> Grant:
    """The grant as routers apply it now: fields since removed from the resource left out."""
    fields = tuple(f for f in grant.fields if f in entry.fields)
    masking = {f: m for f, m in grant.masking.items() if f in entry.fields}
    return grant.model_copy(update={"fields": fields, "masking": masking})


def suspension_reasons(grant: Grant, entry: CatalogEntry) -> list[str]:
    """Why an active grant may no longer deliver under the edited catalog entry; empty if fine.

    A field removed from the resource is not a reason: routers deliver the grant without it.
    """
    reasons = []
    if entry.share_type is ShareType.NOT_SHARED:
        reasons.append(f"resource {entry.resource_id} is now not shared (不予共享)")
    for name in l4_in_clear(grant, entry):
        reasons.append(f"field {name} is now L4 and the grant keeps it in clear with no reason")
    if (problem := row_filter_problem(grant, entry)) is not None:
        reasons.append(f"row_filter no longer fits the resource: {problem}")
    return reasons


def _check_actor(action: Action, case: Case, entry: CatalogEntry, actor: Actor) -> None:
    states, roles = RULES[action]
    if actor.role is Role.OPS:
        raise Forbidden(f"{actor.user} has the ops role, which is read-only")
    if actor.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Forbidden(f"{action} needs the {allowed} role; {actor.user} is {actor.role}")
    if actor.role is Role.PROVIDER and actor.department != entry.provider:
        raise Forbidden(
            f"{actor.user} of {actor.department} may not {action} grants on "
            f"{entry.resource_id}, which {entry.provider} provides"
        )
    if action is Action.REJECT and actor.role is Role.AUTHORITY:
        states = (GrantState.APPROVED,)  # the authority declines activation, not the request
    if action is Action.REJECT and actor.role is Role.PROVIDER:
        states = (GrantState.REQUESTED,)
    if case.grant.state not in states:
        want = " or ".join(s.value for s in states)
        raise Conflict(f"grant {case.grant.id} is {case.grant.state}; {action} needs it {want}")


def decide(
    case: Case,
    action: Action,
    actor: Actor,
    entry: CatalogEntry,
    now: dt.datetime,
    calendar: Calendar,
    reason: str | None = None,
) -> Case:
    """The case after ``actor`` takes ``action``; raises WorkflowError when it may not."""
    _check_actor(action, case, entry, actor)
    g = case.grant
    if action in (Action.REJECT, Action.REVOKE, Action.SUSPEND) and not (reason and reason.strip()):
        raise Refused(f"{action} needs a reason")
    if action is Action.EXPIRE and g.valid_until >= now.date():
        raise Conflict(f"grant {g.id} is valid until {g.valid_until}; it has not expired")
    if action is Action.ACTIVATE and g.valid_until < now.date():
        raise Conflict(f"grant {g.id} ended on {g.valid_until}; it cannot be activated")
    if action is Action.ACTIVATE:
        # The catalog may have changed since the request (or the suspension).
        problems = check_grant_against_catalog(as_delivered(g, entry), entry)
        if problems:
            raise Conflict("; ".join(problems))
    update: dict = {"updated_at": now, "step_due": None}
    if action is Action.APPROVE:
        state = GrantState.APPROVED
        update |= {
            "decided_by": actor.user,
            "step_due": calendar.add_working_days(now.date(), calendar.authority_days),
        }
    elif action is Action.ACTIVATE:
        state = GrantState.ACTIVE
        # Activation is the authority's approval of a stated reason for an L4 field in clear.
        update |= {
            "activated_by": actor.user,
            "l4_clear_approved_by": actor.user if g.l4_clear_reason else None,
            "activations": case.activations + 1,
            "reason": None,
        }
    elif action is Action.SUSPEND:
        state = GrantState.SUSPENDED
        update |= {"reason": reason, "step_due": None}
    else:
        state = {
            Action.REJECT: GrantState.REJECTED,
            Action.REVOKE: GrantState.REVOKED,
            Action.EXPIRE: GrantState.EXPIRED,
        }[action]
        update |= {"closed_by": actor.user, "reason": reason}
        if action is Action.REJECT and g.state is GrantState.REQUESTED:
            update["decided_by"] = actor.user
    return case.model_copy(update={**update, "grant": g.model_copy(update={"state": state})})


def overdue(cases: Iterable[Case], today: dt.date) -> list[Case]:
    """Open steps past their due date, the longest overdue first."""
    late = [c for c in cases if c.step_due is not None and c.step_due < today]
    return sorted(late, key=lambda c: c.step_due)


def expired(cases: Iterable[Case], today: dt.date) -> list[Case]:
    """Grants that are not final yet and whose validity ended before today."""
    return [c for c in cases if c.grant.state not in FINAL and c.grant.valid_until < today]
