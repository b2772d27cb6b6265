"""The contenders of the router bench, each measured the same way in a lane of its own.

A lane's topics are created first (outputs stamped with the broker's append time), its
process(es) started and waited for until their consumer group is stable, and only then are the
loaded events' bytes written to its source topic: start-up and group joins are never part of
a figure, and two routers in one group share the work from the first event. The rate is the
outputs' count over the span of their broker timestamps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from bench_bus import REPO, BenchBus, Lane, output_topic_spec, wait_for_group
from bench_io import Event, Outputs, fill, outputs

from services.common.kafka_clients import (
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    source_topic_spec,
)
from services.common.settings import Settings

ROUTER = [sys.executable, "-m", "services.cli", "router"]
FAUST_AGENT = [sys.executable, str(REPO / "benchmarks" / "faust_agent.py"), "worker"]
FAUST_AGENT += ["--loglevel", "warn"]
QUIX = [str(REPO / ".venv-quix" / "bin" / "python"), str(REPO / "benchmarks/quix/route_app.py")]
OUTPUT_TIMEOUT_S = 900


def log_path(bus: BenchBus, lane: Lane, i: int = 0) -> Path:
    return bus.work / f"{lane.name}-{i}.log"


def create_lane_topics(settings: Settings, lane: Lane) -> None:
    specs = [source_topic_spec(lane.source, settings)]
    specs += [output_topic_spec(t, settings) for t in lane.deliveries]
    ensure_topics(make_admin(settings), specs)


@contextmanager
def processes(
    bus: BenchBus, lane: Lane, command: list[str], count: int = 1
) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes of ``command`` in ``lane``, stopped (SIGTERM, then SIGKILL) after."""
    procs = []
    try:
        for i in range(count):
            with open(log_path(bus, lane, i), "wb") as out:
                procs.append(
                    subprocess.Popen(
                        command,
                        env=bus.env(lane),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        cwd=bus.work,  # Faust writes its data dir (<group>-data) here
                    )
                )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def check_alive(bus: BenchBus, lane: Lane, procs: list[subprocess.Popen]) -> None:
    for i, proc in enumerate(procs):
        if proc.poll() is not None:
            tail = log_path(bus, lane, i).read_text("utf-8", "replace")[-3000:]
            raise RuntimeError(f"{lane.name} process {i} exited {proc.returncode}:\n{tail}")


def start_lane(bus: BenchBus, lane: Lane, procs: list[subprocess.Popen]) -> Settings:
    """The lane's topics, and its processes joined in one stable group."""
    settings = bus.settings(lane)
    create_lane_topics(settings, lane)
    wait_for_group(settings, lane.group, len(procs), partial(check_alive, bus, lane, procs))
    return settings


def run_lane(
    bus: BenchBus, lane: Lane, command: list[str], events: list[Event], count: int = 1
) -> Outputs:
    """Throughput of ``count`` processes of ``command`` on the events, from the outputs."""
    with processes(bus, lane, command, count) as procs:
        settings = start_lane(bus, lane, procs)
        fill(settings, lane.source, events)
        expected = len(events) * lane.consumers
        alive = partial(check_alive, bus, lane, procs)
        return outputs(settings, lane.deliveries, expected, OUTPUT_TIMEOUT_S, alive)


def run_passthrough(bus: BenchBus, lane: Lane, events: list[Event]) -> Outputs:
    """consume -> produce the same bytes -> flush -> commit, the router's order, in one loop."""
    settings = bus.settings(lane)
    create_lane_topics(settings, lane)
    fill(settings, lane.source, events)
    consumer = make_consumer(settings, f"bench-pass-{uuid.uuid4()}")
    producer = make_producer(settings)
    consumer.subscribe([lane.source])
    (target,) = lane.deliveries
    done = 0
    while done < len(events):
        batch = consumer.consume(settings.batch_size, 1.0)
        for m in batch:
            if m.error():
                continue
            producer.produce(target, m.value(), m.key())
            done += 1
        if batch:
            producer.flush()
            consumer.commit(asynchronous=False)
    consumer.close()
    return outputs(settings, lane.deliveries, len(events), 60)
