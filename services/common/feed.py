"""Follow a compacted, single-partition control topic (``govbus.catalog``, ``govbus.grants``).

A follower reads the topic from its start, then keeps reading; ``changes()`` hands over the
latest value per key since the last call. A record that does not decode is never skipped:
it arrives as :class:`Unreadable`, so the process stops what that key governs (fail closed)
instead of carrying on under an older state.
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from confluent_kafka import Consumer, TopicPartition

from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range

log = logging.getLogger("govbus.feed")
T = TypeVar("T")


@dataclass(frozen=True)
class Unreadable:
    """A record this process cannot read: what it governs must stop, not go on as before."""

    key: str
    offset: int
    error: str


Decoded = T | Unreadable | None  # None: a tombstone, the key was deleted


def decode_record(
    topic: str, key: bytes | None, raw: bytes | None, offset: int, decode: Callable[[bytes], T]
) -> tuple[str, Decoded]:
    """(key, value) of one feed record; a value that fails ``decode`` becomes Unreadable."""
    name = key.decode("utf-8", "replace") if key is not None else ""
    if raw is None:
        return name, None
    try:
        return name, decode(raw)
    except Exception as exc:  # noqa: BLE001 - any failure to read must fail closed
        log.error("%s offset %d key %r: unreadable record: %s", topic, offset, name, exc)
        return name, Unreadable(name, offset, f"{type(exc).__name__}: {exc}"[:500])


def read_feed(settings: Settings, topic: str, decode: Callable[[bytes], T]) -> dict[str, Decoded]:
    """Every key's latest value, read from the start of the topic to its current end."""
    found: dict[str, Decoded] = {}
    for msg in read_range(settings, {}, end_offsets(settings, [topic])):
        name, value = decode_record(topic, msg.key(), msg.value(), msg.offset(), decode)
        found[name] = value
    return found


class FeedFollower(Generic[T]):
    """Follows one feed topic in a thread; ``changes()`` hands over what came since last time.

    ``wait_caught_up`` blocks until everything on the topic when it was called has been read,
    so a process starts with the full current state and then follows changes.
    """

    def __init__(self, settings: Settings, topic: str, decode: Callable[[bytes], T]) -> None:
        self._settings = settings
        self.topic = topic
        self._decode = decode
        self._lock = threading.Lock()
        self._pending: dict[str, Decoded] = {}
        self._offset = 0
        self.unreadable = 0  # records that did not decode, for the process's metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{topic}", daemon=True)

    def start(self) -> FeedFollower[T]:
        self._thread.start()
        # A consumer still polling while the interpreter shuts down can crash it: stop first.
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        atexit.unregister(self.stop)

    def changes(self) -> dict[str, Decoded]:
        """The latest value per key that arrived since the last call."""
        with self._lock:
            out, self._pending = self._pending, {}
        return out

    def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        target = end_offsets(self._settings, [self.topic]).get((self.topic, 0), 0)
        done = threading.Event()
        waited = 0.0
        while not done.wait(0.05):
            with self._lock:
                if self._offset >= target:
                    return
            waited += 0.05
            if waited >= timeout_s or not self._thread.is_alive():
                raise TimeoutError(f"{self.topic}: not read to offset {target} in {timeout_s}s")

    def _run(self) -> None:
        consumer = Consumer(
            self._settings.kafka_config(
                **{
                    "group.id": f"govbus-follower-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        consumer.assign([TopicPartition(self.topic, 0, 0)])
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(100, 0.1):
                    if msg.error():
                        continue
                    name, value = decode_record(
                        self.topic, msg.key(), msg.value(), msg.offset(), self._decode
                    )
                    with self._lock:
                        self._pending[name] = value
                        self._offset = msg.offset() + 1
                        self.unreadable += isinstance(value, Unreadable)
        finally:
            consumer.close()
