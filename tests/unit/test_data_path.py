"""The router's batch loop on fake Kafka clients: what is committed when, and what changes
between batches."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from services.common.audit import AuditChain
from services.common.catalog import GrantState
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import header_map
from services.common.grant_feed import GrantRecord
from services.common.metrics import BusMetrics
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.settings import Settings
from services.common.topics import DLQ, value_subject
from services.router import data_path
from services.router.data_path import DataPath
from services.router.forwarder import DeliveryFailed, OutputWriter
from services.router.live_grants import GrantSync
from services.router.routing import Router
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, codec, envelope, grant, resident
from tests.unit.router_fakes import FakeConsumer, FakeFollower, FakeMessage, FakeProducer

TOPIC = "gov.psb.resident_population"
MCA = "mca-resident-population"
MCA_TOPIC = "deliver.mca.resident_population"
SECRET = b"unit-test-master-secret"


class RecordingBackfills:
    def __init__(self, gates=None, done=()) -> None:
        self.started: list[tuple[str, dict]] = []
        self.handed_over: list[tuple[str, int]] = []
        self.caught_up = 0
        self._gates = gates or {}
        self._done = set(done)  # (backfill id, partition)

    def start(self, record, route, seam) -> None:
        self.started.append((record.backfill_id, seam))

    def is_done(self, backfill_id, partition) -> bool:
        return (backfill_id, partition) in self._done

    def catch_up(self) -> None:
        self.caught_up += 1

    def gate(self, grant_id):
        return self._gates.get(grant_id)

    def stop_partitions(self, partitions) -> None:
        self.handed_over += partitions

    def stop(self) -> None:
        pass


class RecordingGate:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def live(self, key, produce) -> None:
        self.keys.append(key)
        produce()


def resource_changes() -> dict:
    entry = catalog()[RESIDENTS]
    record = CatalogRecord(
        resource=entry, value_schema=value_schema(entry, SCHEMAS), schema_version=1
    )
    return {RESIDENTS: record}


def grant_changes(**changes) -> dict:
    return {
        g: GrantRecord(grant=grant(g, **changes), activation=1)
        for g in (MCA, "edu-resident-population")
    }


class Rig:
    """A data path on fakes, with the catalog's residents resource and its two grants."""

    def __init__(self, steps, catalog_script=None, grant_script=None, backfills=None) -> None:
        self.stop = threading.Event()
        self.consumer = FakeConsumer(steps, self.stop, assignment=[(TOPIC, p) for p in range(3)])
        self.producer = FakeProducer()
        self.codec = codec()
        router = Router(self.codec, SECRET, source_schema(SCHEMAS))
        metrics = BusMetrics(CollectorRegistry())
        sync = GrantSync(r"^gov\.psb\..+", router, metrics, lambda _topics: None)
        self.catalog = FakeFollower(catalog_script or [resource_changes()])
        self.grants = FakeFollower(grant_script or [grant_changes()])
        self.backfills = backfills or RecordingBackfills()
        self.path = DataPath(
            Settings(source_pattern=r"^gov\.psb\..+", batch_size=100),
            self.consumer,
            router,
            sync,
            OutputWriter(self.producer, AuditChain(b"test")),
            metrics,
            self.catalog,
            self.grants,
            lambda: self.backfills,
            committed=lambda parts: dict.fromkeys(parts, -1001),  # nothing committed yet
        )
        entry = catalog()[RESIDENTS]
        self.encode = self.codec.encoder(
            value_subject(TOPIC),
            envelope_schema(value_schema(entry, SCHEMAS), source_schema(SCHEMAS)),
        )

    def events(self, partition: int, offsets: range, topic: str = TOPIC) -> list[FakeMessage]:
        """Changes every residents grant delivers (born 2015 in Hefei: mca and edu)."""
        return [
            FakeMessage(
                topic,
                partition,
                o,
                b"k",
                self.encode(envelope("c", after=resident(birth_date="2015-03-02"))),
            )
            for o in offsets
        ]

    def delivered(self, topic: str) -> list[str]:
        return [
            self.codec.decode(s["value"])["event_id"]
            for s in self.producer.sent
            if s["topic"] == topic
        ]


def ids(rig: Rig, messages: list[FakeMessage]) -> list[str]:
    return [rig.codec.decode(m.value())["event_id"] for m in messages]


def test_a_failed_output_commits_nothing_and_stops_the_loop(monkeypatch):
    monkeypatch.setattr(data_path, "CHECKPOINT_EVENTS", 1)  # a checkpoint after every batch
    rig = Rig([])
    first, second = rig.events(0, range(0, 3)), rig.events(0, range(3, 5))

    def failing(_consumer):
        rig.producer.fail_topics.add(MCA_TOPIC)  # Kafka refuses this batch's deliveries
        return second

    rig.consumer._steps = [first, failing, rig.events(0, range(5, 6))]
    with pytest.raises(DeliveryFailed):
        rig.path.run(rig.stop)
    assert rig.consumer.commits == [{(TOPIC, 0): 3}]  # the first batch only
    assert rig.consumer.closed
    assert ids(rig, second)[0] in rig.delivered(MCA_TOPIC)  # produced, never acknowledged


def test_a_revocation_commits_what_was_acknowledged_before_giving_partitions_up(monkeypatch):
    monkeypatch.setattr(data_path, "CHECKPOINT_EVENTS", 10**9)
    monkeypatch.setattr(data_path, "CHECKPOINT_S", 10**9)  # only the revocation checkpoints
    rig = Rig([])
    unflushed_at_commit = []
    commit = rig.consumer.commit

    def checked_commit(offsets=None, asynchronous=True):
        unflushed_at_commit.append(len(rig.producer._unflushed))
        commit(offsets, asynchronous)

    rig.consumer.commit = checked_commit
    rig.consumer._steps = [
        rig.events(0, range(0, 2)) + rig.events(1, range(0, 1)),
        lambda c: c.revoke([(TOPIC, 0), (TOPIC, 1)]),
    ]
    rig.path.run(rig.stop)
    assert rig.consumer.commits == [{(TOPIC, 0): 2, (TOPIC, 1): 1}]
    assert unflushed_at_commit == [0]  # flushed (acknowledged) before the commit
    assert rig.path.forwarder.positions == {}  # a later seam comes from the committed offset


