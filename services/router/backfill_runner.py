"""Backfill newly active grants from the central store, each in a thread, while routing goes on.

A grant's backfill (see ``backfill.py`` for the seam) starts when the router hands over the
grant with its seam; from then on the router routes the grant's live changes (those at or past
the seam) as for any grant, through the grant's :class:`KeyGate`. The backfill thread waits
until the central store has applied every change below the seam, then reads the state below the
seam from the store in pages, and delivers each page like the live path would (filter, project,
mask, encode, op ``r``), with its audit records (kind ``backfill``), acknowledged page by page,
so memory stays bounded whatever the size of the resource. Completion goes to the compacted
``govbus.backfills`` only after every record is acknowledged: a crash repeats the backfill (at
least once).

Ordering per key: a key the live path has delivered since the seam never then receives the older
snapshot. Live and backfill records of one grant go through the grant's gate and the same
producer, so per partition the consumer sees them in the order of the gate's calls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.common import catalog_feed
from services.common.catalog import CatalogEntry
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import produce_dead_letter
from services.common.feed import read_feed
from services.common.grant_feed import GrantRecord
from services.common.kafka_clients import make_producer
from services.common.plan import DeliveryPlan, plan_delivery
from services.common.settings import Settings
from services.common.sql import build_engine
from services.common.store_reader import StateRow, StoreState, behind, store_positions
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import BACKFILLS, CATALOG
from services.router.backfill import (
    Partition,
    completion,
    snapshot_dead_letter,
    snapshot_event,
)
from services.router.routing import Route, Router

log = logging.getLogger("govbus.router.backfill")

STORE_WAIT_S = 1800.0  # how long the store may take to reach a seam (a sink catching up)
WAIT_LOG_S = 15.0  # how often a waiting backfill says so
FLUSH_S = 120.0  # acknowledgement of one page
RETRY_PAUSES_S = (5.0, 15.0, 30.0, 60.0)  # between attempts of a failed backfill


class OutputWriter(Protocol):
    """What the router's forwarder offers a backfill (thread-safe)."""

    def produce(self, topic: str, value: bytes, key: bytes) -> None: ...

    def audit(
        self, plan: DeliveryPlan, shares: list[tuple[str, dict[str, Any]]], kind: str
    ) -> None: ...

    def flush(self, timeout: float) -> None: ...  # raises on any delivery error


class BackfillStopped(Exception):
    """The backfill was stopped (router stopping, grant removed or started again): not done."""


class KeyGate:
    """Serialises one grant's live and backfill records per record key.

    ``key`` is the grant's output key (``Output.key``: the encoded, masked record key), the same
    bytes on both paths. A key delivered live since the seam is newer than any snapshot of it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[bytes] = set()
        self._closed = False

    def live(self, key: bytes, produce: Callable[[], None]) -> None:
        """The router's loop: record that ``key`` went live, and produce it (always)."""
        with self._lock:
            self._live.add(key)
            produce()

    def snapshot(self, key: bytes, produce: Callable[[], None]) -> None:
        """The backfill: produce the snapshot of ``key`` unless the live path got there first."""
        with self._lock:
            if not self._closed and key not in self._live:
                produce()

    def close(self) -> None:
        """No snapshot after this (a stopped backfill); live calls still produce."""
        with self._lock:
            self._closed = True


@dataclass
class _Job:
    record: GrantRecord
    route: Route
    seam: dict[Partition, int]
    gate: KeyGate = field(default_factory=KeyGate)
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def grant_id(self) -> str:
        return self.record.grant.id

    def check(self) -> None:
        if self.stopped.is_set():
            raise BackfillStopped(self.grant_id)

    def stop(self) -> None:
        self.stopped.set()
        self.gate.close()


@dataclass
class _Tally:
    delivered: int = 0
    live_first: int = 0  # keys the live path delivered before their snapshot: skipped
    failed: int = 0
    rows: int = 0


