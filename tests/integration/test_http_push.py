"""HTTP push on the real broker: `POST /api/ingest/<resource>` with a provider's token answers
202 after Kafka acknowledged the accepted changes, lists each rejected change with why, and
refuses another department's resource (403) and a consumer (403)."""

from __future__ import annotations

import httpx

from services.common.topic_reader import end_offsets
from services.common.topics import DLQ
from tests.integration.adapters import dead_letters, enterprise_rows, published, resource_id
from tests.integration.conftest import wait_until
from tests.integration.test_control_plane import ADMIN_TOKEN, start_catalog_service


def new_token(api: str, name: str, department: str, role: str) -> str:
    reply = httpx.post(
        f"{api}/users",
        json={"name": name, "department": department, "role": role},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["token"]


def test_push_accepts_rejects_row_by_row_and_refuses_other_departments(bus):
    env = start_catalog_service(bus)
    api = env["GOVBUS_API_URL"]
    samr = {"Authorization": f"Bearer {new_token(api, 'qiye', f'samr_{bus.tag}', 'provider')}"}
    consumer = new_token(api, "user1", f"dsj_{bus.tag}", "consumer")
    rows = enterprise_rows(6, seed=21)
    bad = {**rows[4], "credit_code": rows[4]["credit_code"][:-1] + "X"}
    changes = [
        {"op": "c", "after": rows[0], "position": "qydj:1001"},
        {"op": "c", "after": rows[1], "position": "qydj:1002"},
        {"op": "c", "after": {**rows[2], "registered_capital": "lots"}},
        {"op": "u", "before": rows[0], "after": {**rows[0], "status": "注销"}},
        {"op": "c", "after": bad},
        {"op": "x", "after": rows[5]},
        "not a change",
        {"op": "d", "before": rows[1], "position": "qydj:1003"},
    ]
    dlq_start = end_offsets(bus.settings, [DLQ])
    url = f"{api}/ingest/{resource_id(bus)}"
    reply = httpx.post(url, json={"changes": changes}, headers=samr, timeout=60)
    assert reply.status_code == 202, reply.text
    answer = reply.json()
    assert answer["accepted"] == 4
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (2, "schema_mismatch"),
        (4, "invalid_credit_code"),
        (5, "invalid_op"),
        (6, "invalid_envelope"),
    ]
    # 202 came after Kafka acknowledged: the events and the dead letters are there now.
    events = {e["event_id"]: e for e in published(bus)}
    assert sorted(events) == sorted(answer["event_ids"])
    ops = [events[i]["op"] for i in answer["event_ids"]]
    assert ops == ["c", "c", "u", "d"]  # the accepted changes, in the batch's order
    first = events[answer["event_ids"][0]]
    assert first["source"]["position"] == "qydj:1001"
    assert first["source"]["system"] == "http:qiye"
    assert len(dead_letters(bus, dlq_start)) == 4

    # The same batch again: the same event ids, so the replay is recognisable downstream.
    again = httpx.post(url, json={"changes": changes}, headers=samr, timeout=60)
    assert again.status_code == 202 and again.json()["event_ids"] == answer["event_ids"]

    other = httpx.post(
        f"{api}/ingest/psb_{bus.tag}.resident_population",
        json={"changes": changes[:1]},
        headers=samr,
        timeout=10,
    )
    assert other.status_code == 403
    assert f"psb_{bus.tag}.resident_population belongs to another department" in other.text
    as_consumer = httpx.post(
        url, json={"changes": changes[:1]}, headers={"Authorization": f"Bearer {consumer}"}
    )
    assert as_consumer.status_code == 403 and "provider role" in as_consumer.text
    unknown = httpx.post(
        f"{api}/ingest/samr_{bus.tag}.nothing", json={"changes": changes[:1]}, headers=samr
    )
    assert unknown.status_code == 404
    empty = httpx.post(url, json={"changes": []}, headers=samr)
    assert empty.status_code == 422
    wait_until(lambda: len(published(bus)) == 8, 10, "the replayed batch")