def test_grant_changes_apply_between_batches():
    revoked = {MCA: GrantRecord(grant=grant(MCA, state=GrantState.REVOKED), activation=1)}
    rig = Rig([], grant_script=[grant_changes(), revoked])
    first, second = rig.events(0, range(0, 3)), rig.events(0, range(3, 6))
    rig.consumer._steps = [first, second]
    rig.path.run(rig.stop)
    assert rig.delivered(MCA_TOPIC) == ids(rig, first)
    assert rig.delivered("deliver.edu.resident_population") == ids(rig, first + second)
    # Each activation got its backfill, from the seam before any event was routed.
    assert sorted(b for b, _ in rig.backfills.started) == ["edu-resident-population", MCA]
    assert rig.backfills.started[0][1] == {(TOPIC, 0): 0, (TOPIC, 1): 0, (TOPIC, 2): 0}


def test_an_event_of_a_resource_the_follower_has_not_read_yet_is_routed_after_catching_up():
    rig = Rig([], catalog_script=[{}])
    rig.catalog.on_catch_up = resource_changes()  # on the topic, not handed over yet
    stray = rig.events(0, range(0, 1), topic="gov.psb.not_in_the_catalog")
    batch = rig.events(0, range(0, 2))
    rig.consumer._steps = [batch + stray]
    rig.path.run(rig.stop)
    assert rig.catalog.caught_up == 1
    assert rig.delivered(MCA_TOPIC) == ids(rig, batch)
    letters = [header_map(s["headers"]) for s in rig.producer.sent if s["topic"] == DLQ]
    assert [h["govbus.reason"] for h in letters] == ["unknown_resource"]
    assert letters[0]["govbus.source.topic"] == "gov.psb.not_in_the_catalog"


def test_live_outputs_of_a_grant_being_backfilled_pass_its_gate_by_delivered_key():
    gate = RecordingGate()
    rig = Rig([], backfills=RecordingBackfills({MCA: gate}))
    rig.consumer._steps = [rig.events(0, range(0, 2))]
    rig.path.run(rig.stop)
    delivered = [s for s in rig.producer.sent if s["topic"] == MCA_TOPIC]
    assert len(delivered) == 2
    assert gate.keys == [s["key"] for s in delivered]


def test_one_grants_failure_costs_only_its_delivery_and_the_batch_goes_on(monkeypatch):
    """mca cannot generalize this birth date: its delivery is dead-lettered naming the grant,
    edu still gets the event, and the events around it reach both."""
    monkeypatch.setattr(data_path, "CHECKPOINT_EVENTS", 1)
    rig = Rig([])
    odd = envelope("c", after=resident(birth_date="2015年3月2日"))
    batch = rig.events(0, range(0, 2)) + [FakeMessage(TOPIC, 0, 2, b"k", rig.encode(odd))]
    batch += rig.events(0, range(3, 4))
    rig.consumer._steps = [batch]
    rig.path.run(rig.stop)
    everyone = ids(rig, batch)
    assert rig.delivered("deliver.edu.resident_population") == everyone
    assert rig.delivered(MCA_TOPIC) == everyone[:2] + everyone[3:]
    (letter,) = [header_map(s["headers"]) for s in rig.producer.sent if s["topic"] == DLQ]
    assert letter["govbus.grant"] == MCA
    assert letter["govbus.reason"] == "masking_failed" and MCA in letter["govbus.detail"]
    assert letter["govbus.source.offset"] == "2"
    assert rig.consumer.commits == [{(TOPIC, 0): 4}]
    metrics = rig.path.forwarder.metrics.registry

    def sample(name, **labels):
        return metrics.get_sample_value(name, labels)

    assert sample("govbus_events_out_total", consumer="mca", resource=RESIDENTS) == 3
    assert sample("govbus_events_out_total", consumer="edu", resource=RESIDENTS) == 4
    assert sample("govbus_dead_letters_total", stage="router", reason="masking_failed") == 1
    # A failed delivery is a dead letter, not a row the filter held back.
    assert not sample("govbus_events_filtered_total", consumer="mca", resource=RESIDENTS)


def test_backfills_run_per_assigned_partition_and_move_with_the_partition():
    """Each router backfills the partitions it owns: a partition revoked stops its backfill here,
    one assigned later starts one from the group's committed offset, a done one is skipped."""
    backfills = RecordingBackfills(done={(MCA, (TOPIC, 2))})
    rig = Rig([], backfills=backfills)
    rig.consumer._assignment = [(TOPIC, 0), (TOPIC, 2)]
    rig.path._committed = lambda parts: dict.fromkeys(parts, 7)
    rig.consumer._steps = [
        rig.events(0, range(7, 10)),
        lambda c: c.revoke([(TOPIC, 0)]),
        lambda c: c.assign([(TOPIC, 1)]),
        rig.events(1, range(7, 9)),
    ]
    rig.path.run(rig.stop)
    started = [(b, seam) for b, seam in backfills.started if b == MCA]
    assert started == [(MCA, {(TOPIC, 0): 7}), (MCA, {(TOPIC, 1): 7})]
    assert backfills.handed_over[0] == (TOPIC, 0)
    assert backfills.caught_up == 2  # progress read again after each assignment
