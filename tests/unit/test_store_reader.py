"""The backfill's read of the central store: the state below a seam, exact, in bounded pages,
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from services.common.catalog_feed import CatalogRecord
from services.common.schemas import value_schema
from services.common.sql import build_engine
from services.common.store_reader import (
    StoreState,
    behind,
    defaults_of,
    latest_below,
    record_key,
    resolve,
    store_positions,
)
from services.common.store_tables import source_version
from tests.store_rows import create, set_applied, store_change
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, resident

ENTRY = catalog()[RESIDENTS]
TOPIC = ENTRY.topic
YEAR_AGO_MS = 1_764_000_000_000 - 365 * 86_400_000


def _record(**entry_changes) -> CatalogRecord:
    entry = ENTRY.model_copy(update=entry_changes)
    return CatalogRecord(
        resource=entry, value_schema=value_schema(ENTRY, SCHEMAS), schema_version=1
    )


@pytest.fixture
def engine(store_url):
    """On SQLite and on the project's PostgreSQL (``store_url`` runs each test on both)."""
    engine = build_engine(store_url)
    yield engine
    engine.dispose()


def _person(n: int, **changes) -> dict:
    return resident(id_number=f"3401041986051{n:05d}", **changes)


def _state(engine, record, seam, page_rows=1000) -> dict[str, str]:
    """record key -> event id of the state below the seam."""
    rows = [r for page in StoreState(engine, record, seam, page_rows).pages() for r in page]
    keys = [r.record_key for r in rows]
    assert len(keys) == len(set(keys)), "a key came twice"
    return {r.record_key: r.event_id for r in rows}


def test_state_below_the_seam_takes_history_for_keys_changed_since_and_leaves_deletes_out(engine):
    record = _record()
    tables = create(engine, record)
    seam = {(TOPIC, 0): 10, (TOPIC, 1): 5, (TOPIC, 2): 3}
    w = lambda op, n, p, off, **kw: store_change(engine, tables, op, _person(n), p, off, **kw)  # noqa: E731
    w("c", 1, 0, 0)
    updated = store_change(engine, tables, "u", _person(1, name="王二"), 0, 3)  # below: current
    w("c", 2, 0, 1)
    w("d", 2, 0, 4)  # deleted below the seam: gone
    created = w("c", 3, 1, 0)
    store_change(engine, tables, "u", _person(3, name="改后"), 1, 12)  # past: history row 0
    recreated = w("c", 4, 1, 1)
    w("d", 4, 1, 7)  # deleted past the seam: its create below the seam is the state
    w("c", 5, 2, 6)  # created past the seam: not in the state
    w("c", 6, 1, 2)
    w("d", 6, 1, 3)
    w("c", 6, 1, 8)  # deleted below, created again past: not in the state
    # Written a year ago and never changed since: no topic holds it any more, the store does.
    old = store_change(engine, tables, "c", _person(7), 2, 0, ts_ms=YEAR_AGO_MS)

    state = _state(engine, record, seam)
    key = lambda n: record_key(ENTRY.key_fields, _person(n))  # noqa: E731
    assert state == {
        key(1): updated.event_id,
        key(3): created.event_id,
        key(4): recreated.event_id,
        key(7): old.event_id,
    }
    rows = {r.record_key: r for page in StoreState(engine, record, seam).pages() for r in page}
    assert rows[key(3)].after["name"] == "王建国"  # the value below the seam, not the current one
    assert rows[key(1)].after == _person(1, name="王二")
    assert rows[key(7)].ts_ms == YEAR_AGO_MS and rows[key(7)].change()["op"] == "r"


def test_a_resource_the_sink_has_not_stored_yet_has_no_state(engine):
    assert list(StoreState(engine, _record(), {}).pages()) == []


def test_a_partition_the_seam_does_not_name_is_all_live(engine):
    record = _record()
    tables = create(engine, record)
    store_change(engine, tables, "c", _person(1), 0, 0)
    store_change(engine, tables, "c", _person(2), 3, 0)  # a partition added after the seam
    assert list(_state(engine, record, {(TOPIC, 0): 1})) == [
        record_key(ENTRY.key_fields, _person(1))
    ]
    assert _state(engine, record, {}) == {}


@pytest.mark.parametrize("page_rows", [1, 4, 7, 30, 31])
def test_pages_cover_every_key_once_in_key_order_whatever_the_page_size(engine, page_rows):
    record = _record()
    tables = create(engine, record)
    live = set()
    for n in range(30):
        store_change(engine, tables, "c", _person(n), n % 3, n)
        if n % 5 == 0:
            store_change(engine, tables, "d", _person(n), n % 3, 100 + n)  # tombstones between
        else:
            live.add(record_key(ENTRY.key_fields, _person(n)))
    seam = {(TOPIC, p): 1000 for p in range(3)}
    pages = list(StoreState(engine, record, seam, page_rows).pages())
    assert all(len(page) <= page_rows for page in pages)
    keys = [r.record_key for page in pages for r in page]
    assert keys == sorted(live)


