"""What a grant's backfill shares across threads and routers: the key gate between its live
and snapshot records, and every partition's progress on ``govbus.backfills``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from services.common.feed import FeedFollower, Unreadable
from services.common.settings import Settings
from services.common.topics import BACKFILLS
from services.router.backfill import Partition, progress_key


class KeyGate:
    """Serialises one grant's live and backfill records per record key.

    ``key`` is the grant's output key (``Output.key``: the encoded, masked record key), the same
    bytes on both paths. A key delivered live since the seam is newer than any snapshot of it.
    One gate serves every partition's job of one activation of the grant (a key lives on one
    partition).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[bytes] = set()

    def live(self, key: bytes, produce: Callable[[], None]) -> None:
        """The router's loop: record that ``key`` went live, and produce it (always)."""
        with self._lock:
            self._live.add(key)
            produce()

    def went_live(self, key: bytes) -> bool:
        with self._lock:
            return key in self._live

    def snapshot(self, key: bytes, produce: Callable[[], None], stopped: threading.Event) -> bool:
        """The backfill: produce the snapshot of ``key`` unless the live path got there first
        or the job was stopped; whether it was produced."""
        with self._lock:
            if stopped.is_set() or key in self._live:
                return False
            produce()
            return True

    def stop(self, stopped: threading.Event) -> None:
        """No snapshot of that job after this returns; live calls still produce."""
        with self._lock:
            stopped.set()


class Progress:
    """Backfill progress per backfill and partition, recorded by every router of the group,
    followed live from ``govbus.backfills``."""

    def __init__(self, settings: Settings) -> None:
        self._feed = FeedFollower(settings, BACKFILLS, json.loads).start()
        self._feed.wait_caught_up()
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def catch_up(self, timeout_s: float = 30.0) -> None:
        """Read what other routers recorded up to now (before taking their partitions over)."""
        self._feed.wait_caught_up(timeout_s)

    def of(self, backfill_id: str, partition: Partition) -> dict[str, Any] | None:
        with self._lock:
            for key, value in self._feed.changes().items():
                if value is None or isinstance(value, Unreadable):
                    self._records.pop(key, None)
                else:
                    self._records[key] = value
            return self._records.get(progress_key(backfill_id, partition))

    def stop(self) -> None:
        self._feed.stop()
