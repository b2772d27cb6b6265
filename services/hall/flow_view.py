"""The flow page's figures from the bus's own metrics, as pure functions.

A sample is every counter and gauge of the processes' /metrics at one instant; two samples
give rates. The figures: events per second per resource (the router's intake) and per
consumer and resource (deliveries), lag per consumer group, dead letters by stage and reason,
and freshness per resource (from the scorecard: age of the last change in the central store).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    at: float  # seconds (monotonic)
    values: Mapping[tuple[str, Labels], float]  # (sample name, sorted labels) -> value


def parse_metrics(texts: Iterable[str]) -> dict[tuple[str, Labels], float]:
    """Samples of several /metrics texts; the same series in two processes is summed."""
    out: dict[tuple[str, Labels], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                out[key] = out.get(key, 0.0) + s.value
    return out


def _by(sample: Sample, name: str, labels: tuple[str, ...], where=None) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for (metric, pairs), value in sample.values.items():
        if metric != name:
            continue
        found = dict(pairs)
        if where and any(found.get(k) != v for k, v in where.items()):
            continue
        key = tuple(found.get(label, "") for label in labels)
        out[key] = out.get(key, 0.0) + value
    return out


def _rates(prev: Sample | None, cur: Sample, name: str, labels, where=None) -> list[dict]:
    now = _by(cur, name, labels, where)
    before = _by(prev, name, labels, where) if prev else {}
    span = cur.at - prev.at if prev else 0.0
    rows = []
    for key, total in sorted(now.items()):
        # A counter that went down is a restarted process: count from zero again.
        delta = total - before.get(key, 0.0) if before.get(key, 0.0) <= total else total
        rate = delta / span if span > 0 and key in before else 0.0
        rows.append(
            {**dict(zip(labels, key, strict=True)), "total": total, "per_s": round(rate, 1)}
        )
    return rows


def flow_figures(prev: Sample | None, cur: Sample) -> dict[str, list[dict]]:
    lags = _by(cur, "govbus_consumer_lag", ("service", "group"))
    dead = _by(cur, "govbus_dead_letters_total", ("stage", "reason"))
    return {
        "resources": _rates(
            prev, cur, "govbus_events_in_total", ("resource",), {"stage": "router"}
        ),
        "consumers": _rates(prev, cur, "govbus_events_out_total", ("consumer", "resource")),
        "lag": [{"service": s, "group": g, "lag": int(v)} for (s, g), v in sorted(lags.items())],
        "dead": [{"stage": s, "reason": r, "total": int(v)} for (s, r), v in sorted(dead.items())],
    }


def bar_max(rows: list[dict], key: str) -> float:
    """The scale of a column's bars: its largest value (1 when all are 0)."""
    return max([float(r[key]) for r in rows] + [1.0])
