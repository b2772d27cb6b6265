"""Listing grants for the data hall's pages: the store narrows by department and orders by
due date, and never hides less than the API's visibility rule would."""

from __future__ import annotations

from services.catalog.workflow import Role, visible_to
from services.hall.listing import ResourceCache, by_due_date, narrowing, shown
from tests.unit.hall_client import HallWorld
from tests.unit.test_hall_requests import late_and_fresh


def test_each_role_sees_in_a_listing_what_the_api_shows_it():
    world = HallWorld()
    store = world.plane.store
    for user in ("mca-wang", "psb-li", "samr-zhao", "admin", "ops-sun"):
        actor = world.actor(user)
        listed = {c.grant.id for c in shown(actor, store.case_bodies(**narrowing(actor)))}
        api = {c.grant.id for c in store.cases() if visible_to(actor, c)}
        assert listed and listed == api, user


def test_a_provider_code_that_prefixes_another_does_not_match_it():
    world = HallWorld()
    store = world.plane.store
    assert store.case_bodies(provider="ps") == []
    assert store.count_cases(provider="psb") == len(store.case_bodies(provider="psb")) > 0
    assert store.count_cases(provider="ps_") == 0  # LIKE wildcards are escaped


def test_open_steps_come_earliest_due_first_from_the_store_and_in_memory():
    world, first, second = late_and_fresh()
    bodies = world.plane.store.case_bodies(state="requested", by_due=True)
    ids = [b["grant"]["id"] for b in bodies]
    assert ids.index(first) < ids.index(second)
    assert [b["grant"]["id"] for b in by_due_date(list(reversed(bodies)))] == ids


def test_the_resource_cache_follows_catalog_changes():
    world = HallWorld()
    cache = ResourceCache(world.plane.store)
    before = cache.resources()
    assert cache.resources() is before  # nothing changed: parsed once
    res = world.plane.resource("psb.resident_population")
    renamed = res.entry.model_copy(update={"name_en": "Residents (renamed)"})
    world.plane.put_resource(world.actor("admin"), renamed, None)
    names = {r.entry.name_en for r in cache.resources()}
    assert "Residents (renamed)" in names


def test_narrowing_never_narrows_the_authority_or_ops():
    world = HallWorld()
    for user, role in (("admin", Role.AUTHORITY), ("ops-sun", Role.OPS)):
        actor = world.actor(user)
        assert actor.role is role and narrowing(actor) == {}
