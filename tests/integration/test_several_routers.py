"""Several routers in one group: one killed with -9 and one joining while a feed runs lose
nothing, duplicate only the killed router's unconfirmed window, and every delivery is on an
audit chain of its own router that ``govbus audit verify`` accepts. And verify names a forged
or replayed audit record."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from services.audit_verify import verify_bus
from services.common.audit import AuditChain, share_record
from services.common.kafka_clients import TopicSpec, ensure_topics, make_admin, make_producer
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.topic_reader import topic_names
from services.launcher import ProcessGroup
from services.progress import scrape_totals
from services.router.data_path import CHECKPOINT_EVENTS, committed_offsets
from tests.backfill_support import output_writer
from tests.integration.conftest import free_port, new_bus, wait_until
from tests.integration.flow import (
    Feeder,
    decode_all,
    demo_changes,
    expected,
    plans,
    publish,
    read_topics,
    verified_audit,
    wait_drained,
)
from tests.integration.seed import publish_file_feeds

EVENTS = 1500
SESSION_TIMEOUT_MS = 6000  # the broker's floor: a killed router's partitions move within it


class Routers:
    """Router processes of one bus, each with its own metrics port and log."""

    def __init__(self, bus, tmp_path) -> None:
        self._bus, self._tmp = bus, tmp_path
        self.groups: dict[str, tuple[ProcessGroup, int]] = {}

    def start(self, name: str) -> None:
        port = free_port()
        env = {**self._bus.processes.env, "GOVBUS_ROUTER_METRICS_PORT": str(port)}
        group = ProcessGroup(self._tmp / "logs" / name, env)
        group.start("router")
        self.groups[name] = (group, port)

        def up() -> bool:
            group.check_alive()
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200

        wait_until(up, 90, name)

    def delivered(self, name: str) -> float:
        _, port = self.groups[name]
        return scrape_totals(f"http://127.0.0.1:{port}/metrics").get("govbus_events_out_total", 0)

    def kill(self, name: str) -> None:
        self.groups.pop(name)[0].kill("router", signal.SIGKILL)

    def stop(self) -> None:
        for group, _ in self.groups.values():
            group.stop()


def _source_positions(s, tag: str) -> dict[str, tuple[str, int, int]]:
    """Event id -> (topic, partition, offset) of every change of this test's providers."""
    topics = [t for t in topic_names(s) if t.startswith("gov.") and f"_{tag}." in t]
    codec = AvroCodec(make_registry_client(s))
    return {
        codec.decode(m.value())["event_id"]: (m.topic(), m.partition(), m.offset())
        for m in read_topics(s, topics)
    }


@pytest.mark.timeout(900)  # three router start-ups and a session timeout on a shared machine
def test_a_router_killed_and_one_joining_mid_stream_lose_nothing(
    kafka_bootstrap, registry_url, tmp_path
):
    bus = new_bus(
        kafka_bootstrap,
        registry_url,
        tmp_path,
        router_session_timeout_ms=str(SESSION_TIMEOUT_MS),
    )
    s = bus.settings
    publish_file_feeds(s)
    routers = Routers(bus, tmp_path)
    try:
        changes = demo_changes(bus.tag, EVENTS, seed=41)
        published = publish(s, changes[:200])  # the source topics exist before the routers
        bus.start("sink")
        routers.start("a")
        routers.start("b")
        feeder = Feeder(s, changes[200:900], chunk=25, pause_s=0.05)
        feeder.start()
        wait_until(lambda: routers.delivered("a") > 150, 90, "router a delivering")
        routers.kill("a")
        source_partitions = [(t, p) for t, p, _ in set(_source_positions(s, bus.tag).values())]
        # Nobody commits a's partitions until the group gives them away (the session timeout).
        at_kill = committed_offsets(s, sorted(set(source_partitions)))
        routers.start("c")
        published += feeder.finish()
        # The feed goes on until the joining router has routed some of it: however slow its
        # start-up, it shares the partitions with b, so it writes a chain of its own.
        late = Feeder(s, changes[900:], chunk=5, pause_s=0.25)  # about 30 s
        late.start()
        wait_until(lambda: routers.delivered("c") > 0, 180, "router c delivering")
        published += late.finish(timeout_s=300)
        assert len(published) == EVENTS
        wait_drained(s, 240)

        positions = _source_positions(s, bus.tag)
        copies: Counter[str] = Counter()
        for topic, want in expected(s, published).items():
            got = Counter(v["event_id"] for _, v in decode_all(s, read_topics(s, [topic])))
            missing = want - set(got)
            assert not missing, f"{topic}: {len(missing)} of {len(want)} deliveries missing"
            copies.update({e: n - 1 for e, n in got.items() if n > 1})
        # Duplicates: only events the killed router routed past its last commit, at most one
        # flush window of them.
        print(f"\nduplicate deliveries: {sum(copies.values())} of {len(copies)} events")
        assert len(copies) <= CHECKPOINT_EVENTS
        for event_id in copies:
            topic, partition, offset = positions[event_id]
            assert offset >= at_kill[(topic, partition)], (event_id, topic, partition, offset)

        # Each router wrote a chain of its own; the trail verifies and covers every delivery.
        audit = verified_audit(s)
        chains = {r["chain"] for r in audit if r["consumer"].endswith(f"_{bus.tag}")}
        assert len(chains) >= 3, chains
        verify = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "audit",
                "verify",
                "--deliveries",
                rf"^deliver\.[a-z_]+_{bus.tag}\.",
            ],
            env=bus.processes.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(verify.stdout)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "0 not on an audit chain" in verify.stdout
    finally:
        routers.stop()
        bus.processes.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_verify_names_a_forged_and_a_replayed_audit_record(bus):
    s = bus.settings
    topic = f"test.audit.{bus.tag}"  # its own trail: the shared one stays intact
    ensure_topics(make_admin(s), [TopicSpec(topic, 1)])
    plan = plans(s)[0]
    honest, other = output_writer(s, topic), output_writer(s, topic)
    for i in range(3):
        honest.audit(plan, [(f"e{i}", {"id_number": str(i)})])
    other.audit(plan, [("f0", {"id_number": "f0"})])
    honest.flush(30)
    other.flush(30)
    assert verify_bus(s, r"^$", topic).ok

    # Whoever can write the topic, without the audit key: a record continuing the honest chain
    # sealed with a guessed key, and a valid record of the other chain sent again.
    records = [json.loads(m.value()) for m in read_topics(s, [topic])]
    last = next(r for r in records if r["chain"] == honest.chain_id and r["seq"] == 2)
    forger = AuditChain(b"guessed", honest.chain_id, 3, last["mac"])
    forged = forger.seal(share_record(plan.grant.id, "x", plan.grant.resource, [("e9", {})], 0))
    replayed = next(r for r in records if r["chain"] == other.chain_id)
    producer = make_producer(s)
    for record in (forged, replayed):
        producer.produce(topic, json.dumps(record).encode(), record["chain"].encode())
    assert producer.flush(30) == 0

    verdict = verify_bus(s, r"^$", topic)
    assert not verdict.ok
    named = {b.chain: b for b in verdict.chains.breaks}
    assert named[honest.chain_id].position == (topic, 0, 4) and "MAC" in named[honest.chain_id].why
    assert named[other.chain_id].position == (topic, 0, 5)
    assert "sequence 0 where 1" in named[other.chain_id].why
    assert (plan.grant.id, "e9") not in verdict.chains.covered
    summary = "\n".join(verdict.summary())
    assert f"BROKEN chain {honest.chain_id}: {topic}[0]@4" in summary