def completed_backfills(settings: Settings) -> set[str]:
    """Backfill ids completed by any run of the router (``govbus.backfills``)."""
    done: set[str] = set()
    for msg in read_range(settings, {}, end_offsets(settings, [BACKFILLS])):
        key = msg.key().decode()
        if msg.value() is None:
            done.discard(key)
        else:
            done.add(key)
    return done


class BackfillRunner:
    """Runs backfills in background threads (``workers`` at a time); see the module doc."""

    def __init__(
        self,
        settings: Settings,
        router: Router,
        writer: OutputWriter,
        store_url: str,
        *,
        workers: int = 2,
        page_rows: int = 2000,
        store_wait_s: float = STORE_WAIT_S,
    ) -> None:
        self._settings = settings
        self._router = router
        self._writer = writer
        self._engine = build_engine(store_url)
        self._page_rows = page_rows
        self._store_wait_s = store_wait_s
        self._done = completed_backfills(settings)
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="backfill")
        self._dead_letters = make_producer(settings)
        self._dead_letter_errors: list[Any] = []

    def done_ids(self) -> set[str]:
        with self._lock:
            return set(self._done)

    def running(self) -> set[str]:
        with self._lock:
            return set(self._jobs)

    def gate(self, grant_id: str) -> KeyGate | None:
        with self._lock:
            job = self._jobs.get(grant_id)
            return job.gate if job else None

    def start(self, record: GrantRecord, route: Route, seam: dict[Partition, int]) -> None:
        """Backfill ``record``'s grant below ``seam`` in the background. A backfill of the same
        grant still running is stopped first: the new seam and terms replace it."""
        job = _Job(record, route, dict(seam))
        with self._lock:
            if record.backfill_id in self._done:
                log.info("grant %s: backfill %s already done", job.grant_id, record.backfill_id)
                return
            previous = self._jobs.get(job.grant_id)
            if previous is not None:
                previous.stop()
            self._jobs[job.grant_id] = job
        self._pool.submit(self._run, job)

    def stop(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._dead_letters.flush(10)
        self._engine.dispose()

    def _run(self, job: _Job) -> None:
        """The backfill, again after a failure (a broker or store hiccup) a few times: pages
        sent before the failure are sent again (at least once, keyed, so idempotent)."""
        try:
            for pause in (*RETRY_PAUSES_S, None):
                try:
                    self._backfill(job)
                    return
                except BackfillStopped:
                    log.info("grant %s: backfill stopped, not recorded as done", job.grant_id)
                    return
                except Exception as exc:
                    if pause is None:
                        log.exception(
                            "grant %s: backfill failed %d times, not recorded as done: it runs "
                            "again when the grant is started again or the router restarts",
                            job.grant_id,
                            len(RETRY_PAUSES_S) + 1,
                        )
                        return
                    log.warning(
                        "grant %s: backfill failed (%s), again in %.0fs", job.grant_id, exc, pause
                    )
                    if job.stopped.wait(pause):
                        return
        finally:
            job.gate.close()
            with self._lock:
                if self._jobs.get(job.grant_id) is job:
                    del self._jobs[job.grant_id]

    def _backfill(self, job: _Job) -> None:
        started = time.monotonic()
        tally = _Tally()
        catalog = self._catalog_record(job)
        self._wait_for_store(job, catalog.topic)
        log.info("grant %s: backfill from the central store, seam %s", job.grant_id, job.seam)
        for page in StoreState(self._engine, catalog, job.seam, self._page_rows).pages():
            job.check()
            if self._router.route_of(job.grant_id) is None:
                raise BackfillStopped(f"{job.grant_id} is no longer routed")
            self._deliver(job, page, tally, catalog.resource)
        job.check()
        self._record_done(job, tally)
        log.info(
            "grant %s backfilled (%s): %d records from %d keys below the seam, %d already "
            "delivered live, %d dead-lettered, in %.1fs",
            job.grant_id,
            job.record.backfill_id,
            tally.delivered,
            tally.rows,
            tally.live_first,
            tally.failed,
            time.monotonic() - started,
        )

    def _catalog_record(self, job: _Job) -> CatalogRecord:
        """The resource as the catalog has it now: its tables and current schema."""
        resource = job.record.grant.resource
        found = read_feed(self._settings, CATALOG, catalog_feed.decode).get(resource)
        if not isinstance(found, CatalogRecord):
            raise LookupError(f"resource {resource} is not readable in {CATALOG}: {found}")
        return found

    def _wait_for_store(self, job: _Job, topic: str) -> None:
        """Until the store has applied every change below the seam (the sink may lag)."""
        seam_of = {p: off for (t, p), off in job.seam.items() if t == topic}
        deadline = time.monotonic() + self._store_wait_s
        next_log = time.monotonic()
        while lagging := behind(store_positions(self._engine, topic), seam_of):
            if time.monotonic() >= next_log:
                where = ", ".join(
                    f"{topic}[{p}] {have} < {need}" for p, (have, need) in lagging.items()
                )
                log.warning(
                    "grant %s: backfill waits for the central store to store up to the seam: %s",
                    job.grant_id,
                    where,
                )
                next_log = time.monotonic() + WAIT_LOG_S
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the central store did not reach the seam in {self._store_wait_s:.0f}s "
                    f"(is the sink running?): {lagging}"
                )
            if job.stopped.wait(0.5):
                raise BackfillStopped(job.grant_id)

    def _deliver(self, job: _Job, page: list[StateRow], tally: _Tally, entry: CatalogEntry) -> None:
        """One page: deliver it through the gate, audit it, and wait for the acknowledgements."""
        route, plan = job.route, job.route.plan
        shares: list[tuple[str, dict[str, Any]]] = []
        for row in page:
            tally.rows += 1
            try:
                delivery = plan_delivery(plan, snapshot_event(row.change()))
                if delivery is None:  # the row filter holds it back
                    continue
                out = self._router.output(route, delivery)
            except (KeyError, ValueError) as exc:  # MaskingError, EncodeError: ValueErrors
                position = (row.topic, row.partition, row.offset)
                letter = snapshot_dead_letter(job.grant_id, exc, row.change(), entry, position)
                log.error(
                    "grant %s: event %s dead-lettered: %s",
                    job.grant_id,
                    row.event_id,
                    letter.detail,
                )
                produce_dead_letter(self._dead_letters, letter, self._on_dead_letter)
                tally.failed += 1
                continue

            def produce(out=out) -> None:
                self._writer.produce(plan.topic, out.value, out.key)
                shares.append((out.event_id, out.record_key))

            before = len(shares)
            job.gate.snapshot(out.key, produce)
            tally.live_first += len(shares) == before
        if shares:
            self._writer.audit(plan, shares, "backfill")
        self._writer.flush(FLUSH_S)
        self._flush_dead_letters()
        tally.delivered += len(shares)

    def _on_dead_letter(self, err, _msg) -> None:
        if err is not None:
            self._dead_letter_errors.append(err)

    def _flush_dead_letters(self) -> None:
        remaining = self._dead_letters.flush(FLUSH_S)
        if remaining or self._dead_letter_errors:
            errors, self._dead_letter_errors = self._dead_letter_errors, []
            raise RuntimeError(f"dead letters not acknowledged: {remaining} left, {errors[:3]}")

    def _record_done(self, job: _Job, tally: _Tally) -> None:
        backfill_id = job.record.backfill_id
        done = completion(job.grant_id, backfill_id, job.seam, tally.delivered, tally.failed)
        self._writer.produce(BACKFILLS, json.dumps(done).encode(), backfill_id.encode())
        self._writer.flush(FLUSH_S)
        with self._lock:
            self._done.add(backfill_id)
