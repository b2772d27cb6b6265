"""Consumer-group lag: how far each group is behind the end of the topics it reads."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from services.common.settings import Settings

Offsets = dict[tuple[str, int], int]


def partitions_of(
    admin: AdminClient, accept: Callable[[str], bool], timeout_s: float
) -> list[TopicPartition]:
    """Every partition of the existing topics that ``accept`` takes."""
    metadata = admin.list_topics(timeout=timeout_s).topics
    return [
        TopicPartition(name, p)
        for name, topic in metadata.items()
        if accept(name)
        for p in topic.partitions
    ]


def offsets_at(admin: AdminClient, partitions, spec, timeout_s: float) -> Offsets:
    futures = admin.list_offsets({tp: spec for tp in partitions}, request_timeout=timeout_s)
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def committed_offsets(
    admin: AdminClient, group: str, partitions: list[TopicPartition], timeout_s: float
) -> Offsets:
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    found = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)[group]
    return {(tp.topic, tp.partition): tp.offset for tp in found.result().topic_partitions}


def lags_from(committed: Mapping, starts: Mapping, ends: Mapping) -> dict[str, int]:
    """Per topic, messages between each partition's committed offset and its end.

    A partition the group never committed counts from its earliest offset.
    """
    lags: dict[str, int] = defaultdict(int)
    for tp, end in ends.items():
        position = committed.get(tp, -1)
        lags[tp[0]] += max(0, end - (position if position >= 0 else starts[tp]))
    return dict(lags)


def topic_lags(
    admin: AdminClient, group: str, topic_pattern: str, timeout_s: float = 4.0
) -> dict[str, int]:
    """Messages per topic not yet committed by ``group``, on topics matching the pattern."""
    partitions = partitions_of(admin, re.compile(topic_pattern).match, timeout_s)
    if not partitions:
        return {}
    committed = committed_offsets(admin, group, partitions, timeout_s)
    ends = offsets_at(admin, partitions, OffsetSpec.latest(), timeout_s)
    starts = offsets_at(admin, partitions, OffsetSpec.earliest(), timeout_s)
    return lags_from(committed, starts, ends)


def groups_lags(
    admin: AdminClient, groups: Iterable[str], accept: Callable[[str], bool], timeout_s: float
) -> dict[str, dict[str, int]]:
    """Per group, per topic lag; the topics' ends are asked once for all groups."""
    partitions = partitions_of(admin, accept, timeout_s)
    if not partitions:
        return {g: {} for g in groups}
    ends = offsets_at(admin, partitions, OffsetSpec.latest(), timeout_s)
    starts = offsets_at(admin, partitions, OffsetSpec.earliest(), timeout_s)
    return {
        g: lags_from(committed_offsets(admin, g, partitions, timeout_s), starts, ends)
        for g in groups
    }


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
