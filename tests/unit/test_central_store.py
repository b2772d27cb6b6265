"""The central store on SQLite and on PostgreSQL: upsert by key, full history, versions from the
source (so replays, even of a recreated topic, change nothing), tables that follow schema
versions, applied offsets in the batch's transaction, many rows per statement."""

from __future__ import annotations

import copy
import uuid

import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import IntegrityError

from services.common.catalog_feed import CatalogRecord
from services.common.schemas import value_schema
from services.common.store_tables import source_version
from services.sink.central_store import CentralStore, StoredChange
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, resident

TOPIC = "gov.psb.resident_population"


def resident_record(version: int = 1, schema: dict | None = None) -> CatalogRecord:
    entry = catalog()[RESIDENTS]
    return CatalogRecord(
        resource=entry,
        value_schema=schema or value_schema(entry, SCHEMAS),
        schema_version=version,
    )


def change(op, position, before=None, after=None, offset=0, event_id=None) -> StoredChange:
    return StoredChange(
        RESIDENTS,
        event_id or str(uuid.uuid4()),
        op,
        before,
        after,
        1000 + offset,
        None,
        source_version(f"psb-hukou:lsn:{position}"),
        TOPIC,
        0,
        offset,
    )


def current(s: CentralStore) -> list[dict]:
    table = s.resources[RESIDENTS].current
    with s.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


@pytest.fixture
def store(store_url):
    s = CentralStore(store_url, [resident_record()])
    yield s
    s.close()


def test_create_update_delete_keep_history_and_latest_state(store):
    a = resident()
    moved = resident(address="安徽省芜湖市镜湖区中山路1号")
    changes = [change("c", 1, after=a), change("u", 2, a, moved), change("d", 3, before=moved)]
    assert store.apply(changes) == {RESIDENTS: 3}
    rows = current(store)
    assert len(rows) == 1
    assert rows[0]["_deleted"] is True and rows[0]["_op"] == "d"
    assert rows[0]["_version"] == source_version("psb-hukou:lsn:3")
    assert rows[0]["address"] == moved["address"]
    assert store.counts()[RESIDENTS] == {"live": 0, "deleted": 1, "history": 3}


def test_replaying_a_batch_adds_nothing(store):
    batch = [change("c", 1, after=resident()), change("c", 2, after=resident(id_number="X"))]
    store.apply(batch)
    assert store.apply(batch) == {RESIDENTS: 0}
    assert store.counts()[RESIDENTS]["history"] == 2


def test_an_older_source_position_never_overwrites_a_newer_one_whatever_the_offset(store):
    old, new = resident(name="旧名"), resident(name="新名")
    store.apply([change("u", 10, old, new, offset=1)])
    # Read later, at a higher offset (a repartitioned topic), yet older at the source.
    store.apply([change("c", 4, after=old, offset=900)])
    assert current(store)[0]["name"] == "新名"
    assert store.counts()[RESIDENTS]["history"] == 2


def test_positions_compare_as_numbers_not_as_text(store):
    first, second = resident(name="第九"), resident(name="第十")
    # Not zero-padded: as text "lsn:9" > "lsn:10"; in the source's order 10 comes after 9.
    store.apply([change("c", 9, after=first), change("u", 10, first, second)])
    assert current(store)[0]["name"] == "第十"
    store.apply([change("u", 9, second, first, event_id=str(uuid.uuid4()))])
    assert current(store)[0]["name"] == "第十"


def test_replaying_a_recreated_topic_changes_nothing(store):
    a, b = resident(), resident(name="李四", id_number="340104198605171234")
    moved = dict(a, address="安徽省六安市金安区梅山路2号")
    batch = [
        change("c", 100, after=a, offset=40),
        change("c", 101, after=b, offset=41),
        change("u", 102, a, moved, offset=42),
        change("d", 103, before=b, offset=43),
    ]
    store.apply(batch, {(TOPIC, 0): 44})
    before_rows = sorted(current(store), key=lambda r: r["id_number"])
    # The topic is recreated and the same changes are read again from offset 0.
    replay = [
        StoredChange(**{**c.__dict__, "offset": i, "ts_ms": 9_999}) for i, c in enumerate(batch)
    ]
    assert store.apply(replay, {(TOPIC, 0): 4}) == {RESIDENTS: 0}
    assert sorted(current(store), key=lambda r: r["id_number"]) == before_rows
    assert store.counts()[RESIDENTS] == {"live": 1, "deleted": 1, "history": 4}
    assert store.applied_offsets(TOPIC) == {0: 4}  # where the store now stands on the topic


