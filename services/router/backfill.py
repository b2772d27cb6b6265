"""Backfill on activation, the pure part: where the seam is, and what the current state is.

When a grant becomes active, its consumer first receives the current state of the resource,
then live changes. The router applies grant changes only between batches, so for each source
partition there is a seam: every message below it was routed without the grant, every one
at or after it will be routed with it. The backfill is the latest change per record key
below the seam (a delete means the record is gone), filtered and masked by the grant's plan
like a live change, as op ``r`` under the event id of that latest change. Nothing is missed
or doubled at the seam.

The state is read from the central store, which has no retention gap (``backfill_runner.py``,
``common/store_reader.py``). ``latest_states`` computes the same state from a topic's changes:
the reference tests check the store's state against (a topic forgets rows after its retention,
so backfill does not read one).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.catalog import CatalogEntry
from services.common.dead_letter import DeadLetter, masked_change
from services.common.plan import Delivery, DeliveryPlan, plan_delivery
from services.common.serde import EncodeError
from services.router.routing import STAGE

Partition = tuple[str, int]  # (topic, partition)


def seam(
    partitions: Iterable[Partition],
    routed: Mapping[Partition, int],
    committed: Mapping[Partition, int],
) -> dict[Partition, int]:
    """The seam per partition.

    ``routed``: the next offset after the last message this process routed, per partition.
    ``committed``: the router group's committed offsets (negative or missing: none).
    A partition this process routed: its routed position. Else the committed offset, where
    this process started (or will start) reading it. Else the beginning.
    """
    out = {}
    for tp in partitions:
        if tp in routed:
            out[tp] = routed[tp]
        elif committed.get(tp, -1) >= 0:
            out[tp] = committed[tp]
        else:
            out[tp] = 0
    return out


def latest_states(
    changes: Iterable[tuple[bytes | None, Mapping[str, Any]]],
) -> dict[bytes | None, Mapping[str, Any]]:
    """The latest change event per record key (key bytes), in log order; deletes drop the key.

    ``changes`` are (key, decoded envelope) pairs of one partition or more, each partition in
    offset order (a key lives on one partition, so the order across partitions is irrelevant).
    """
    state: dict[bytes | None, Mapping[str, Any]] = {}
    for key, event in changes:
        if event["op"] == "d":
            state.pop(key, None)
        else:
            state[key] = event
    return state


def snapshot_event(latest: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot read (op ``r``) of a record's latest change, under that change's event id."""
    return {
        "before": None,
        "after": latest["after"],
        "op": "r",
        "ts_ms": latest["ts_ms"],
        "event_id": latest["event_id"],
    }


@dataclass(frozen=True)
class BackfillPlan:
    deliveries: list[Delivery]
    failures: list[tuple[str, str]]  # (event id, why): records the plan could not deliver


def backfill_deliveries(plan: DeliveryPlan, latest: Iterable[Mapping[str, Any]]) -> BackfillPlan:
    """What the grant's consumer receives for the current state: filtered, projected, masked."""
    deliveries, failures = [], []
    for event in latest:
        try:
            delivery = plan_delivery(plan, snapshot_event(event))
        except (KeyError, ValueError) as exc:
            failures.append((event["event_id"], snapshot_failure(exc)[1]))
            continue
        if delivery is not None:
            deliveries.append(delivery)
    return BackfillPlan(deliveries, failures)


def snapshot_failure(exc: Exception) -> tuple[str, str]:
    """(dead-letter reason, detail) of a snapshot its grant's plan could not deliver: a field
    missing (KeyError), masking (MaskingError) or encoding (EncodeError) failed."""
    if isinstance(exc, KeyError):
        return "missing_field", f"record lacks field {exc}"
    if isinstance(exc, EncodeError):
        return exc.reason, str(exc)
    return "masking_failed", f"masking failed: {exc}"


def snapshot_dead_letter(
    grant_id: str,
    exc: Exception,
    change: Mapping[str, Any],
    entry: CatalogEntry,
    position: tuple,
) -> DeadLetter:
    """The dead letter of a snapshot that failed: the stored change masked, naming the grant,
    and the position of the source event that wrote it (where a redrive reads it)."""
    reason, detail = snapshot_failure(exc)
    topic, partition, offset = position
    return DeadLetter(
        STAGE,
        reason,
        f"grant {grant_id} backfill: {detail}",
        topic,
        partition,
        offset,
        grant_id,
        resource=entry.resource_id,
        record=masked_change(change, entry),
    )


def progress_key(backfill_id: str, partition: Partition) -> str:
    """Key of one partition's backfill progress on ``govbus.backfills`` (compacted)."""
    topic, number = partition
    return f"{backfill_id}#{topic}:{number}"


def progress(
    grant_id: str,
    backfill_id: str,
    partition: Partition,
    resume: Resume,
    delivered: int,
    failed: int,
    done: bool,
) -> dict[str, Any]:
    """One partition's backfill progress, keyed by :func:`progress_key`: every change of the
    partition from ``live_from`` on went out live, and every key up to ``after`` (key order) is
    done; ``done``: all of them."""
    topic, number = partition
    return {
        "grant_id": grant_id,
        "backfill_id": backfill_id,
        "from": "central_store",
        "partition": f"{topic}:{number}",
        "seam": {f"{topic}:{number}": resume.live_from},
        "after": resume.after,
        "delivered": delivered,
        "dead_lettered": failed,
        "done": done,
        "ts_ms": int(time.time() * 1000),
    }


@dataclass(frozen=True)
class Resume:
    """Where a partition's backfill stands: changes from ``live_from`` on went out live (the
    first owner's seam), keys up to ``after`` are done (None: none yet)."""

    live_from: int
    after: list[Any] | None = None

    def sent_live(self, offset: int) -> bool:
        """Whether the change at ``offset`` (a key's latest below this run's seam) went out live:
        its snapshot would only repeat it."""
        return offset >= self.live_from


def resume(record: Mapping[str, Any] | None, seam_offset: int) -> Resume:
    """Where a partition's backfill goes on, with this run's seam, after its owner changed or it
    failed: from the earlier run's record, when that run's seam is at or below this one.

    Why that is exact: from the first run's seam on, every change of the partition was routed
    live with the grant (by whichever router owned it), and the new seam is where the earlier
    owner's commits ended. So a key whose latest change below the new seam is at or past the
    first seam has that change already; every other key gets its state below the new seam, and
    keys up to ``after`` are done.
    """
    if not record or record.get("done"):
        return Resume(seam_offset)
    (first,) = record["seam"].values()
    if first > seam_offset:  # the group's offsets went back: start over
        return Resume(seam_offset)
    return Resume(first, record.get("after"))
