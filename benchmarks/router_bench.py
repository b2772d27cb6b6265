"""The router benchmark: every contender in one run on one broker, printed as a table.

    make bench              # the full bench, with the 10-minute soak at half load
    make bench QUICK=1      # the soak shortened to 30 s
    python benchmarks/router_bench.py --events 100000 [--quick] [--soak-s 600]

Loads N realistic resident-population change events once (bench_io.load_events), then replays
their bytes to each contender, in this order, each in a lane of its own (contenders.py):
  passthrough   confluent-kafka: consume, produce the same bytes, flush, commit
  router        the govbus router process, 1 grant per event
  fanout4       the router process, 4 grants per event (output events/s)
  router_2proc  2 router processes in one consumer group, 1 grant per event
  faust_agent   the router's routing code driven by a Faust agent stream (faust_agent.py)
  quix          the same grant logic as a Quix Streams app (quix/route_app.py, .venv-quix)
then runs the router at half the measured router rate (paced.py): end-to-end latency p50/p99
and the router's RSS at the start and end of the run. Merges its figures into
benchmarks/results/latest.json (the other benches' keys stay).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import uuid
from functools import partial
from pathlib import Path

from bench_bus import REPO, RESOURCE, BenchBus, Lane
from bench_io import Outputs, load_events, templates
from contenders import (
    FAUST_AGENT,
    QUIX,
    ROUTER,
    check_alive,
    processes,
    run_lane,
    run_passthrough,
    start_lane,
)
from paced import latencies, replay
from results_file import RESULTS, merge_results

from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec

FULL_SOAK_S = 600
QUICK_SOAK_S = 30


def lanes_of(tag: str) -> dict[str, Lane]:
    return {
        "source": Lane("src", tag, consumers=0),
        "passthrough": Lane("pass", tag),
        "router": Lane("r1", tag),
        "fanout4": Lane("r4", tag, consumers=4),
        "router_2proc": Lane("r2p", tag),
        "faust_agent": Lane("faust", tag),
        "quix": Lane("quix", tag),
        "paced": Lane("paced", tag),
    }


def throughput(bus: BenchBus, lanes: dict[str, Lane], events) -> dict[str, Outputs]:
    runs = {"passthrough": lambda: run_passthrough(bus, lanes["passthrough"], events)}
    runs["router"] = lambda: run_lane(bus, lanes["router"], ROUTER, events)
    runs["fanout4"] = lambda: run_lane(bus, lanes["fanout4"], ROUTER, events)
    runs["router_2proc"] = lambda: run_lane(bus, lanes["router_2proc"], ROUTER, events, count=2)
    runs["faust_agent"] = lambda: run_lane(bus, lanes["faust_agent"], FAUST_AGENT, events)
    runs["quix"] = lambda: run_lane(bus, lanes["quix"], QUIX, events)
    found = {}
    for name, run in runs.items():
        print(f"{name} ...", flush=True)
        found[name] = run()
        print(f"  {found[name].per_s:,.0f} events/s", flush=True)
    return found


def soak(bus: BenchBus, lane: Lane, events, rate: float, seconds: float) -> dict:
    print(f"router at {rate:,.0f} events/s for {seconds:.0f} s ...", flush=True)
    with processes(bus, lane, ROUTER) as procs:
        settings = start_lane(bus, lane, procs)
        source = templates(AvroCodec(make_registry_client(settings)), events)
        run = replay(settings, lane.source, source, rate, seconds, procs[0].pid)
        alive = partial(check_alive, bus, lane, procs)
        histogram = latencies(settings, lane.deliveries, run.sent, alive)
    return {
        "latency_rate_events_per_s": round(rate),
        "latency_events": run.sent,
        "latency_p50_ms": histogram.get_value_at_percentile(50),
        "latency_p99_ms": histogram.get_value_at_percentile(99),
        "latency_max_ms": histogram.get_max_value(),
        "soak_s": seconds,
        "rss_start_mb": round(run.rss_mb[0][1], 1),
        "rss_end_mb": round(run.rss_mb[-1][1], 1),
        "rss_samples_mb": [(t, round(mb, 1)) for t, mb in run.rss_mb],
    }


def summary(found: dict[str, Outputs], paced: dict, n: int) -> dict:
    rate = {name: round(o.per_s) for name, o in found.items()}
    return {
        "passthrough_events_per_s": rate["passthrough"],
        "router_events_per_s": rate["router"],
        "ratio": round(rate["router"] / rate["passthrough"], 3),
        "fanout4_output_events_per_s": rate["fanout4"],
        "router_2proc_events_per_s": rate["router_2proc"],
        "faust_agent_events_per_s": rate["faust_agent"],
        "quix_events_per_s": rate["quix"],
        **paced,
        "events": n,
        "router_vs_quix": round(rate["router"] / rate["quix"], 2),
        "fanout4_vs_router": round(rate["fanout4"] / rate["router"], 2),
        "load_average_end": [round(x, 1) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def print_table(r: dict) -> None:
    pt = r["passthrough_events_per_s"]
    rows = [
        ("pass-through (confluent-kafka)", r["passthrough_events_per_s"]),
        ("router, 1 grant per event", r["router_events_per_s"]),
        ("router, 4 grants per event (outputs/s)", r["fanout4_output_events_per_s"]),
        ("2 router processes, one group", r["router_2proc_events_per_s"]),
        ("Faust agent, same routing code", r["faust_agent_events_per_s"]),
        ("Quix Streams, same grant logic", r["quix_events_per_s"]),
    ]
    print(f"\n| {'contender':<40} | {'events/s':>9} | {'ratio to pass-through':>21} |")
    print(f"| {'-' * 40} | {'-' * 8}: | {'-' * 20}: |")
    for name, rate in rows:
        print(f"| {name:<40} | {rate:>9,} | {rate / pt:>21.3f} |")
    print(
        f"\nlatency at {r['latency_rate_events_per_s']:,} events/s (half the router's): "
        f"p50 {r['latency_p50_ms']} ms, p99 {r['latency_p99_ms']} ms, "
        f"max {r['latency_max_ms']} ms over {r['latency_events']:,} events"
    )
    print(
        f"router RSS over {r['soak_s']:.0f} s at that rate: "
        f"{r['rss_start_mb']} MB at start, {r['rss_end_mb']} MB at end"
    )
    print(f"load average at the end {r['load_average_end']} on {r['cpus']} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help=f"soak {QUICK_SOAK_S} s, not 600")
    parser.add_argument("--soak-s", type=float, help="length of the half-load run")
    args = parser.parse_args()
    if not Path(QUIX[0]).exists():
        raise SystemExit("no .venv-quix: run `make quix-venv` (make bench does)")
    soak_s = args.soak_s or (QUICK_SOAK_S if args.quick else FULL_SOAK_S)
    tag = uuid.uuid4().hex[:6]
    lanes = lanes_of(tag)
    work = Path(tempfile.mkdtemp(prefix="govbus-bench-"))
    bootstrap = os.environ.get("GOVBUS_KAFKA_BOOTSTRAP", "localhost:9092")
    bus = BenchBus(tag, work, bootstrap, list(lanes.values()))
    try:
        settings = bus.start()
        source = lanes["source"]
        print(f"loading {args.events:,} resident-population change events ...", flush=True)
        events = load_events(settings, f"{source.provider}.{RESOURCE}", source.source, args.events)
        found = throughput(bus, lanes, events)
        paced = soak(bus, lanes["paced"], events, found["router"].per_s / 2, soak_s)
        result = summary(found, paced, len(events))
        merge_results(result)
        print_table(result)
        print(f"written to {RESULTS.relative_to(REPO)}")
    finally:
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
