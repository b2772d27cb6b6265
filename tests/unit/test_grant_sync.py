"""Grant records joined with the live catalog into routes: states, amendments, unreadable
records and schema versions."""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry

from services.common.catalog import GrantState
from services.common.catalog_feed import CatalogRecord
from services.common.feed import Unreadable
from services.common.grant_feed import GrantRecord
from services.common.metrics import BusMetrics
from services.common.schemas import source_schema, value_schema
from services.common.topics import CATALOG, GRANTS
from services.router.live_grants import GrantSync
from services.router.routing import Router
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, codec, grant

TODAY = dt.date(2026, 11, 26)
MCA = "mca-resident-population"
TOPIC = "gov.psb.resident_population"


def rig():
    router = Router(codec(), b"unit-test-master-secret", source_schema(SCHEMAS))
    metrics = BusMetrics(CollectorRegistry())
    created: list[str] = []
    sync = GrantSync(r"^gov\.psb\..+", router, metrics, created.extend)
    return sync, router, metrics, created


def resources(*ids: str, schema=None, version=1) -> dict:
    out = {}
    for rid in ids:
        entry = catalog()[rid]
        out[rid] = CatalogRecord(
            resource=entry,
            value_schema=schema or value_schema(entry, SCHEMAS),
            schema_version=version,
        )
    return out


def record(grant_id: str, activation: int = 1, **changes) -> GrantRecord:
    return GrantRecord(grant=grant(grant_id, **changes), activation=activation)


def routed(router) -> list[str]:
    return sorted(g.id for g in router.grants())


def unreadable_count(metrics, topic: str) -> float:
    return metrics.registry.get_sample_value("govbus_feed_unreadable_total", {"topic": topic})


def test_grant_states_start_stop_and_amend_routes():
    sync, router, _, created = rig()
    sync.apply_catalog(resources(RESIDENTS, "samr.enterprise_registration"))
    mca = record(MCA)
    approved = record("edu-resident-population", state=GrantState.APPROVED)
    sync.apply_grants({MCA: mca, approved.grant.id: approved})
    other = record("tax-enterprise-registration")  # not on this router's sources
    sync.apply_grants({other.grant.id: other})
    assert routed(router) == [MCA]
    assert created == ["deliver.mca.resident_population"]  # created before delivering

    # An amendment replaces the grant it amends; the amended one's revocation changes nothing.
    amended = record(MCA, id="mca-v2", amends=MCA)
    sync.apply_grants({"mca-v2": amended, MCA: record(MCA, state=GrantState.REVOKED)})
    assert routed(router) == ["mca-v2"]
    sync.apply_grants({MCA: mca})  # the old one coming back active while amended: stays off
    assert routed(router) == ["mca-v2"]

    # Terms that cannot be compiled stop the grant rather than keep its old terms delivering.
    broken = amended.grant.model_copy(update={"row_filter": "no_such_field == 1"})
    sync.apply_grants({"mca-v2": amended.model_copy(update={"grant": broken})})
    assert routed(router) == []


def test_a_grant_waits_for_its_resource_and_is_routed_once_the_catalog_has_it():
    sync, router, _, _ = rig()
    sync.apply_grants({MCA: record(MCA)})
    assert routed(router) == []
    assert sync.pending_backfills(TODAY) == []
    sync.apply_catalog(resources(RESIDENTS))
    assert routed(router) == [MCA]
    (pending,) = sync.pending_backfills(TODAY)
    assert pending[0].backfill_id == MCA and pending[1] is router.route_of(MCA)


def test_an_unreadable_grant_record_stops_that_grant_and_is_counted():
    sync, router, metrics, _ = rig()
    sync.apply_catalog(resources(RESIDENTS))
    sync.apply_grants(
        {MCA: record(MCA), "edu-resident-population": record("edu-resident-population")}
    )
    sync.apply_grants({MCA: Unreadable(MCA, 41, "ValidationError: unknown field 'quota'")})
    assert routed(router) == ["edu-resident-population"]
    assert MCA in sync.unreadable
    assert unreadable_count(metrics, GRANTS) == 1
    sync.apply_catalog(resources(RESIDENTS, version=2))  # a recompilation does not revive it
    assert routed(router) == ["edu-resident-population"]


def test_an_unreadable_catalog_record_stops_every_grant_on_it_until_readable_again():
    sync, router, metrics, _ = rig()
    sync.apply_catalog(resources(RESIDENTS))
    sync.apply_grants({MCA: record(MCA)})
    sync.apply_catalog({RESIDENTS: Unreadable(RESIDENTS, 7, "newer format")})
    assert routed(router) == []
    assert unreadable_count(metrics, CATALOG) == 1
    sync.apply_catalog(resources(RESIDENTS, version=3))
    assert routed(router) == [MCA]


def test_a_new_schema_version_recompiles_the_routes_on_it():
    sync, router, _, _ = rig()
    sync.apply_catalog(resources(RESIDENTS))
    sync.apply_grants({MCA: record(MCA)})
    before = router.route_of(MCA)
    assert "gender" in {n for n, _ in before.plan.fields}
    schema = value_schema(catalog()[RESIDENTS], SCHEMAS)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "gender"]
    sync.apply_catalog(resources(RESIDENTS, schema=schema, version=2))
    after = router.route_of(MCA)
    assert after is not before
    assert "gender" not in {n for n, _ in after.plan.fields}


def test_each_activation_gets_its_own_backfill():
    sync, router, _, _ = rig()
    sync.apply_catalog(resources(RESIDENTS))
    sync.apply_grants({MCA: record(MCA)})
    (pending,) = sync.pending_backfills(TODAY)
    assert pending[0].backfill_id == MCA
    sync.apply_grants({MCA: record(MCA, state=GrantState.SUSPENDED)})
    assert routed(router) == []
    assert sync.pending_backfills(TODAY) == []
    sync.apply_grants({MCA: record(MCA, activation=2)})
    (pending,) = sync.pending_backfills(TODAY)
    assert pending[0].backfill_id == f"{MCA}@2"
