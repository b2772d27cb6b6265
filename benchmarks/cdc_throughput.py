"""CDC throughput and latency: PostgreSQL commit -> Debezium -> bridge -> gov.* -> router.

    make bench-cdc              # a burst of 20,000 rows, then 60 s of steady writes
    make bench-cdc QUICK=1      # 5,000 rows and 15 s
    python benchmarks/cdc_throughput.py [--burst 20000] [--rate R] [--tx-rows 5]
        [--warm-s 10] [--steady-s 60] [--profile DIR]

Runs on the broker, provider PostgreSQL and Connect worker that ``deploy/with-broker.sh`` and
``deploy/with-cdc.sh`` start (``make bench-cdc``), with one Debezium adapter and one router
with one active grant of its own (``cdc_pipeline.py``). Phases:
  ready    one transaction through the whole path (connector, slot, router subscribed),
           then a quarter of --burst rows at full speed, not counted (a warm JIT and caches)
  burst    the connector paused, --burst rows committed as fast as PostgreSQL takes them
           (transactions of 100 rows), then resumed: how fast each stage works the backlog off
  warm-up  --warm-s seconds at the steady rate, worked off before the steady phase, not counted
  steady   the paced writer: --rate rows/s (default: half the burst's end-to-end rate) of
           inserts and updates in transactions of --tx-rows rows, for --steady-s seconds
A change's latency runs from its commit time to the broker's append time of its record on
each topic (raw Debezium topic, gov.*, deliver.*), all on the machine's one clock. The commit
time is Debezium's ``source.ts_ms``: PostgreSQL's commit timestamp from the logical decoding
stream. It reaches the gov.* event (``source.ts_ms``) and needs no column in the provider's
table, and unlike a clock column written by the writer it is the commit, not the statement;
the bench checks it against when each COMMIT returned to the writer. The bridge's share is
the sum of its spans (raw topic -> gov.*) over the sum of the end-to-end spans.
Figures go under "cdc" in benchmarks/results/latest.json (other keys kept); with --profile,
py-spy samples the adapter and the router through the steady phase (then nothing is written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench_bus import REPO, BenchBus, Lane
from cdc_pipeline import CdcPipeline, Stamps, cdc_pipeline, lane_record
from cdc_source import Changes, Connector, Statement, write
from cdc_timing import Timeline, commit_check, join, latency_figures, rate
from results_file import RESULTS, merge_results

from services.common.settings import Settings
from services.common.topic_reader import Offsets

READY_TIMEOUT_S = 300
BURST_TX_ROWS = 100
ROWS = (
    ("Debezium: commit -> raw change topic", "debezium", "raw"),
    ("bridge: raw topic -> gov.*", "bridge", "gov"),
    ("router: gov.* -> deliver.*", "router", "delivered"),
    ("commit -> gov.* (CDC alone)", "to_gov", "gov"),
    ("commit -> deliver.* (end to end)", "end_to_end", "delivered"),
)


def timelines(cdc: CdcPipeline, start: Offsets, n: int) -> tuple[Stamps, list[Timeline]]:
    """Once ``n`` changes since ``start`` are delivered: the three topics' records since."""
    cdc.wait_delivered(start, n)
    stamps = cdc.stamps(start, cdc.offsets())
    return stamps, join(stamps.raw, stamps.gov, stamps.delivered)


def profile(cdc: CdcPipeline, seconds: float, out: Path) -> list[subprocess.Popen]:
    """py-spy on the adapter and the router for ``seconds``: collapsed stacks, one file each
    (``--nonblocking``: the sampled process is never paused)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50", "-f", "raw"]
            + ["-o", str(out / f"{name}.txt"), "--nonblocking"],
            stdout=subprocess.DEVNULL,
        )
        for name, pid in cdc.pids.items()
    ]


def ready(cdc: CdcPipeline, changes: Changes, tx_rows: int, prime: int) -> None:
    """One transaction through the whole path (the connector has its slot, the router its
    subscription), then ``prime`` rows at full speed, not counted: the JVM's JIT and every
    process's caches are warm before the burst."""
    t0 = time.monotonic()
    start = cdc.offsets()
    write(cdc.provider_url, changes.take(tx_rows), tx_rows)
    cdc.wait_delivered(start, tx_rows, READY_TIMEOUT_S)
    print(f"  first change delivered after {time.monotonic() - t0:.1f} s", flush=True)
    start = cdc.offsets()
    write(cdc.provider_url, changes.take(prime), BURST_TX_ROWS)
    cdc.wait_delivered(start, prime)


def steady(cdc: CdcPipeline, changes: Changes, args) -> dict:
    warm = changes.take(int(args.rate * args.warm_s))
    measured = changes.take(int(args.rate * args.steady_s))
    print(f"warm-up {args.warm_s:.0f} s, then {args.steady_s:.0f} s at {args.rate:,.0f} rows/s")
    start = cdc.offsets()
    write(cdc.provider_url, warm, args.tx_rows, args.rate)
    # The measured changes start on an empty pipeline: the warm-up's are all worked off.
    cdc.wait_delivered(start, len(warm))
    start = cdc.offsets()
    spies = profile(cdc, args.steady_s, args.profile) if args.profile else []
    written = write(cdc.provider_url, measured, args.tx_rows, args.rate)
    for spy in spies:
        spy.wait(60)
    stamps, found = timelines(cdc, start, len(measured))
    found = [t for t in found if t.tx in written.commits]
    return {
        "rate_rows_per_s": args.rate,
        "tx_rows": args.tx_rows,
        "steady_s": args.steady_s,
        "written_rows": written.rows,
        "written_rows_per_s": round(written.per_s, 1),
        "followed_rows": len(found),
        "raw_rows_per_s": rate(t.raw for t in found),
        "gov_rows_per_s": rate(t.gov for t in found),
        "delivered_rows_per_s": rate(t.delivered for t in found),
        **latency_figures(found),
        **commit_check(written.commits, stamps.raw_commits),
    }


