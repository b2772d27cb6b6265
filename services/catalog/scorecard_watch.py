"""The scorecard kept current by the catalog service, and served as ``govbus_scorecard_*``.

A thread computes it every ``interval_s`` (reading every resource's table and the dead-letter
topic is too much for each scrape); a scrape reports the latest one. When Kafka or a store is
away the previous figures stay, and ``govbus_scorecard_updated_timestamp_seconds`` says how
old they are.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.catalog.scorecard import Score, Scorecard

log = logging.getLogger("govbus.scorecard")
DEFAULT_INTERVAL_S = 60.0

# series name -> (help, the Score attribute it reports)
SERIES: dict[str, tuple[str, str]] = {
    "resources": ("Resources catalogued", "resources"),
    "aggregated_resources": ("Resources whose data reaches the central store", "aggregated"),
    "aggregation_ratio": ("Aggregated resources out of those catalogued", "aggregation"),
    "aggregation_target_ratio": ("The category's aggregation target", "target"),
    "below_target": ("1 when aggregation is below the category's target", "below"),
    "freshness_ratio": ("Resources updated within their declared frequency", "freshness"),
    "dead_letter_ratio": ("Dead letters out of changes offered", "dead_letter_rate"),
    "answered_on_time_ratio": ("Requests answered by their due date", "on_time"),
    "active_shares": ("Grants delivering now on the department's resources", "active_shares"),
}


def _value(score: Score, attribute: str) -> float | None:
    if attribute == "below":
        return 0.0 if score.meets_target else 1.0
    value = getattr(score, attribute)
    return None if value is None else float(value)


def families(card: Scorecard | None) -> Iterator[GaugeMetricFamily]:
    """The scorecard as Prometheus gauges, labelled by department ("*": the province) and
    category; a ratio with nothing to measure (no change offered, no request due) is left out."""
    for name, (help_text, attribute) in SERIES.items():
        family = GaugeMetricFamily(
            f"govbus_scorecard_{name}", help_text, labels=["department", "category"]
        )
        for score in card.scores if card else []:
            value = _value(score, attribute)
            if value is not None:
                family.add_metric([score.department, score.category], value)
        yield family
    updated = GaugeMetricFamily(
        "govbus_scorecard_updated_timestamp_seconds", "When the scorecard was last computed"
    )
    if card is not None:
        updated.add_metric([], card.at.timestamp())
    yield updated


class ScorecardWatch(Collector):
    """Computes the scorecard now and then; a Prometheus collector of the latest one."""

    def __init__(
        self, compute: Callable[[dt.datetime], Scorecard], interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self._compute = compute
        self._interval_s = interval_s
        self._card: Scorecard | None = None
        self._lock = threading.Lock()
        self._computing = threading.Lock()  # one computation at a time: the readers keep state
        self._stop = threading.Event()

    def refresh(self) -> Scorecard:
        with self._computing:
            card = self._compute(dt.datetime.now(dt.UTC))
        with self._lock:
            self._card = card
        return card

    def latest(self) -> Scorecard:
        """The latest scorecard, computed now if there is none yet."""
        with self._lock:
            card = self._card
        return card if card is not None else self.refresh()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            card = self._card
        yield from families(card)

    def start(self) -> ScorecardWatch:
        threading.Thread(target=self._run, name="scorecard", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - Kafka or a store away: keep the last figures
                log.exception("scorecard not computed this round")
            if self._stop.wait(self._interval_s):
                return
