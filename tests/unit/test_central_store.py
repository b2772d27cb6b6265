"""The central store: upsert by key, full history, idempotent replays, deletes as tombstones."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.sink.central_store import CentralStore, StoredChange
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, resident


def store(tmp_path) -> CentralStore:
    return CentralStore(f"sqlite:///{tmp_path / 'store.db'}", catalog().values(), SCHEMAS)


def change(op, offset, before=None, after=None) -> StoredChange:
    return StoredChange(
        RESIDENTS, str(uuid.uuid4()), op, before, after, 1000 + offset, None, "t", 0, offset
    )


def current(s: CentralStore):
    table = s.resources[RESIDENTS].current
    with s.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table))]


def test_create_update_delete_keep_history_and_latest_state(tmp_path):
    s = store(tmp_path)
    a = resident()
    moved = resident(address="安徽省芜湖市镜湖区中山路1号")
    changes = [change("c", 1, after=a), change("u", 2, a, moved), change("d", 3, before=moved)]
    assert s.apply(changes) == {RESIDENTS: 3}
    rows = current(s)
    assert len(rows) == 1
    assert rows[0]["_deleted"] is True and rows[0]["_op"] == "d" and rows[0]["_version"] == 3
    assert rows[0]["address"] == moved["address"]
    assert s.counts()[RESIDENTS] == {"live": 0, "deleted": 1, "history": 3}


def test_replaying_a_batch_adds_nothing(tmp_path):
    s = store(tmp_path)
    batch = [change("c", 1, after=resident()), change("c", 2, after=resident(id_number="X"))]
    s.apply(batch)
    assert s.apply(batch) == {RESIDENTS: 0}
    assert s.counts()[RESIDENTS]["history"] == 2


def test_an_older_change_never_overwrites_a_newer_one(tmp_path):
    s = store(tmp_path)
    old, new = resident(name="旧名"), resident(name="新名")
    s.apply([change("u", 10, old, new)])
    s.apply([change("c", 4, after=old)])  # replayed from an earlier offset
    assert current(s)[0]["name"] == "新名"
    assert s.counts()[RESIDENTS]["history"] == 2


def test_store_survives_reopening(tmp_path):
    s = store(tmp_path)
    first = change("c", 1, after=resident())
    s.apply([first])
    again = store(tmp_path)
    assert again.stored_event_ids(RESIDENTS, [first.event_id]) == {first.event_id}
