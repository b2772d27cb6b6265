"""Reading the dead-letter topic, and redriving a dead letter through the normal path.

A dead letter's original is where the bus left it: an event that reached a source topic is
read back at its source position and produced to that topic again, so the router routes it and
the sink stores it as any new event (the sink knows it by its event id, so storing it again
changes nothing it already has); a change ingest rejected is opened from its sealed copy with
the authority's private key, mended with ``--set`` if needed, and published through
``ChangePublisher`` again, which validates it like any other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from services.common.authority_seal import private_key, unseal
from services.common.dead_letter import header_map
from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import DLQ
from services.ingest.publisher import Change

REDRIVE_HEADER = "govbus.redrive.of"  # on a re-produced event: the dead letter it came from


class RedriveError(ValueError):
    """A dead letter that cannot be redriven as asked; the message says why."""


@dataclass(frozen=True)
class Letter:
    """One record of ``govbus.dlq``: its offset and time, headers and (JSON) body."""

    offset: int
    ts_ms: int
    headers: dict[str, str]
    body: dict[str, Any] | None  # None: not a JSON dead letter (written by an older bus)

    @property
    def stage(self) -> str:
        return self.headers.get("govbus.stage", "?")

    @property
    def reason(self) -> str:
        return self.headers.get("govbus.reason", "?")


def read_letters(settings: Settings, start: int = 0) -> Iterator[Letter]:
    """Every dead letter from offset ``start`` to the current end (``govbus.dlq`` has one
    partition)."""
    end = end_offsets(settings, [DLQ])
    for msg in read_range(settings, {(DLQ, 0): start}, end, timeout_s=300):
        try:
            body = json.loads(msg.value())
        except (TypeError, ValueError):
            body = None
        yield Letter(
            msg.offset(),
            msg.timestamp()[1],
            header_map(msg.headers()),
            body if isinstance(body, dict) else None,
        )


def letter_at(settings: Settings, offset: int) -> Letter:
    for letter in read_letters(settings, offset):
        if letter.offset == offset:
            return letter
        break
    raise RedriveError(f"no dead letter at offset {offset} of {DLQ}")


def apply_fixes(change: Change, fixes: Mapping[str, str]) -> Change:
    """The change with each ``field=value`` fix set wherever the record has the field."""
    parts = {}
    for part in ("before", "after"):
        record = getattr(change, part)
        if record is not None:
            record = {**record, **{k: v for k, v in fixes.items() if k in record}}
        parts[part] = record
    unknown = [f for f in fixes if not any(r and f in r for r in parts.values())]
    if unknown:
        raise RedriveError(f"the change has no field {', '.join(unknown)}")
    return Change(**{**change.__dict__, **parts})


def opened_change(settings: Settings, letter: Letter) -> Change:
    """The original of an ingest dead letter, opened with the authority's private key."""
    sealed = (letter.body or {}).get("sealed")
    if not sealed:
        raise RedriveError(f"dead letter {letter.offset} carries no sealed original")
    fields = json.loads(unseal(private_key(settings), sealed))
    return Change(**fields)


def redrive(settings: Settings, letter: Letter, fixes: Mapping[str, str]) -> str:
    """Re-publish the dead letter's original; says what was done. RedriveError if it cannot."""
    body = letter.body
    if body is None:
        raise RedriveError(f"dead letter {letter.offset} is not in the current format")
    if body.get("source"):
        if fixes:
            raise RedriveError("--set mends ingest rejects only; this event is on a source topic")
        return _reproduce(settings, letter.offset, body["source"])
    return _republish(settings, apply_fixes(opened_change(settings, letter), fixes))


def _reproduce(settings: Settings, dlq_offset: int, source: Mapping[str, Any]) -> str:
    topic, partition, offset = source["topic"], int(source["partition"]), int(source["offset"])
    where = (topic, partition)
    found = [m for m in read_range(settings, {where: offset}, {where: offset + 1})]
    found = [m for m in found if m.offset() == offset]
    if not found:
        raise RedriveError(f"the original at {topic}[{partition}]@{offset} is gone (retention)")
    original = found[0]
    producer = make_producer(settings)
    headers = [(REDRIVE_HEADER, f"{DLQ}:{dlq_offset}".encode())]
    producer.produce(topic, original.value(), original.key(), headers=headers)
    if producer.flush(30):
        raise RedriveError(f"Kafka did not acknowledge the event on {topic}")
    return f"re-produced {topic}[{partition}]@{offset} to {topic}"


def _republish(settings: Settings, change: Change) -> str:
    from services.ingest.feed import build_publisher

    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    try:
        event_id = publisher.publish(change)
        if producer.flush(30):
            raise RedriveError("Kafka did not acknowledge the change")
    finally:
        publisher.close()
    if event_id is None:
        raise RedriveError("ingest rejected the change again: see `govbus dlq list`")
    return f"published {change.resource} as event {event_id}"
