"""The grant workflow's state machine and calendar, as pure functions and properties."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.catalog.workflow import (
    FINAL,
    RULES,
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
)
from services.common.catalog import GrantState, ShareType
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


@given(start=st.dates(dt.date(2020, 1, 1), dt.date(2035, 1, 1)), days=st.integers(1, 60))
def test_a_due_date_is_a_working_day_exactly_n_working_days_later(start, days):
    due = CAL.add_working_days(start, days)
    assert due.weekday() < 5
    span = [start + dt.timedelta(days=i) for i in range(1, (due - start).days + 1)]
    assert sum(d.weekday() < 5 for d in span) == days


def test_overdue_and_expired_lists():
    case = fresh_case()
    assert overdue([case], case.step_due) == []
    assert overdue([case], case.step_due + dt.timedelta(days=1)) == [case]
    assert expired([case], case.grant.valid_until + dt.timedelta(days=1)) == [case]
    assert expired([case], case.grant.valid_until) == []


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
        states, roles = RULES[action]
        assert actor.role in roles and actor not in (OPS, OTHER_PROVIDER)
        assert before in states and before not in FINAL
        if after.grant.state is GrantState.ACTIVE:
            assert before is GrantState.APPROVED and actor.role is Role.AUTHORITY
            assert after.activated_by == actor.user
        if after.grant.state is GrantState.APPROVED:
            assert before is GrantState.REQUESTED and actor is PROVIDER
        if after.grant.state in (GrantState.REJECTED, GrantState.REVOKED):
            assert after.reason and after.closed_by == actor.user
        if after.grant.state is GrantState.EXPIRED:
            assert after.grant.valid_until < now.date()
        # Only the state and the workflow's own fields change: never the terms granted.
        assert after.grant.model_dump(exclude={"state"}) == case.grant.model_dump(exclude={"state"})
        case = after