def test_applied_offsets_commit_with_the_batch_or_not_at_all(store):
    store.apply([change("c", 1, after=resident())], {(TOPIC, 0): 1, (TOPIC, 2): 7})
    assert store.applied_offsets(TOPIC) == {0: 1, 2: 7}
    keyless = resident(id_number=None)
    with pytest.raises(IntegrityError):
        store.apply(
            [change("c", 5, after=resident(id_number="Y")), change("c", 6, after=keyless)],
            {(TOPIC, 0): 3},
        )
    assert store.applied_offsets(TOPIC) == {0: 1, 2: 7}
    assert store.counts()[RESIDENTS]["history"] == 1
    # The store goes on after a failed batch (what that batch made is gone with it).
    store.apply([change("u", 7, after=resident(name="再来"))], {(TOPIC, 0): 4})
    assert store.applied_offsets(TOPIC) == {0: 4, 2: 7}
    assert current(store)[0]["name"] == "再来"


def test_many_rows_go_in_few_statements(store):
    statements = []
    event.listen(
        store.engine,
        "before_cursor_execute",
        lambda conn, cursor, stmt, params, ctx, many: statements.append((stmt, many)),
    )
    batch = [change("c", i, after=resident(id_number=f"K{i:05d}")) for i in range(1000)]
    assert store.apply(batch, {(TOPIC, 0): 1000}) == {RESIDENTS: 1000}
    inserts = [s for s, _ in statements if s.lstrip().upper().startswith("INSERT")]
    assert not any(many for _, many in statements)  # no row-at-a-time executemany
    assert len(inserts) <= 6, f"{len(inserts)} INSERT statements for 1000 rows"
    assert store.counts()[RESIDENTS]["live"] == 1000


def test_tables_follow_schema_versions_without_losing_rows(store_url):
    v1 = copy.deepcopy(value_schema(catalog()[RESIDENTS], SCHEMAS))
    v1["fields"].append({"name": "household_size", "type": "int"})
    s = CentralStore(store_url, [resident_record(1, v1)])
    s.apply([change("c", 1, after=resident(household_size=3))])

    v2 = copy.deepcopy(v1)
    v2["fields"] = [f for f in v2["fields"] if f["name"] != "phone"]  # removed
    v2["fields"][-1]["type"] = "long"  # int widened to long
    v2["fields"].append({"name": "email", "type": ["null", "string"], "default": None})
    s.ensure(resident_record(2, v2))
    after = {k: v for k, v in resident(household_size=2**40, email="a@b.cn").items()}
    del after["phone"]
    s.apply([change("u", 2, resident(household_size=3), after)])

    columns = {c["name"] for c in inspect(s.engine).get_columns("psb_resident_population")}
    assert {"email", "phone", "household_size"} <= columns  # removed field's column stays
    with s.engine.connect() as conn:
        row = dict(conn.execute(text("SELECT * FROM psb_resident_population")).one()._mapping)
    assert row["household_size"] == 2**40 and row["email"] == "a@b.cn" and row["phone"] is None
    # Reopened with the current record: nothing to alter, rows intact.
    again = CentralStore(store_url, [resident_record(2, v2)])
    assert again.counts()[RESIDENTS] == {"live": 1, "deleted": 0, "history": 2}
    s.close()
    again.close()


def test_store_survives_reopening(store_url):
    s = CentralStore(store_url, [resident_record()])
    first = change("c", 1, after=resident())
    s.apply([first])
    s.close()
    again = CentralStore(store_url, [resident_record()])
    assert again.stored_event_ids(RESIDENTS, [first.event_id]) == {first.event_id}
    again.close()


@pytest.mark.parametrize(
    ("earlier", "later"),
    [("lsn:9", "lsn:10"), ("a:0000001234", "a:0000001235"), ("f.log:99:1", "f.log:100:0")],
)
def test_source_version_orders_as_the_source(earlier, later):
    assert source_version(earlier) < source_version(later)
    assert source_version("x:007") == source_version("x:7")


def test_a_failed_first_batch_leaves_the_store_usable(store):
    # Anything the failed transaction made (PostgreSQL's staging tables) is gone with it.
    with pytest.raises(IntegrityError):
        store.apply([change("c", 1, after=resident(id_number=None))])
    store.apply([change("c", 2, after=resident())], {(TOPIC, 1): 1})
    assert store.counts()[RESIDENTS] == {"live": 1, "deleted": 0, "history": 1}
