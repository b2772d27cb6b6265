"""The CDC bench's pure parts: following a change across topics, and the figures of many.

benchmarks/cdc_timing.py joins Debezium's raw record to the bridge's gov.* event by the
change's log position, so the position it reads from a raw record must be the one the bridge
gives the event; the rest is arithmetic on append times.
"""

from __future__ import annotations

import json
import sys

import pytest

from services.common.config_files import file_records
from services.common.settings import REPO_ROOT
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.adapters.debezium_mapping import to_change

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # the benchmarks are scripts, not a package
from cdc_timing import (  # noqa: E402
    Timeline,
    bridge_share,
    commit_check,
    join,
    latency_figures,
    rate,
    raw_stamp,
)
from results_file import merge_results  # noqa: E402

DEPLOY = REPO_ROOT / "deploy"
RESIDENT = {
    "id_number": "340104199001011234",
    "name": "张三",
    "gender": "男",
    "birth_date": "1990-01-01",
    "ethnicity": "汉族",
    "region_code": "340104",
    "address": "合肥市蜀山区",
    "phone": "13800000000",
    "household_type": "城镇",
    "updated_at": 1_780_000_000_000,
}


@pytest.fixture(scope="module")
def record():
    resources, _ = file_records(DEPLOY / "catalog", DEPLOY / "grants", REPO_ROOT / "schemas/avro")
    return next(r for r in resources if r.resource_id == "psb.resident_population")


def test_raw_position_is_the_one_the_bridge_gives_the_event(record) -> None:
    source = {"lsn": 24_023_128, "txId": 771, "ts_ms": 1_780_000_000_123, "snapshot": "false"}
    value = {"op": "u", "before": RESIDENT, "after": RESIDENT, "source": {**source, "db": "p"}}
    adapter = DebeziumAdapter.model_validate(
        {
            "kind": "debezium",
            "resource": record.resource_id,
            "connection": {"host": "127.0.0.1", "database": "p", "user": "postgres"},
            "table": "psb.resident_population",
            "key": ["id_number"],
        }
    )
    key = {"id_number": RESIDENT["id_number"]}
    change = to_change(key, value, adapter, record.resource, record.value_schema)
    stamp = raw_stamp(json.dumps(value).encode())
    assert stamp.position == change.position
    assert (stamp.tx, stamp.committed) == (771, 1_780_000_000_123)
    assert change.source_ts_ms == stamp.committed  # the commit time reaches the gov.* event


def test_join_follows_a_change_by_position_then_event_id_and_drops_the_unfinished() -> None:
    raw = {"lsn:1:tx:7": (7, 1_010), "lsn:2:tx:7": (7, 1_011), "lsn:3:tx:8": (8, 1_020)}
    gov = {
        "e2": ("lsn:2:tx:7", 1_000, 1_111),
        "e1": ("lsn:1:tx:7", 1_000, 1_110),
        "e3": ("lsn:3:tx:8", 1_005, 1_120),  # not delivered yet
        "e9": ("lsn:9:tx:9", 1_009, 1_130),  # not on the raw range read
    }
    delivered = {"e1": 1_200, "e2": 1_210, "e9": 1_300}
    assert join(raw, gov, delivered) == [
        Timeline(7, 1_000, 1_010, 1_110, 1_200),
        Timeline(7, 1_000, 1_011, 1_111, 1_210),
    ]


def test_stage_spans_percentiles_and_the_bridges_share() -> None:
    # Per change: Debezium 10 ms, bridge 60 ms, router 30 ms -> end to end 100 ms.
    timelines = [Timeline(1, t, t + 10, t + 70, t + 100) for t in range(0, 1000, 10)]
    timelines.append(Timeline(2, 5_000, 5_010, 5_970, 6_000))  # one slow bridge batch
    figures = latency_figures(timelines)
    assert (figures["debezium_p50_ms"], figures["bridge_p50_ms"]) == (10, 60)
    assert (figures["router_p50_ms"], figures["end_to_end_p50_ms"]) == (30, 100)
    assert figures["to_gov_p50_ms"] == 70
    assert figures["bridge_max_ms"] == 960
    assert figures["end_to_end_max_ms"] == 1_000
    assert figures["bridge_share"] == round((100 * 60 + 960) / (100 * 100 + 1_000), 3)


def test_a_span_below_the_clocks_granularity_counts_as_none() -> None:
    # The gov.* append can carry an earlier ms than the raw append it follows.
    timelines = [Timeline(1, 0, 5, 4, 10)]
    assert latency_figures(timelines)["bridge_p50_ms"] == 0
    assert bridge_share(timelines) == 0.0


def test_rate_over_the_records_span_or_since_a_backlog_was_released() -> None:
    times = [1_000 + 2 * i for i in range(501)]  # 501 records over 1 s
    assert rate(times) == 501.0
    assert rate(times, since_ms=0) == round(501 / 2.0, 1)
    assert rate([5]) == 0.0


def test_commit_check_compares_transactions_known_to_both() -> None:
    returned = {1: 1_000, 2: 2_003, 3: 3_001}
    stamped = {1: 1_000, 2: 2_000, 4: 9_999}
    assert commit_check(returned, stamped) == {
        "transactions": 2,
        "commit_returned_minus_ts_ms_min": 0,
        "commit_returned_minus_ts_ms_p50": 3,
        "commit_returned_minus_ts_ms_max": 3,
    }
    assert commit_check(returned, {}) == {"transactions": 0}


def test_merging_results_keeps_the_other_benches_keys(tmp_path) -> None:
    path = tmp_path / "results" / "latest.json"
    merge_results({"router_events_per_s": 9000, "cdc": {"old": 1}}, path)
    merged = merge_results({"cdc": {"bridge_share": 0.2}}, path)
    assert merged == {"router_events_per_s": 9000, "cdc": {"bridge_share": 0.2}}
    assert json.loads(path.read_text("utf-8")) == merged