def burst(cdc: CdcPipeline, statements: list[Statement]) -> dict:
    """The connector paused while ``statements`` are committed, then resumed: how fast each
    stage works the backlog off."""
    connector = Connector(cdc.settings.connect_url, cdc.connector)
    try:
        start = cdc.offsets()
        connector.set_state("pause", "PAUSED")
        write(cdc.provider_url, statements, BURST_TX_ROWS)
        released = int(time.time() * 1000)
        connector.set_state("resume", "RUNNING")
    finally:
        connector.close()
    _, found = timelines(cdc, start, len(statements))
    return {
        "burst_rows": len(statements),
        "burst_followed_rows": len(found),
        # From the release of the backlog to the last record on each topic.
        "burst_raw_rows_per_s": rate((t.raw for t in found), released),
        "burst_gov_rows_per_s": rate((t.gov for t in found), released),
        "burst_delivered_rows_per_s": rate((t.delivered for t in found), released),
    }


def print_table(r: dict) -> None:
    print(
        f"\nCDC at {r['rate_rows_per_s']:,.0f} rows/s in transactions of {r['tx_rows']} rows "
        f"for {r['steady_s']:.0f} s: {r['followed_rows']:,} of {r['written_rows']:,} "
        f"changes followed to deliver.* (writer: {r['written_rows_per_s']:,.0f} rows/s)"
    )
    print(f"\n| {'stage':<36} | {'rows/s':>7} | {'p50 ms':>6} | {'p99 ms':>6} | {'max ms':>6} |")
    print(f"| {'-' * 36} | {'-' * 6}: | {'-' * 5}: | {'-' * 5}: | {'-' * 5}: |")
    for label, stage, topic in ROWS:
        print(
            f"| {label:<36} | {r[f'{topic}_rows_per_s']:>7,.0f} | {r[f'{stage}_p50_ms']:>6} "
            f"| {r[f'{stage}_p99_ms']:>6} | {r[f'{stage}_max_ms']:>6} |"
        )
    print(
        f"\nthe bridge's share of the end-to-end time: {r['bridge_share']:.0%} "
        f"(aim: under 30 %); p50 {r['bridge_p50_ms']} of {r['end_to_end_p50_ms']} ms"
    )
    print(
        f"burst of {r['burst_rows']:,} rows released at once, rows/s until the last record: "
        f"raw topic {r['burst_raw_rows_per_s']:,.0f}, gov.* {r['burst_gov_rows_per_s']:,.0f}, "
        f"deliver.* {r['burst_delivered_rows_per_s']:,.0f}"
    )
    if r.get("transactions"):
        print(
            f"COMMIT returned minus source.ts_ms over {r['transactions']:,} transactions: "
            f"p50 {r['commit_returned_minus_ts_ms_p50']} ms, "
            f"min {r['commit_returned_minus_ts_ms_min']}, "
            f"max {r['commit_returned_minus_ts_ms_max']}"
        )
    print(
        f"load average {r['load_average_start']} at the start, {r['load_average_end']} "
        f"at the end, on {r['cpus']} CPUs"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 s steady, a 5,000-row burst")
    parser.add_argument("--rate", type=float, help="steady rows/s (default: half the burst's)")
    parser.add_argument("--tx-rows", type=int, default=5, help="rows per transaction")
    parser.add_argument("--warm-s", type=float)
    parser.add_argument("--steady-s", type=float)
    parser.add_argument("--burst", type=int)
    parser.add_argument("--profile", type=Path, help="py-spy the steady phase into this dir")
    args = parser.parse_args()
    args.warm_s = args.warm_s or (5 if args.quick else 10)
    args.steady_s = args.steady_s or (15 if args.quick else 60)
    args.burst = args.burst or (5_000 if args.quick else 20_000)
    return args


def main() -> None:
    args = parse_args()
    env = Settings()  # what the wrappers started: broker, Connect, provider PostgreSQL
    if not env.provider_db_url:
        raise SystemExit("GOVBUS_PROVIDER_DB_URL is not set: run `make bench-cdc`")
    tag = uuid.uuid4().hex[:6]
    lane = Lane("cdc", tag)
    work = Path(tempfile.mkdtemp(prefix="govbus-bench-cdc-"))
    bus = BenchBus(tag, work, env.kafka_bootstrap, [lane])
    load_start = [round(x, 1) for x in os.getloadavg()]
    try:
        bus.start()
        bus.values.update(
            adapters_dir=str(work / "adapters"),
            connect_host=env.connect_host,
            connect_port=str(env.connect_port),
        )
        changes = Changes(lane_record(bus, lane))
        with cdc_pipeline(bus, lane, env.provider_db_url) as cdc:
            ready(cdc, changes, args.tx_rows, args.burst // 4)
            print(f"burst of {args.burst:,} rows ...", flush=True)
            result = burst(cdc, changes.take(args.burst))
            # Steady load at half the rate the whole path worked the backlog off at.
            args.rate = args.rate or round(result["burst_delivered_rows_per_s"] / 2, -1)
            result.update(steady(cdc, changes, args))
        result.update(
            load_average_start=load_start,
            load_average_end=[round(x, 1) for x in os.getloadavg()],
            cpus=os.cpu_count(),
            measured_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        print_table(result)
        if args.profile:
            print(f"profiled run, not recorded; py-spy samples in {args.profile}")
        else:
            merge_results({"cdc": result})
            print(f"merged under 'cdc' into {RESULTS.relative_to(REPO)}")
    finally:
        bus.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
