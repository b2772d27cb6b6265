"""The grant workflow's state machine and calendar, as pure functions and properties."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.catalog.workflow import (
    Action,
    Actor,
    Calendar,
    Conflict,
    Forbidden,
    GrantRequest,
    Refused,
    Role,
    WorkflowError,
    decide,
    expired,
    new_case,
    overdue,
    suspension_reasons,
)
from services.common.catalog import FieldSpec, GrantState, Sensitivity, ShareType
from tests.unit.fixtures import RESIDENTS, catalog

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)  # a Thursday
CAL = Calendar()
ENTRY = catalog()[RESIDENTS]
ACTORS = [
    Actor(user="mca-wang", department="mca", role=Role.CONSUMER),
    Actor(user="psb-li", department="psb", role=Role.PROVIDER),
    Actor(user="samr-zhao", department="samr", role=Role.PROVIDER),
    Actor(user="admin", department="dsj", role=Role.AUTHORITY),
    Actor(user="ops-sun", department="dsj", role=Role.OPS),
]
CONSUMER, PROVIDER, OTHER_PROVIDER, AUTHORITY, OPS = ACTORS


def request(**changes) -> GrantRequest:
    body = {
        "resource": RESIDENTS,
        "purpose": "低保核查",
        "legal_basis": "《社会救助暂行办法》",
        "fields": ["id_number", "region_code"],
        "valid_from": NOW.date(),
        "valid_until": NOW.date() + dt.timedelta(days=30),
    }
    return GrantRequest(**{**body, **changes})


def fresh_case():
    return new_case(request(), ENTRY, CONSUMER, "g-1", NOW, CAL)


def test_only_a_consumer_requests_and_for_its_own_department():
    with pytest.raises(Forbidden):
        new_case(request(), ENTRY, PROVIDER, "g", NOW, CAL)
    assert fresh_case().grant.consumer == "mca"


def test_share_type_decides_the_path():
    unconditional = ENTRY.model_copy(update={"share_type": ShareType.UNCONDITIONAL})
    case = new_case(request(), unconditional, CONSUMER, "g", NOW, CAL)
    assert case.grant.state is GrantState.APPROVED and case.waiting_for is Role.AUTHORITY
    not_shared = ENTRY.model_copy(update={"share_type": ShareType.NOT_SHARED})
    with pytest.raises(Refused, match="not shared"):
        new_case(request(), not_shared, CONSUMER, "g", NOW, CAL)


def test_working_days_skip_weekends_and_holidays():
    # Thursday + 2 working days = Monday; with that Monday a holiday, Tuesday.
    assert CAL.add_working_days(dt.date(2026, 11, 26), 2) == dt.date(2026, 11, 30)
    holiday = Calendar(holidays=frozenset({dt.date(2026, 11, 30)}))
    assert holiday.add_working_days(dt.date(2026, 11, 26), 2) == dt.date(2026, 12, 1)
    assert fresh_case().step_due == CAL.add_working_days(NOW.date(), CAL.provider_days)


def test_working_days_follow_the_official_schedule_with_its_make_up_days():
    # National Day 2026: 1-7 October off, Saturday 10 October worked (调休).
    assert CAL.add_working_days(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)
    assert CAL.add_working_days(dt.date(2026, 10, 9), 1) == dt.date(2026, 10, 10)
    # A year the library has no schedule for: Monday to Friday, plus what settings say.
    assert CAL.add_working_days(dt.date(2099, 1, 2), 1) == dt.date(2099, 1, 5)
    told = Calendar(workdays=frozenset({dt.date(2099, 1, 3)}))
    assert told.add_working_days(dt.date(2099, 1, 2), 1) == dt.date(2099, 1, 3)


@given(start=st.dates(dt.date(2020, 1, 1), dt.date(2035, 1, 1)), days=st.integers(1, 60))
def test_a_due_date_is_a_working_day_exactly_n_working_days_later(start, days):
    due = CAL.add_working_days(start, days)
    assert CAL.is_working_day(due)
    span = [start + dt.timedelta(days=i) for i in range(1, (due - start).days + 1)]
    assert sum(CAL.is_working_day(d) for d in span) == days


def test_overdue_and_expired_lists():
    case = fresh_case()
    assert overdue([case], case.step_due) == []
    assert overdue([case], case.step_due + dt.timedelta(days=1)) == [case]
    assert expired([case], case.grant.valid_until + dt.timedelta(days=1)) == [case]
    assert expired([case], case.grant.valid_until) == []


# Who may take which step from which state, and the state it leads to: written out here, not
# read from workflow.RULES, so a wrong rule there fails these tests.
R, A, L, S = GrantState.REQUESTED, GrantState.APPROVED, GrantState.ACTIVE, GrantState.SUSPENDED
ALLOWED: dict[tuple[Role, Action], dict[GrantState, GrantState]] = {
    (Role.PROVIDER, Action.APPROVE): {R: A},
    (Role.PROVIDER, Action.REJECT): {R: GrantState.REJECTED},
    (Role.AUTHORITY, Action.REJECT): {A: GrantState.REJECTED},
    (Role.AUTHORITY, Action.ACTIVATE): {A: L, S: L},
    (Role.AUTHORITY, Action.REVOKE): {x: GrantState.REVOKED for x in (R, A, L, S)},
    (Role.PROVIDER, Action.REVOKE): {x: GrantState.REVOKED for x in (R, A, L, S)},
    (Role.AUTHORITY, Action.EXPIRE): {x: GrantState.EXPIRED for x in (R, A, L, S)},
    (Role.AUTHORITY, Action.SUSPEND): {L: S},
}
FINAL = (GrantState.REJECTED, GrantState.REVOKED, GrantState.EXPIRED)


def in_state(state: GrantState):
    case = fresh_case()
    return case.model_copy(update={"grant": case.grant.model_copy(update={"state": state})})


@pytest.mark.parametrize("state", list(GrantState))
@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("actor", ACTORS, ids=lambda a: a.user)
def test_who_may_take_which_step_from_which_state(actor, action, state):
    case = in_state(state)
    # Expiry needs the validity ended; every other step needs it running.
    now = NOW + dt.timedelta(days=60 if action is Action.EXPIRE else 0)
    allowed = ALLOWED.get((actor.role, action), {})
    if actor in (OPS, OTHER_PROVIDER) or not allowed:
        with pytest.raises(Forbidden):
            decide(case, action, actor, ENTRY, now, CAL, "why")
        return
    if state not in allowed:
        with pytest.raises(Conflict):
            decide(case, action, actor, ENTRY, now, CAL, "why")
        return
    after = decide(case, action, actor, ENTRY, now, CAL, "why")
    assert after.grant.state is allowed[state]


def test_each_activation_is_counted_and_a_suspension_keeps_why():
    case = decide(in_state(GrantState.APPROVED), Action.ACTIVATE, AUTHORITY, ENTRY, NOW, CAL)
    assert case.activations == 1 and case.activated_by == "admin"
    why = "resource psb.resident_population is now not shared"
    suspended = decide(case, Action.SUSPEND, AUTHORITY, ENTRY, NOW, CAL, why)
    assert suspended.reason == why and suspended.activations == 1
    again = decide(suspended, Action.ACTIVATE, AUTHORITY, ENTRY, NOW, CAL)
    assert again.activations == 2 and again.grant.state is GrantState.ACTIVE
    with pytest.raises(Refused, match="reason"):
        decide(case, Action.SUSPEND, AUTHORITY, ENTRY, NOW, CAL)


def test_a_suspended_grant_is_activated_again_only_once_it_fits_the_catalog():
    suspended = in_state(GrantState.SUSPENDED)
    not_shared = ENTRY.model_copy(update={"share_type": ShareType.NOT_SHARED})
    with pytest.raises(Conflict, match="not shared"):
        decide(suspended, Action.ACTIVATE, AUTHORITY, not_shared, NOW, CAL)
    # A field removed from the resource since does not stand in the way: it is not delivered.
    fields = {k: v for k, v in ENTRY.fields.items() if k != "region_code"}
    fewer = ENTRY.model_copy(update={"fields": fields})
    assert decide(suspended, Action.ACTIVATE, AUTHORITY, fewer, NOW, CAL).grant.state is L


def test_suspension_reasons_name_what_the_grant_no_longer_fits():
    clear = fresh_case().grant.model_copy(update={"masking": {}})
    assert suspension_reasons(clear, ENTRY) == [
        "field id_number is now L4 and the grant keeps it in clear with no reason"
    ]
    assert suspension_reasons(fresh_case().grant, ENTRY) == []  # hmac-masked by default
    kept = clear.model_copy(update={"fields": ("region_code",)})
    assert suspension_reasons(kept, ENTRY) == []
    not_shared = ENTRY.model_copy(update={"share_type": ShareType.NOT_SHARED})
    assert "not shared" in suspension_reasons(kept, not_shared)[0]
    raised = ENTRY.model_copy(
        update={
            "fields": {
                **ENTRY.fields,
                "region_code": FieldSpec(sensitivity=Sensitivity.L4, description="区划"),
            }
        }
    )
    assert "region_code is now L4" in suspension_reasons(kept, raised)[0]
    reasoned = kept.model_copy(update={"l4_clear_reason": "经省数据局批准"})
    assert suspension_reasons(reasoned, raised) == []
    gone = {k: v for k, v in ENTRY.fields.items() if k != "region_code"}
    filtered = kept.model_copy(update={"row_filter": "region_code startswith '3401'"})
    removed = ENTRY.model_copy(update={"fields": gone})
    assert "row_filter" in suspension_reasons(filtered, removed)[0]
    # A removed field alone is no reason: routers deliver the grant without it.
    assert suspension_reasons(kept, removed) == []


steps = st.lists(
    st.tuples(st.sampled_from(ACTORS), st.sampled_from(list(Action)), st.booleans()),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, days_later=st.integers(0, 60))
def test_every_path_through_the_workflow_obeys_the_rules(steps, days_later):
    case = fresh_case()
    now = NOW + dt.timedelta(days=days_later)
    for actor, action, with_reason in steps:
        before = case.grant.state
        try:
            after = decide(case, action, actor, ENTRY, now, CAL, "why" if with_reason else None)
        except WorkflowError as exc:
            # Nobody from ops, and no provider of another resource, ever changes anything.
            if actor in (OPS, OTHER_PROVIDER):
                assert isinstance(exc, Forbidden)
            if before in FINAL:
                assert isinstance(exc, Forbidden | Conflict)
            continue
        assert actor not in (OPS, OTHER_PROVIDER)
        assert after.grant.state is ALLOWED[(actor.role, action)][before]
        if after.grant.state is GrantState.ACTIVE:
            assert before in (GrantState.APPROVED, GrantState.SUSPENDED)
            assert actor.role is Role.AUTHORITY and after.activated_by == actor.user
            assert after.activations == case.activations + 1
        if after.grant.state is GrantState.APPROVED:
            assert before is GrantState.REQUESTED and actor is PROVIDER
        if after.grant.state in (GrantState.REJECTED, GrantState.REVOKED):
            assert after.reason and after.closed_by == actor.user
        if after.grant.state is GrantState.EXPIRED:
            assert after.grant.valid_until < now.date()
        # Only the state and the workflow's own fields change: never the terms granted.
        assert after.grant.model_dump(exclude={"state"}) == case.grant.model_dump(exclude={"state"})
        case = after