def test_one_partitions_state_goes_on_after_the_last_key_of_a_page(engine):
    """A partition's backfill reads its partition only, and a new owner resumes after the
    last key an earlier one recorded: together the pages cover the partition's keys once."""
    record = _record()
    tables = create(engine, record)
    for n in range(30):
        store_change(engine, tables, "c", _person(n), n % 3, n)
    mine = sorted(record_key(ENTRY.key_fields, _person(n)) for n in range(30) if n % 3 == 1)
    seam = {(TOPIC, 1): 1000}
    state = StoreState(engine, record, seam, 4)
    pages = state.pages()
    first = next(pages)
    assert [r.record_key for r in first] == mine[:4]
    assert state.last_key == [first[-1].after[k] for k in ENTRY.key_fields]
    rest = StoreState(engine, record, seam, 4).pages(state.last_key)
    assert [r.record_key for page in rest for r in page] == mine[4:]


def test_pages_follow_a_key_of_several_columns(engine):
    record = _record(key_fields=("region_code", "id_number"))
    tables = create(engine, record)
    people = [_person(n, region_code=f"34010{n % 3}") for n in range(20)]
    for n, person in enumerate(people):
        store_change(engine, tables, "c", person, 0, n)
    seam = {(TOPIC, 0): 20}
    keys = [r.record_key for page in StoreState(engine, record, seam, 3).pages() for r in page]
    assert sorted(keys) == sorted(record_key(("region_code", "id_number"), p) for p in people)
    assert len(keys) == 20


def test_a_field_added_later_takes_its_default_in_rows_stored_before_it(engine):
    old = _record()
    tables = create(engine, old)
    stored = store_change(engine, tables, "c", _person(1), 0, 0)
    store_change(engine, tables, "u", _person(1, name="新"), 0, 5)  # past: history is read
    schema = value_schema(ENTRY, SCHEMAS)
    added = {"name": "email", "type": "string", "default": "none"}
    new = old.model_copy(update={"value_schema": {**schema, "fields": [*schema["fields"], added]}})
    # The sink has not added the column yet, and the history row predates the field.
    [row] = [r for page in StoreState(engine, new, {(TOPIC, 0): 5}).pages() for r in page]
    assert row.event_id == stored.event_id and row.after["email"] == "none"


def test_resolve_fills_defaults_only_where_the_change_predates_the_field():
    defaults = defaults_of(
        [
            {"name": "a", "type": "string", "default": "x"},
            {"name": "b", "type": ["null", "string"], "default": None},
            {"name": "c", "type": ["string", "null"], "default": "y"},
            {"name": "d", "type": "string"},
        ]
    )
    assert resolve(defaults, {"a": None, "c": None, "d": "4"}) == {
        "a": "x",
        "b": None,
        "c": None,
        "d": "4",
    }
    assert resolve(defaults, {"a": "1", "b": "2", "c": "3"}) == {"a": "1", "b": "2", "c": "3"}


def test_latest_below_orders_by_version_then_offset():
    rows = [
        {"partition": 0, "offset": 3, "version": "0210", "op": "u"},
        {"partition": 0, "offset": 4, "version": "0209", "op": "u"},  # older version, later
        {"partition": 0, "offset": 9, "version": "0299", "op": "d"},  # past the seam
    ]
    assert latest_below(rows, {0: 5}) is rows[0]
    assert latest_below(rows, {0: 3}) is None
    assert latest_below(rows, {}) is None


def test_store_positions_and_what_is_behind_the_seam(engine):
    assert store_positions(engine, TOPIC) == {}  # the sink has not started
    create(engine, _record())
    set_applied(engine, TOPIC, {0: 10, 1: 4})
    set_applied(engine, "gov.other.thing", {0: 99})
    positions = store_positions(engine, TOPIC)
    assert positions == {0: 10, 1: 4}
    assert behind(positions, {0: 10, 1: 5, 2: 0}) == {1: (4, 5)}
    assert behind(positions, {0: 9, 1: 4}) == {}


def test_reads_what_the_sink_writes(store_url):
    """The sink's own writes (history JSON, record keys, versions, applied offsets) read back as
    the state below the seam: the two sides agree on the layout."""
    from services.sink.central_store import CentralStore, StoredChange

    record = _record()
    store = CentralStore(store_url, [record])

    def change(op, row, offset, partition=0):
        return StoredChange(
            record.resource_id,
            f"e{offset}",
            op,
            row if op != "c" else None,
            row if op != "d" else None,
            1_764_000_000_000 + offset,
            None,
            source_version(f"lsn:{offset}"),
            TOPIC,
            partition,
            offset,
        )

    store.apply(
        [change("c", _person(1), 0), change("c", _person(2), 1), change("c", _person(3), 2)],
        {(TOPIC, 0): 3},
    )
    store.apply(
        [change("u", _person(1, name="后来"), 3), change("d", _person(2), 4)], {(TOPIC, 0): 5}
    )
    assert store_positions(store.engine, TOPIC) == {0: 5}
    seam = {(TOPIC, 0): 3}
    rows = [r for page in StoreState(store.engine, record, seam, 2).pages() for r in page]
    assert {r.record_key: r.event_id for r in rows} == {
        record_key(ENTRY.key_fields, _person(n)): f"e{n - 1}" for n in (1, 2, 3)
    }
    assert {r.after["name"] for r in rows} == {"王建国"}  # history, as below the seam
    store.close()
