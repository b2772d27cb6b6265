"""Consumer-group lag: how far each group is behind the end of the topics it reads."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from services.common.settings import Settings


def topic_lags(
    admin: AdminClient, group: str, topic_pattern: str, timeout_s: float = 4.0
) -> dict[str, int]:
    """Messages per topic not yet committed by ``group``, on topics matching the pattern.

    A partition the group never committed counts from its earliest offset.
    """
    pattern = re.compile(topic_pattern)
    metadata = admin.list_topics(timeout=timeout_s).topics
    partitions = [
        TopicPartition(name, p)
        for name, topic in metadata.items()
        if pattern.match(name)
        for p in topic.partitions
    ]
    if not partitions:
        return {}
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    committed = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)[group]
    done = {(tp.topic, tp.partition): tp.offset for tp in committed.result().topic_partitions}
    ends = _offsets(admin, partitions, OffsetSpec.latest(), timeout_s)
    starts = _offsets(admin, partitions, OffsetSpec.earliest(), timeout_s)
    lags: dict[str, int] = defaultdict(int)
    for tp, end in ends.items():
        position = done.get(tp, -1)
        lags[tp[0]] += max(0, end - (position if position >= 0 else starts[tp]))
    return dict(lags)


def _offsets(admin: AdminClient, partitions, spec, timeout_s: float) -> dict[tuple[str, int], int]:
    futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout_s)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def group_lag(settings: Settings, group: str, topic_pattern: str, timeout_s: float = 4.0) -> int:
    """Total lag of ``group`` over the matching topics."""
    admin = AdminClient(settings.kafka_config())
    return sum(topic_lags(admin, group, topic_pattern, timeout_s).values())


def wait_caught_up(
    settings: Settings,
    groups: Iterable[str],
    timeout_s: float,
    on_tick: Callable[[], None] = lambda: None,
) -> None:
    """Block until every group has committed up to the end of the source topics."""
    admin = AdminClient(settings.kafka_config())
    deadline = time.monotonic() + timeout_s
    lags: dict[str, int | str] = {}
    while time.monotonic() < deadline:
        on_tick()
        for group in groups:
            try:
                lags[group] = sum(topic_lags(admin, group, settings.source_pattern).values())
            except KafkaException as exc:  # coordinator loading or moving: ask again
                lags[group] = f"unknown ({exc.args[0].name()})"
        if all(v == 0 for v in lags.values()):
            return
        time.sleep(0.3)
    raise TimeoutError(f"consumer groups still behind after {timeout_s}s: {lags}")
