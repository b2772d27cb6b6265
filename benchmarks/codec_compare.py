"""Avro codecs side by side on the bus's own schemas and demo data: µs per record.

    python benchmarks/codec_compare.py [--events 3000] [--rounds 5]

Records: the demo feed's change envelopes of all three resources (what the router decodes) and
their deliveries under the demo grants (what it encodes: key and value). Each variant encodes or
decodes the same records in the same process, alternating rounds, best round kept, so ratios
hold under a loaded machine. Variants:

  fastavro               schemaless_reader/writer on pre-parsed schemas (the writer's schema only)
  fastavro+reader        decode resolved to a reader schema that differs (an added field)
  fastavro+hints         encode with the union branch named up front ((name, record) tuples)
  cavro                  as services/common/serde.py uses it: records as dicts, decode checked
                         for trailing bytes (the header is added to the body, as on the wire)
  cavro+reader           decode through reader_for_writer (the same evolved reader schema)

Every variant's bytes are checked equal to fastavro's, and its decoded records equal to
fastavro's; a mismatch is printed in the table. Writes benchmarks/results/codec.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from services.common.config_files import load_catalog, load_grants
from services.common.plan import compile_plan, plan_delivery
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.serde import HEADER, parse, read_body
from services.common.settings import REPO_ROOT
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import to_change
from services.ingest.publisher import make_envelope

SCHEMAS = REPO_ROOT / "schemas" / "avro"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "codec.json"
SECRET = b"codec-compare-master-secret"
HEADER_BYTES = HEADER.pack(0, 1)


def fastavro_encode(schema: dict[str, Any]) -> Callable[[Any], bytes]:
    parsed = parse_schema(schema)

    def encode(record: Any) -> bytes:
        out = io.BytesIO()
        schemaless_writer(out, parsed, record)
        return out.getvalue()

    return encode


def fastavro_decode(schema: dict[str, Any], reader: dict[str, Any] | None = None):
    parsed = parse_schema(schema)
    resolved = parse_schema(reader) if reader is not None else None
    return lambda data: schemaless_reader(io.BytesIO(data), parsed, resolved)


def cavro_encode(schema: dict[str, Any]) -> Callable[[Any], bytes]:
    return parse(schema).binary_encode


def cavro_decode(schema: dict[str, Any], reader: dict[str, Any] | None = None):
    """As AvroCodec reads: the body after the header, trailing bytes checked."""
    writer = parse(schema)
    found = writer if reader is None else parse(reader).reader_for_writer(writer)
    return lambda data: read_body(found, HEADER_BYTES + data)


def evolved(schema: dict[str, Any]) -> dict[str, Any]:
    """The envelope with a field added (with a default) to the record: a reader that differs."""
    out = json.loads(json.dumps(schema))
    record = next(f for f in out["fields"] if f["name"] == "before")["type"][1]
    record["fields"].append({"name": "remark", "type": ["null", "string"], "default": None})
    return out


class Corpus:
    """Per schema: the records and the schema, for envelopes, delivery keys and values."""

    def __init__(self, n: int) -> None:
        source = source_schema(SCHEMAS)
        catalog = load_catalog(REPO_ROOT / "deploy" / "catalog", SCHEMAS)
        self.envelopes: dict[str, tuple[dict, list[dict]]] = {}
        for entry in catalog.values():
            schema = envelope_schema(value_schema(entry, SCHEMAS), source)
            self.envelopes[entry.resource_id] = (schema, [])
        for i, demo in enumerate(DemoFeed(seed=3).changes(n)):
            change = to_change(demo)
            entry = catalog[change.resource]
            envelope = make_envelope(change, entry, 1_764_000_000_000, f"e{i}")
            self.envelopes[change.resource][1].append(envelope)
        self.keys: dict[str, tuple[dict, list]] = {}
        self.values: dict[str, tuple[dict, list]] = {}
        self.hinted: dict[str, tuple[dict, list]] = {}
        for grant in load_grants(REPO_ROOT / "deploy" / "grants", catalog):
            entry = catalog[grant.resource]
            plan = compile_plan(grant, entry, value_schema(entry, SCHEMAS), SECRET)
            keys, values, hinted = [], [], []
            record_type = plan.value_schema["fields"][-1]["type"][1]
            name = f"{record_type['namespace']}.{record_type['name']}"
            for event in self.envelopes[grant.resource][1]:
                delivery = plan_delivery(plan, event)
                if delivery is not None:
                    keys.append(delivery.key)
                    values.append(delivery.value)
                    hinted.append({**delivery.value, "record": (name, delivery.value["record"])})
            self.keys[grant.id] = (plan.key_schema, keys)
            self.values[grant.id] = (plan.value_schema, values)
            self.hinted[grant.id] = (plan.value_schema, hinted)

    @staticmethod
    def count(groups: dict[str, tuple[dict, list]]) -> int:
        return sum(len(records) for _, records in groups.values())


def timed(work: list[tuple[Callable[[Any], Any], list]]) -> float:
    """CPU seconds to apply each function to each of its items (process time: a loaded
    machine stretches wall time, not this)."""
    t0 = time.process_time()
    for call, items in work:
        for item in items:
            call(item)
    return time.process_time() - t0


def measure(n: int, rounds: int) -> dict[str, Any]:
    corpus = Corpus(n)
    envelopes = corpus.envelopes
    wire = {
        rid: (schema, [fastavro_encode(schema)(e) for e in records])
        for rid, (schema, records) in envelopes.items()
    }
    evolved_of = {rid: evolved(schema) for rid, (schema, _) in envelopes.items()}
    reference_decoded = {
        rid: [fastavro_decode(schema)(b) for b in data] for rid, (schema, data) in wire.items()
    }

    def decoder(make: Callable, with_reader: bool):
        coders = [
            (make(schema, evolved_of[rid] if with_reader else None), rid, data)
            for rid, (schema, data) in wire.items()
        ]

        def run() -> float:
            return timed([(decode, data) for decode, _, data in coders])

        def check() -> str:
            for decode, rid, data in coders:
                for b, expected in zip(data, reference_decoded[rid], strict=True):
                    got = decode(b)
                    if with_reader:
                        for side in ("before", "after"):
                            if got[side] is not None:
                                got[side] = {k: v for k, v in got[side].items() if k != "remark"}
                    if got != expected:
                        return "records differ"
            return "equal"

        return run, check

    def encoder(make: Callable, groups_list: list[dict]):
        coders = [
            (make(schema), records, reference)
            for groups, reference_groups in groups_list
            for (schema, records), (_, reference) in zip(
                groups.values(), reference_groups.values(), strict=True
            )
        ]

        def run() -> float:
            return timed([(encode, records) for encode, records, _ in coders])

        def check() -> str:
            for encode, records, reference in coders:
                expected = fastavro_encode_all(reference)
                if [encode(r) for r in records] != expected:
                    return "bytes differ"
            return "equal"

        return run, check

    ref_cache: dict[int, list[bytes]] = {}
    schema_of: dict[int, dict] = {}
    for groups in (envelopes, corpus.keys, corpus.values):
        for schema, records in groups.values():
            schema_of[id(records)] = schema

    def fastavro_encode_all(records: list) -> list[bytes]:
        if id(records) not in ref_cache:
            encode = fastavro_encode(schema_of[id(records)])
            ref_cache[id(records)] = [encode(r) for r in records]
        return ref_cache[id(records)]

    plain = [(envelopes, envelopes)]
    deliveries = [(corpus.keys, corpus.keys), (corpus.values, corpus.values)]
    hinted = [(corpus.keys, corpus.keys), (corpus.hinted, corpus.values)]
    variants: list[tuple[str, str, int, tuple]] = [
        ("decode envelope", "fastavro", n, decoder(fastavro_decode, False)),
        ("decode envelope", "fastavro+reader", n, decoder(fastavro_decode, True)),
        ("decode envelope", "cavro", n, decoder(cavro_decode, False)),
        ("decode envelope", "cavro+reader", n, decoder(cavro_decode, True)),
        ("encode envelope", "fastavro", n, encoder(fastavro_encode, plain)),
        ("encode envelope", "cavro", n, encoder(cavro_encode, plain)),
        (
            "encode delivery",
            "fastavro",
            corpus.count(corpus.values),
            encoder(fastavro_encode, deliveries),
        ),
        (
            "encode delivery",
            "fastavro+hints",
            corpus.count(corpus.values),
            encoder(fastavro_encode, hinted),
        ),
        (
            "encode delivery",
            "cavro",
            corpus.count(corpus.values),
            encoder(cavro_encode, deliveries),
        ),
    ]
    best = [float("inf")] * len(variants)
    for _ in range(rounds):  # alternate: a load change on the machine hits every variant
        for i, (_, _, _, (run, _)) in enumerate(variants):
            best[i] = min(best[i], run())
    rows = []
    for (op, name, count, (_, check)), seconds in zip(variants, best, strict=True):
        rows.append(
            {
                "op": op,
                "codec": name,
                "us_per_record": round(seconds / count * 1e6, 2),
                "output": check(),
            }
        )
    return {"records": n, "deliveries": corpus.count(corpus.values), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.events, args.rounds)
    result |= {
        "python": platform.python_version(),
        "fastavro": version("fastavro"),
        "cavro": version("cavro"),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    print(f"{'operation':<16} {'codec':<16} {'µs/record':>10}  output vs fastavro")
    for row in result["rows"]:
        print(f"{row['op']:<16} {row['codec']:<16} {row['us_per_record']:>10.2f}  {row['output']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
