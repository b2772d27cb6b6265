"""Pure helpers of the CDC bench: one change's times at each stage, and the figures of many.

A change is followed by its place in the PostgreSQL log. Debezium's raw record carries it
(``source.lsn``, ``source.txId``) with the commit time (``source.ts_ms``); the bridge turns it
into the ``gov.*`` event's ``source.position`` (``debezium_mapping.source_position``), and
the delivery carries the ``gov.*`` event's id. Every stage time is the broker's append time
of the record on that stage's topic, so all of them and the commit time come from one clock
(the machine's).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from services.ingest.adapters.debezium_mapping import source_position

STAGES = ("debezium", "bridge", "router", "to_gov", "end_to_end")


@dataclass(frozen=True)
class Timeline:
    """One change, in epoch ms: committed in PostgreSQL, then appended to each topic."""

    tx: int  # PostgreSQL's transaction id
    committed: int
    raw: int  # Debezium's change topic
    gov: int  # gov.<provider>.<resource>, written by the bridge
    delivered: int  # deliver.<consumer>.<resource>, written by the router

    def stage(self, name: str) -> int:
        """How long the change spent in ``name`` (one of ``STAGES``), ms."""
        spans = {
            "debezium": self.raw - self.committed,
            "bridge": self.gov - self.raw,
            "router": self.delivered - self.gov,
            "to_gov": self.gov - self.committed,
            "end_to_end": self.delivered - self.committed,
        }
        return spans[name]


@dataclass(frozen=True)
class RawStamp:
    position: str  # as the bridge names it
    tx: int  # PostgreSQL's transaction id
    committed: int  # commit time, epoch ms


def raw_stamp(value: bytes) -> RawStamp:
    """Where one Debezium JSON record's change is in the log, and when it was committed."""
    source = json.loads(value)["source"]
    # Streamed changes only (the bench's table is empty when its connector starts): their
    # position is the change's own LSN and transaction, no key needed.
    position = source_position(source, {})
    return RawStamp(position, int(source["txId"]), int(source["ts_ms"]))


def join(
    raw: Mapping[str, tuple[int, int]],
    gov: Mapping[str, tuple[str, int, int]],
    delivered: Mapping[str, int],
) -> list[Timeline]:
    """The timelines of the changes seen on all three topics.

    ``raw``: position -> (transaction id, append ms on the raw topic); ``gov``: event id ->
    (position, commit ms, append ms); ``delivered``: event id -> append ms on the delivery
    topic."""
    out = []
    for event_id, (position, committed, appended) in gov.items():
        if position in raw and event_id in delivered:
            tx, raw_ms = raw[position]
            out.append(Timeline(tx, committed, raw_ms, appended, delivered[event_id]))
    return sorted(out, key=lambda t: (t.committed, t.raw))


def histogram(values: Iterable[int]) -> HdrHistogram:
    """1 ms to 1 h, 3 significant digits; a negative span (clock granularity) counts as 0."""
    h = HdrHistogram(1, 3_600_000, 3)
    for v in values:
        h.record_value(max(0, v))
    return h


def latency_figures(timelines: list[Timeline]) -> dict[str, int | float]:
    """p50, p99 and max of every stage, and the bridge's share of the end-to-end time."""
    out: dict[str, int | float] = {}
    for name in STAGES:
        h = histogram(t.stage(name) for t in timelines)
        out[f"{name}_p50_ms"] = h.get_value_at_percentile(50)
        out[f"{name}_p99_ms"] = h.get_value_at_percentile(99)
        out[f"{name}_max_ms"] = h.get_max_value()
    out["bridge_share"] = bridge_share(timelines)
    return out


def bridge_share(timelines: list[Timeline]) -> float:
    """The bridge's part of all end-to-end time: sum of its spans over the sum of theirs."""
    total = sum(max(0, t.stage("end_to_end")) for t in timelines)
    bridge = sum(max(0, t.stage("bridge")) for t in timelines)
    return round(bridge / total, 3) if total else 0.0


def rate(times_ms: Iterable[int], since_ms: int | None = None) -> float:
    """Records per second over the span of their times (from ``since_ms`` when given: the
    moment a backlog was released)."""
    times = list(times_ms)
    if len(times) < 2:
        return 0.0
    first = min(times) if since_ms is None else since_ms
    span_s = max(max(times) - first, 1) / 1000
    return round(len(times) / span_s, 1)


def commit_check(returned: Mapping[int, int], stamped: Mapping[int, int]) -> dict[str, int]:
    """How Debezium's ``source.ts_ms`` of a transaction relates to when its COMMIT returned to
    the writer: 0 to a few ms before it if ``ts_ms`` is the commit time."""
    gaps = sorted(returned[x] - stamped[x] for x in returned.keys() & stamped.keys())
    if not gaps:
        return {"transactions": 0}
    return {
        "transactions": len(gaps),
        "commit_returned_minus_ts_ms_min": gaps[0],
        "commit_returned_minus_ts_ms_p50": gaps[len(gaps) // 2],
        "commit_returned_minus_ts_ms_max": gaps[-1],
    }
