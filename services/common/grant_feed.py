"""The live view of grants: the compacted ``govbus.grants`` topic.

The control plane publishes a grant's whole state on every change, keyed by grant id, with
the resource it is on and that resource's current value schema, so a follower needs nothing
else to compile it. The last record per id is the grant's state.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from pydantic import ValidationError

from services.common.catalog import CatalogEntry, Grant, Strict
from services.common.config_files import load_catalog, load_grants
from services.common.kafka_clients import bus_topic_specs, ensure_topics, make_admin
from services.common.schemas import value_schema
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import GRANTS

log = logging.getLogger("govbus.grants")


class GrantRecord(Strict):
    grant: Grant
    resource: CatalogEntry
    value_schema: dict[str, Any]


def encode(record: GrantRecord) -> bytes:
    return record.model_dump_json().encode()


def decode(raw: bytes) -> GrantRecord:
    return GrantRecord.model_validate_json(raw)


def _decode_or_skip(raw: bytes | None, offset: int) -> GrantRecord | None:
    """The record, or None for a tombstone or a record that does not decode (logged, skipped)."""
    if raw is None:
        return None
    try:
        return decode(raw)
    except ValidationError as exc:
        log.error("%s offset %d: undecodable grant record skipped: %s", GRANTS, offset, exc)
        return None


def for_sources(records: Iterable[GrantRecord], source_pattern: str) -> dict[str, GrantRecord]:
    """The records on resources whose source topic matches ``source_pattern``, by grant id."""
    pattern = re.compile(source_pattern)
    return {r.grant.id: r for r in records if pattern.match(r.resource.topic)}


def publish_grants(settings: Settings, records: Iterable[GrantRecord], timeout_s=30.0) -> int:
    """Publish each record keyed by grant id and wait until Kafka acknowledged every one."""
    errors: list[KafkaError] = []
    producer = Producer(settings.kafka_config(**{"enable.idempotence": True, "linger.ms": 0}))
    count = 0
    for record in records:
        producer.produce(
            GRANTS,
            encode(record),
            record.grant.id.encode(),
            on_delivery=lambda err, _m: err is not None and errors.append(err),
        )
        count += 1
    if producer.flush(timeout_s) > 0:
        raise TimeoutError(f"{GRANTS}: records not acknowledged within {timeout_s}s")
    if errors:
        raise RuntimeError(f"{GRANTS}: publishing failed: {errors[0]}")
    return count


def read_grants(settings: Settings) -> dict[str, GrantRecord]:
    """Every grant's latest state, read from the start of the topic to its current end."""
    found: dict[str, GrantRecord] = {}
    for msg in read_range(settings, {}, end_offsets(settings, [GRANTS])):
        record = _decode_or_skip(msg.value(), msg.offset())
        if record is not None:
            found[record.grant.id] = record
    return found


def file_grant_records(settings: Settings) -> list[GrantRecord]:
    """The grants of the grant files, each with its resource and the resource's value schema."""
    catalog = load_catalog(settings.catalog_dir, settings.schemas_dir)
    return [
        GrantRecord(
            grant=g,
            resource=catalog[g.resource],
            value_schema=value_schema(catalog[g.resource], settings.schemas_dir),
        )
        for g in load_grants(settings.grants_dir, catalog)
    ]


def publish_file_grants(settings: Settings) -> int:
    """Publish the grant files' grants to ``govbus.grants`` (created if missing); how many."""
    ensure_topics(make_admin(settings), bus_topic_specs(settings))
    return publish_grants(settings, file_grant_records(settings))


class GrantFollower:
    """Follows the grants topic from its start in a thread; ``changes()`` hands over what came.

    ``wait_caught_up`` blocks until everything on the topic when it was called has been read,
    so a process can start with the full current state and then follow changes.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._pending: dict[str, GrantRecord] = {}
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grant-follower", daemon=True)

    def start(self) -> GrantFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def changes(self) -> list[GrantRecord]:
        """Grant records that arrived since the last call, the latest per grant id."""
        with self._lock:
            out, self._pending = list(self._pending.values()), {}
        return out

    def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        target = end_offsets(self._settings, [GRANTS]).get((GRANTS, 0), 0)
        done = threading.Event()
        deadline = timeout_s
        while not done.wait(0.05):
            with self._lock:
                if self._offset >= target:
                    return
            deadline -= 0.05
            if deadline <= 0 or not self._thread.is_alive():
                raise TimeoutError(f"{GRANTS}: not read to offset {target} in {timeout_s}s")

    def _run(self) -> None:
        consumer = Consumer(
            self._settings.kafka_config(
                **{
                    "group.id": f"govbus-grant-follower-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        consumer.assign([TopicPartition(GRANTS, 0, 0)])
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(100, 0.1):
                    if msg.error():
                        continue
                    record = _decode_or_skip(msg.value(), msg.offset())
                    with self._lock:
                        if record is not None:
                            self._pending[record.grant.id] = record
                        self._offset = msg.offset() + 1
        finally:
            consumer.close()
