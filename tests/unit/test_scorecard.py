"""The scorecard's figures from plain facts: aggregation against the targets, freshness against
the declared frequency, dead-letter rate, answers on time, active shares."""

from __future__ import annotations

import datetime as dt

from services.catalog.scorecard import (
    PROVINCE,
    Answer,
    FlowFacts,
    StoreFacts,
    answers_from_changes,
    is_fresh,
    scorecard,
    waiting_answers,
)
from services.catalog.workflow import Action, Calendar, decide, new_case
from services.common.catalog import CatalogEntry
from tests.unit.fixtures import RESIDENTS, catalog
from tests.unit.test_workflow import AUTHORITY, CONSUMER, PROVIDER, request

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
BASE = catalog()[RESIDENTS]


def entry(code: str, provider: str, category: str, frequency: str = "daily") -> CatalogEntry:
    return BASE.model_copy(
        update={
            "code": code,
            "provider": provider,
            "category": category,
            "update_frequency": frequency,
        }
    )


def _dump(case) -> dict:
    return case.model_dump(mode="json")  # as the change log keeps a case


def ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def score_of(card, department: str, category: str):
    return next(s for s in card.scores if (s.department, s.category) == (department, category))


WATER = entry("water_payment", "water", "social")
POWER = entry("power_payment", "power", "social")
GAS = entry("gas_payment", "gas", "social")
PEOPLE = entry("people", "psb", "government", "realtime")
HOUSES = entry("houses", "psb", "government", "weekly")


def test_aggregation_is_measured_against_each_categorys_target():
    store = {
        "water.water_payment": StoreFacts(rows=10, last_change_ms=ms(NOW)),
        "power.power_payment": StoreFacts(rows=3, last_change_ms=ms(NOW)),
        "gas.gas_payment": StoreFacts(rows=0, last_change_ms=None),
        "psb.people": StoreFacts(rows=5, last_change_ms=ms(NOW)),
    }
    card = scorecard([WATER, POWER, GAS, PEOPLE, HOUSES], store, {}, [], [], NOW)
    social = score_of(card, PROVINCE, "social")
    assert (social.aggregated, social.resources, social.target) == (2, 3, 0.6)
    assert social.meets_target  # 2/3 of social data reaches the store: above 60 %
    government = score_of(card, "psb", "government")
    assert government.aggregation == 0.5 and not government.meets_target  # target is 100 %
    assert not score_of(card, "gas", "social").meets_target
    assert score_of(card, "water", "social").meets_target
    assert {(s.department, s.category) for s in card.below_target()} == {
        ("gas", "social"),
        ("psb", "government"),
        (PROVINCE, "government"),
    }


def test_freshness_compares_the_last_change_with_the_declared_frequency():
    two_hours_ago = ms(NOW - dt.timedelta(hours=2))
    assert not is_fresh(PEOPLE, StoreFacts(1, two_hours_ago), NOW)  # realtime: within an hour
    assert is_fresh(HOUSES, StoreFacts(1, two_hours_ago), NOW)  # weekly
    assert not is_fresh(HOUSES, StoreFacts(1, ms(NOW - dt.timedelta(days=8))), NOW)
    assert not is_fresh(HOUSES, StoreFacts(0, None), NOW)
    card = scorecard(
        [PEOPLE, HOUSES], {"psb.houses": StoreFacts(1, two_hours_ago)}, {}, [], [], NOW
    )
    assert score_of(card, "psb", "government").freshness == 0.5


def test_dead_letter_rate_is_per_change_offered():
    flow = {"psb.people": FlowFacts(offered=900, dead_letters=9), "psb.houses": FlowFacts(100, 1)}
    card = scorecard([PEOPLE, HOUSES], {}, flow, [], [], NOW)
    psb = score_of(card, "psb", "government")
    assert (psb.offered, psb.dead_letters, psb.dead_letter_rate) == (1000, 10, 0.01)
    assert (
        score_of(scorecard([PEOPLE], {}, {}, [], [], NOW), "psb", "government").dead_letter_rate
        is None
    )


def test_answers_on_time_count_late_open_requests_but_not_those_still_in_time():
    today = NOW.date()
    answers = [
        Answer("psb.people", today, today),  # on the due day: on time
        Answer("psb.people", today - dt.timedelta(days=3), today - dt.timedelta(days=1)),  # late
        Answer("psb.people", today - dt.timedelta(days=1), None),  # still open, overdue
        Answer("psb.people", today + dt.timedelta(days=5), None),  # still open, in time
        Answer("water.water_payment", today, today),  # another department's
    ]
    psb = score_of(scorecard([PEOPLE], {}, {}, answers, [], NOW), "psb", "government")
    assert (psb.answered_on_time, psb.answers_due) == (1, 3)
    assert psb.on_time == 1 / 3


def test_answers_come_from_the_change_log_and_the_open_cases():
    cal = Calendar()
    case = new_case(request(), BASE, CONSUMER, "g-1", NOW, cal)
    later = NOW + dt.timedelta(days=20)  # past the 10 working days
    approved = decide(case, Action.APPROVE, PROVIDER, BASE, later, cal)
    active = decide(approved, Action.ACTIVATE, AUTHORITY, BASE, later, cal)
    log = [
        {"at": later.isoformat(), "before": _dump(case), "after": _dump(approved)},
        {"at": later, "before": _dump(approved), "after": _dump(active)},  # the authority's
        {"at": NOW.isoformat(), "before": None, "after": _dump(case)},  # the request itself
    ]
    assert answers_from_changes(log) == [Answer(RESIDENTS, case.step_due, later.date())]
    assert waiting_answers([case, approved]) == [Answer(RESIDENTS, case.step_due, None)]
    card = scorecard([BASE], {}, {}, answers_from_changes(log), [active], later)
    psb = score_of(card, "psb", "government")
    assert (psb.answered_on_time, psb.answers_due, psb.active_shares) == (0, 1, 1)


def test_a_share_counts_while_it_delivers():
    cal = Calendar()
    case = new_case(request(), BASE, CONSUMER, "g-1", NOW, cal)
    active = decide(
        decide(case, Action.APPROVE, PROVIDER, BASE, NOW, cal),
        Action.ACTIVATE,
        AUTHORITY,
        BASE,
        NOW,
        cal,
    )
    revoked = decide(active, Action.REVOKE, AUTHORITY, BASE, NOW, cal, "done")
    assert (
        score_of(scorecard([BASE], {}, {}, [], [active], NOW), "psb", "government").active_shares
        == 1
    )
    after_validity = NOW + dt.timedelta(days=60)
    for cases, at in (([revoked], NOW), ([case], NOW), ([active], after_validity)):
        assert (
            score_of(scorecard([BASE], {}, {}, [], cases, at), "psb", "government").active_shares
            == 0
        )
