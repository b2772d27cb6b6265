"""Live progress for `govbus run`: read the processes' own /metrics and the groups' lag."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape_totals(url: str) -> dict[str, float]:
    """Sum of every sample per metric name (labels folded), from one /metrics endpoint."""
    try:
        text = httpx.get(url, timeout=2.0).text
    except httpx.HTTPError:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def progress_line(
    ingest: dict, router: dict, sink: dict, lags: dict[str, int], dt_s: float, previous: dict | None
) -> tuple[str, dict]:
    now = {
        "published": ingest.get("govbus_events_in_total", 0),
        "routed": router.get("govbus_events_in_total", 0),
        "delivered": router.get("govbus_events_out_total", 0),
        "dead": ingest.get("govbus_dead_letters_total", 0)
        + router.get("govbus_dead_letters_total", 0),
        "stored": sink.get("govbus_store_changes_total", 0),
    }
    rate = (now["routed"] - previous["routed"]) / dt_s if previous and dt_s > 0 else 0.0
    line = (
        f"published {now['published']:>8.0f} | routed {now['routed']:>8.0f} ({rate:>6.0f}/s) | "
        f"delivered {now['delivered']:>8.0f} | dead letters {now['dead']:>5.0f} | "
        f"stored {now['stored']:>8.0f} | lag " + " ".join(f"{k} {v}" for k, v in lags.items())
    )
    return line, now
