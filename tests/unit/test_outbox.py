"""The transactional outbox of the control store: a change and what it owes the bus commit
together or not at all, in seq order, and are forgotten only once published."""

from __future__ import annotations

import datetime as dt

import pytest

from services.catalog.control_store import ControlStore, Resource, grant_record
from services.catalog.outbox import RecordTooLarge
from services.catalog.workflow import Case
from services.common import catalog_feed, grant_feed
from services.common.schemas import value_schema
from services.common.topics import CATALOG, GRANTS
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, grant

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)


def resource() -> Resource:
    entry = catalog()[RESIDENTS]
    return Resource(entry, value_schema(entry, SCHEMAS), schema_version=3)


def case() -> Case:
    g = grant("mca-resident-population")
    return Case(grant=g, requested_by="x", requested_at=NOW, updated_at=NOW, activations=2)


def test_a_change_and_its_records_commit_together_in_seq_order():
    store = ControlStore("sqlite://")
    with store.transaction() as conn:
        store.put_resource(conn, resource())
        first = store.owe_resource(conn, resource(), NOW)
        store.put_case(conn, case())
        second = store.owe_grant(conn, grant_record(case()), NOW)
    assert first < second
    rows = store.outbox_pending()
    assert [(r.seq, r.topic, r.key) for r in rows] == [
        (first, CATALOG, RESIDENTS),
        (second, GRANTS, "mca-resident-population"),
    ]
    record = catalog_feed.decode(rows[0].value)
    assert record.schema_version == 3 and record.resource_id == RESIDENTS
    assert grant_feed.decode(rows[1].value).activation == 2
    assert store.resource(RESIDENTS) is not None and store.outbox_head() == second


def test_a_change_that_fails_leaves_neither_the_change_nor_its_record():
    store = ControlStore("sqlite://")
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.put_case(conn, case())
        store.owe_grant(conn, grant_record(case()), NOW)
        raise RuntimeError("refused after writing")
    assert store.outbox_pending() == [] and store.outbox_head() is None
    assert store.case("mca-resident-population") is None


def test_a_record_larger_than_kafka_takes_is_refused_before_it_blocks_the_outbox():
    store = ControlStore("sqlite://", max_record_bytes=500)
    with pytest.raises(RecordTooLarge, match="govbus.catalog"), store.transaction() as conn:
        store.put_resource(conn, resource())
        store.owe_resource(conn, resource(), NOW)
    assert store.outbox_pending() == [] and store.resource(RESIDENTS) is None


def test_published_records_are_forgotten_and_their_seqs_never_come_back():
    store = ControlStore("sqlite://")
    with store.transaction() as conn:
        seqs = [store.owe_grant(conn, grant_record(case()), NOW) for _ in range(3)]
    store.mark_published(seqs[1])
    assert [r.seq for r in store.outbox_pending()] == [seqs[2]]
    assert [r.seq for r in store.outbox_pending(after_seq=seqs[2])] == []
    store.mark_published(seqs[2])
    assert store.outbox_head() is None
    with store.transaction() as conn:
        later = store.owe_grant(conn, grant_record(case()), NOW)
    assert later > seqs[2]  # "published through seq N" stays true after rows are deleted
