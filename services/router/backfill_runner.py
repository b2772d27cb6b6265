"""Backfill newly active grants from the central store, one job per source partition, each in a
thread, while routing goes on.

A partition's backfill (see ``backfill.py`` for the seam) is run by that partition's current
owner in the router group, with that partition's seam: the data path starts one for each
partition it is assigned, for each routed grant whose backfill of that partition is not done.
From then on the router routes the grant's live changes (those at or past the seam) as for any
grant, through the grant's :class:`KeyGate`. The job waits until the central store has applied
every change of its partition below the seam, then reads that state from the store in pages
(key order) and delivers each page like the live path would (filter, project, mask, encode, op
``r``). A page is audited (kind ``backfill``) before it is sent, then acknowledged, then its
progress goes to the compacted ``govbus.backfills`` (keyed per backfill and partition): the last
key done, and at the end ``done``. A partition revoked mid-backfill stops there; its new owner
goes on after the last key recorded, and skips keys whose latest change the earlier owners
routed live (``resume``), so at most one page is sent twice.

Ordering per key: a key the live path has delivered since the seam never then receives the older
snapshot. Live and backfill records of one grant go through the grant's gate and the same
producer, so per partition the consumer sees them in the order of the gate's calls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
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
from services.common.topics import BACKFILLS, CATALOG
from services.router.backfill import (
    Partition,
    Resume,
    progress,
    progress_key,
    resume,
    snapshot_dead_letter,
    snapshot_event,
)
from services.router.backfill_state import KeyGate, Progress
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


@dataclass
class _Job:
    record: GrantRecord
    route: Route
    partition: Partition
    seam_offset: int
    gate: KeyGate
    resume: Resume
    delivered: int = 0
    failed: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def grant_id(self) -> str:
        return self.record.grant.id

    @property
    def seam(self) -> dict[Partition, int]:
        return {self.partition: self.seam_offset}

    def check(self) -> None:
        if self.stopped.is_set():
            raise BackfillStopped(f"{self.grant_id} {self.partition}")

    def stop(self) -> None:
        self.gate.stop(self.stopped)


@dataclass
class _Tally:
    live_first: int = 0  # keys the live path delivered before their snapshot: skipped
    rows: int = 0


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
        self.progress = Progress(settings)
        self._jobs: dict[tuple[str, Partition], _Job] = {}  # (grant id, partition) -> job
        self._gates: dict[str, tuple[str, KeyGate]] = {}  # grant id -> (backfill id, gate)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="backfill")
        self._dead_letters = make_producer(settings)
        self._dead_letter_errors: list[Any] = []

    def catch_up(self) -> None:
        self.progress.catch_up()

    def is_done(self, backfill_id: str, partition: Partition) -> bool:
        record = self.progress.of(backfill_id, partition)
        return bool(record and record.get("done"))

    def running(self) -> set[str]:
        """Grant ids with a partition's backfill running."""
        with self._lock:
            return {grant_id for grant_id, _ in self._jobs}

    def gate(self, grant_id: str) -> KeyGate | None:
        with self._lock:
            found = self._gates.get(grant_id)
            return found[1] if found else None

    def start(self, record: GrantRecord, route: Route, seam: dict[Partition, int]) -> None:
        """Backfill ``record``'s grant below ``seam``, one job per partition it names, in the
        background. A job of the same grant and partition still running is stopped first, and
        so is every job of an earlier activation of the grant: the new seam and terms replace
        them. A partition done is skipped; one begun goes on after its last key recorded."""
        grant_id, backfill_id = record.grant.id, record.backfill_id
        jobs = []
        with self._lock:
            current = self._gates.get(grant_id)
            if current is None or current[0] != backfill_id:
                for (g, _), job in self._jobs.items():
                    if g == grant_id:
                        job.stop()
                current = (backfill_id, KeyGate())
                self._gates[grant_id] = current
            for partition, offset in sorted(seam.items()):
                done = self.progress.of(backfill_id, partition)
                if done and done.get("done"):
                    log.info("grant %s: backfill of %s already done", grant_id, partition)
                    continue
                previous = self._jobs.get((grant_id, partition))
                if previous is not None:
                    previous.stop()
                job = _Job(record, route, partition, offset, current[1], resume(done, offset))
                if done is not None:
                    job.delivered, job.failed = done["delivered"], done["dead_lettered"]
                if job.resume.live_from < offset:
                    log.info(
                        "grant %s: backfill of %s taken over: live from %d, after %s",
                        grant_id,
                        partition,
                        job.resume.live_from,
                        job.resume.after,
                    )
                # Where it begins, before any live change past the seam is committed (the
                # checkpoint's flush confirms it): a new owner then knows what went out live.
                self._record(job, done=False, flush=False)
                self._jobs[(grant_id, partition)] = job
                jobs.append(job)
            self._forget_gate(grant_id)
        for job in jobs:
            self._pool.submit(self._run, job)

    def stop_partitions(self, partitions: list[Partition]) -> None:
        """Partitions this router gives up: their jobs send nothing more once this returns."""
        gone = set(partitions)
        with self._lock:
            jobs = [job for (_, p), job in self._jobs.items() if p in gone]
        for job in jobs:
            job.stop()
            log.info("grant %s: backfill of %s handed over", job.grant_id, job.partition)

    def stop(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._dead_letters.flush(10)
        self.progress.stop()
        self._engine.dispose()

    def _forget_gate(self, grant_id: str) -> None:
        """The gate goes with the grant's last job (called under the lock)."""
        if not any(g == grant_id for g, _ in self._jobs):
            self._gates.pop(grant_id, None)

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
            job.stop()
            with self._lock:
                if self._jobs.get((job.grant_id, job.partition)) is job:
                    del self._jobs[(job.grant_id, job.partition)]
                self._forget_gate(job.grant_id)

    def _backfill(self, job: _Job) -> None:
        started = time.monotonic()
        tally = _Tally()
        catalog = self._catalog_record(job)
        self._wait_for_store(job, catalog.topic)
        log.info("grant %s: backfill from the central store, seam %s", job.grant_id, job.seam)
        state = StoreState(self._engine, catalog, job.seam, self._page_rows)
        for page in state.pages(job.resume.after):
            job.check()
            if self._router.route_of(job.grant_id) is None:
                raise BackfillStopped(f"{job.grant_id} is no longer routed")
            self._deliver(job, page, tally, catalog.resource)
            job.resume = Resume(job.resume.live_from, state.last_key)
            self._record(job, done=False)
        job.check()
        self._record(job, done=True)
        log.info(
            "grant %s backfilled %s (%s): %d records from %d keys below the seam, %d already "
            "delivered live, %d dead-lettered, in %.1fs",
            job.grant_id,
            job.partition,
            job.record.backfill_id,
            job.delivered,
            tally.rows,
            tally.live_first,
            job.failed,
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
        """One page: audit it, deliver it through the gate, wait for the acknowledgements.

        The audit record goes first and is acknowledged before any of the page is sent, so
        whatever reaches the consumer is on the trail even if the process dies mid-page (a key
        that goes live in between is then audited and not sent: the trail errs on the side of
        naming too much)."""
        route, plan = job.route, job.route.plan
        outs = []
        for row in page:
            tally.rows += 1
            if job.resume.sent_live(row.offset):  # an earlier owner routed it live
                tally.live_first += 1
                continue
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
                job.failed += 1
                continue
            if job.gate.went_live(out.key):
                tally.live_first += 1
            else:
                outs.append(out)
        if outs:
            self._writer.audit(plan, [(o.event_id, o.record_key) for o in outs], "backfill")
            self._writer.flush(FLUSH_S)
        for out in outs:
            produce = partial(self._writer.produce, plan.topic, out.value, out.key)
            if job.gate.snapshot(out.key, produce, job.stopped):
                job.delivered += 1
            else:
                tally.live_first += 1
        self._writer.flush(FLUSH_S)
        self._flush_dead_letters()
        job.check()  # stopped during the page: some of it unsent, so its progress not recorded

    def _on_dead_letter(self, err, _msg) -> None:
        if err is not None:
            self._dead_letter_errors.append(err)

    def _flush_dead_letters(self) -> None:
        remaining = self._dead_letters.flush(FLUSH_S)
        if remaining or self._dead_letter_errors:
            errors, self._dead_letter_errors = self._dead_letter_errors, []
            raise RuntimeError(f"dead letters not acknowledged: {remaining} left, {errors[:3]}")

    def _record(self, job: _Job, done: bool, flush: bool = True) -> None:
        """The partition's progress, once everything before it is acknowledged."""
        backfill_id = job.record.backfill_id
        record = progress(
            job.grant_id,
            backfill_id,
            job.partition,
            job.resume,
            job.delivered,
            job.failed,
            done,
        )
        key = progress_key(backfill_id, job.partition)
        self._writer.produce(BACKFILLS, json.dumps(record, default=str).encode(), key.encode())
        if flush:
            self._writer.flush(FLUSH_S)
