"""Backfill from the source topic, behind the calls of the backfill runner.

The minimal backfill: the latest change per key below the seam, read from the source topic
into memory, filtered and masked by the grant's route, delivered and recorded before the data
path goes on (``start`` returns when it is done, so no live record of the grant can overtake
its snapshot and no gate is needed). The store-backed runner in its own thread has the same
calls (``start``, ``done_ids``, ``running``, ``gate``, ``stop``).
"""

from __future__ import annotations

import json
import logging
import time

from services.common.dead_letter import DeadLetter
from services.common.grant_feed import GrantRecord
from services.common.serde import EncodeError
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import BACKFILLS
from services.router.backfill import backfill_deliveries, latest_states
from services.router.forwarder import KeyGate, OutputWriter
from services.router.routing import RawMessage, Route, Router

log = logging.getLogger("govbus.router.backfill")


def completed_backfills(settings: Settings) -> set[str]:
    """Backfill ids recorded as completed on ``govbus.backfills`` (by any run of the router)."""
    done = set()
    for msg in read_range(settings, {}, end_offsets(settings, [BACKFILLS])):
        if msg.value() is None:
            done.discard(msg.key().decode())
        else:
            done.add(msg.key().decode())
    return done


class TopicBackfillRunner:
    def __init__(
        self, settings: Settings, router: Router, writer: OutputWriter, store_url: str = ""
    ) -> None:
        self._settings = settings
        self._router = router
        self._writer = writer
        self._done = completed_backfills(settings)

    def done_ids(self) -> set[str]:
        return self._done

    def running(self) -> set[str]:
        return set()

    def gate(self, grant_id: str) -> KeyGate | None:
        return None

    def stop(self) -> None:
        pass

    def start(self, record: GrantRecord, route: Route, seam: dict[tuple[str, int], int]) -> None:
        """Deliver the current state below ``seam``; record completion once acknowledged.

        At least once: completion is recorded only after every output and audit record is
        acknowledged, so a crash mid-backfill repeats the whole backfill after the restart.
        """
        started = time.monotonic()
        grant = record.grant
        changes = []
        for msg in read_range(self._settings, {}, seam):
            raw = RawMessage(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
            event = self._router.decode_event(raw)
            if not isinstance(event, DeadLetter):  # dead-lettered when it was routed
                changes.append((msg.key(), event))
        planned = backfill_deliveries(route.plan, latest_states(changes).values())
        outputs = []
        for delivery in planned.deliveries:
            try:
                outputs.append(self._router.output(route, delivery))
            except EncodeError as exc:
                planned.failures.append((delivery.value["event_id"], str(exc)))
        for event_id, why in planned.failures:
            log.error("grant %s: backfill of event %s skipped: %s", grant.id, event_id, why)
        for out in outputs:
            self._writer.produce(out.plan.topic, out.value, out.key)
        self._writer.audit(route.plan, [(o.event_id, o.record_key) for o in outputs], "backfill")
        self._writer.flush()
        completion = {
            "grant_id": grant.id,
            "backfill_id": record.backfill_id,
            "seam": {f"{t}:{p}": off for (t, p), off in sorted(seam.items())},
            "delivered": len(outputs),
            "ts_ms": int(time.time() * 1000),
        }
        self._writer.produce(
            BACKFILLS, json.dumps(completion).encode(), record.backfill_id.encode()
        )
        self._writer.flush()
        self._done.add(record.backfill_id)
        log.info(
            "grant %s backfilled (%s): %d records from %d changes below the seam in %.2fs",
            grant.id,
            record.backfill_id,
            len(outputs),
            len(changes),
            time.monotonic() - started,
        )
