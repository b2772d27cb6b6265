"""The polling adapter on the real broker, over SQLite and PostgreSQL source tables: creates,
updates, a late row inside the overlap window, soft and hard deletes; and `kill -9` mid-run."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import sqlalchemy as sa

from services.progress import scrape_totals
from tests.integration.adapters import (
    enterprise_rows,
    latest_by_key,
    metric,
    published,
    resource_id,
    restart_adapter,
    start_adapter,
)
from tests.integration.conftest import wait_until

T0 = dt.datetime(2026, 3, 1, 8, 0, 0)


def source_table(url: str) -> tuple[sa.Engine, sa.Table]:
    """The department's own table: its own column names, an update time, a deleted flag."""
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        "qiye_dengji",
        meta,
        sa.Column("tyshxydm", sa.String(18), primary_key=True),  # 统一社会信用代码
        *(
            sa.Column(name, sa.String(200))
            for name in [
                "name",
                "legal_rep_name",
                "legal_rep_id_number",
                "enterprise_type",
                "established_date",
                "region_code",
                "address",
                "industry_code",
                "status",
            ]
        ),
        sa.Column("registered_capital", sa.Numeric(14, 2)),
        sa.Column("gxsj", sa.DateTime, nullable=False),  # 更新时间
        sa.Column("is_deleted", sa.Boolean, nullable=False, default=False),
        sa.Column("internal_note", sa.String(50)),  # not in the resource: left out
    )
    meta.create_all(engine)
    return engine, table


def as_source(row: dict, at: dt.datetime) -> dict:
    out = {k: v for k, v in row.items() if k not in ("credit_code", "updated_at")}
    return {**out, "tyshxydm": row["credit_code"], "gxsj": at, "is_deleted": False}


def adapter_spec(bus, url: str, **extra) -> dict:
    return {
        "kind": "polling",
        "resource": resource_id(bus),
        "url": url,
        "table": "qiye_dengji",
        "cursor": "gxsj",
        "overlap": 60,
        "columns": {"tyshxydm": "credit_code", "gxsj": "updated_at"},
        "soft_delete": {"column": "is_deleted", "value": True},
        "key_diff_every_s": 0.5,
        "interval_s": 0.3,
        **extra,
    }


def test_polling_publishes_creates_updates_late_rows_and_deletes(bus, store_url, tmp_path):
    engine, table = source_table(store_url)
    rows = enterprise_rows(40)
    with engine.begin() as conn:
        conn.execute(
            table.insert(), [as_source(r, T0 + dt.timedelta(seconds=i)) for i, r in enumerate(rows)]
        )
    url = start_adapter(bus, tmp_path, "qiye", adapter_spec(bus, store_url, batch=7))
    wait_until(lambda: len(published(bus)) >= 40, 90, "the first 40 rows")

    codes = [r["credit_code"] for r in rows]
    t1 = T0 + dt.timedelta(hours=1)
    with engine.begin() as conn:
        for code in codes[:10]:  # updates
            conn.execute(
                table.update()
                .where(table.c.tyshxydm == code)
                .values(status="吊销", gxsj=t1, internal_note="x")
            )
        for code in codes[10:15]:  # soft deletes
            conn.execute(
                table.update().where(table.c.tyshxydm == code).values(is_deleted=True, gxsj=t1)
            )
        conn.execute(table.delete().where(table.c.tyshxydm.in_(codes[15:18])))  # hard deletes
    late = enterprise_rows(41, seed=5)[40]  # committed late, 30 s behind the watermark
    with engine.begin() as conn:
        conn.execute(table.insert(), [as_source(late, t1 - dt.timedelta(seconds=30))])
    # 40 + 10 updates + 5 soft deletes + 3 hard deletes + 1 late create
    wait_until(lambda: len(published(bus)) >= 59, 90, "updates, deletes and the late row")
    events = published(bus)
    assert len(events) == 59, Counter(e["op"] for e in events)
    assert Counter(e["op"] for e in events) == {"c": 41, "u": 10, "d": 8}
    last = latest_by_key(events)
    assert {c for c, e in last.items() if e["op"] == "d"} == set(codes[10:18])
    for code in codes[:10]:
        assert last[code]["op"] == "u"
        assert last[code]["after"]["status"] == "吊销"
        assert last[code]["before"]["credit_code"] == code  # the row published before
        assert last[code]["after"]["updated_at"] == int(
            t1.replace(tzinfo=dt.UTC).timestamp() * 1000
        )
    assert last[late["credit_code"]]["op"] == "c"
    assert len({e["event_id"] for e in events}) == 59
    assert metric(url, "govbus_adapter_events_published_total", adapter="qiye") == 59
    # Nothing more: the overlap window is read at every poll and publishes nothing twice.
    polls_done = metric(url, "govbus_adapter_last_success_timestamp_seconds", adapter="qiye")
    wait_until(
        lambda: (
            metric(url, "govbus_adapter_last_success_timestamp_seconds", adapter="qiye")
            > polls_done + 1
        ),
        30,
        "more polls",
    )
    assert len(published(bus)) == 59
    engine.dispose()


def test_kill_9_mid_run_loses_nothing_and_replays_with_the_same_ids(bus, pg_url, tmp_path):
    engine, table = source_table(pg_url)
    rows = enterprise_rows(1500, seed=9)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [as_source(r, T0 + dt.timedelta(milliseconds=i)) for i, r in enumerate(rows)],
        )
    spec = adapter_spec(bus, pg_url, batch=50, key_diff_every_s=0)
    metrics = start_adapter(bus, tmp_path, "qiye", spec)

    def first_part() -> bool:  # the adapter's own count: reading the topic takes too long
        return scrape_totals(metrics).get("govbus_adapter_events_published_total", 0) >= 200

    wait_until(first_part, 90, "a first part")
    bus.kill("qiye")
    assert len(published(bus)) < 1500, "killed too late to test a resume"
    restart_adapter(bus, "qiye", spec["metrics_port"])
    wait_until(lambda: len(latest_by_key(published(bus))) == 1500, 120, "every row")
    events = published(bus)
    positions: dict[str, set[str]] = {}
    for e in events:
        positions.setdefault(e["event_id"], set()).add(e["source"]["position"])
    # A replayed change carries the id of its first publication: one position per id.
    assert all(len(p) == 1 for p in positions.values())
    assert len(positions) == 1500
    assert all(e["op"] == "c" for e in events)
    engine.dispose()
