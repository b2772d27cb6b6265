"""The wire codec (cavro) against the reference codec (fastavro) on the demo data."""

from __future__ import annotations

import io
import json

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from services.common.plan import compile_plan, plan_delivery
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.serde import HEADER, DecodeError, EncodeError, ReaderSchema
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import to_change
from services.ingest.publisher import make_envelope
from tests.unit.fixtures import SCHEMAS, catalog, codec, grants, resident

SECRET = b"unit-test-master-secret"


def _fastavro(schema, record) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema), record)
    return out.getvalue()


def _demo_envelopes(n: int):
    entries = catalog()
    for i, demo in enumerate(DemoFeed(seed=11, invalid_rate=0.05).changes(n)):
        change = to_change(demo)
        entry = entries[change.resource]
        yield entry, make_envelope(change, entry, 1_764_000_000_000, f"e{i}")


def test_bytes_equal_fastavro_on_demo_envelopes_and_deliveries():
    c = codec()
    source = source_schema(SCHEMAS)
    schemas = {
        e.resource_id: envelope_schema(value_schema(e, SCHEMAS), source) for e in catalog().values()
    }
    encoders = {rid: c.encoder(f"gov.{rid}-value", schema) for rid, schema in schemas.items()}
    plans = [
        compile_plan(g, catalog()[g.resource], value_schema(catalog()[g.resource], SCHEMAS), SECRET)
        for g in grants()
    ]
    plan_encoders = {
        p.grant.id: (
            c.encoder(f"{p.topic}-key", p.key_schema),
            c.encoder(f"{p.topic}-value", p.value_schema),
        )
        for p in plans
    }
    envelopes = deliveries = 0
    for entry, event in _demo_envelopes(2000):
        schema = schemas[entry.resource_id]
        data = encoders[entry.resource_id](event)
        assert data[HEADER.size :] == _fastavro(schema, event)
        assert c.decode(data) == schemaless_reader(
            io.BytesIO(data[HEADER.size :]), parse_schema(schema)
        )
        envelopes += 1
        for plan in plans:
            if plan.grant.resource != entry.resource_id:
                continue
            delivery = plan_delivery(plan, event)
            if delivery is None:
                continue
            encode_key, encode_value = plan_encoders[plan.grant.id]
            assert encode_key(delivery.key)[HEADER.size :] == _fastavro(
                plan.key_schema, delivery.key
            )
            assert encode_value(delivery.value)[HEADER.size :] == _fastavro(
                plan.value_schema, delivery.value
            )
            deliveries += 1
    assert envelopes == 2000 and deliveries > 1000


def _resident_schema():
    entry = catalog()["psb.resident_population"]
    return envelope_schema(value_schema(entry, SCHEMAS), source_schema(SCHEMAS))


def _event():
    return {
        "before": None,
        "after": resident(),
        "op": "c",
        "ts_ms": 1,
        "source": {
            "provider": "psb",
            "resource": "resident_population",
            "system": "hukou",
            "position": "1",
            "snapshot": False,
            "ts_ms": 1,
        },
        "event_id": "e1",
    }


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b + b"\x00", "malformed_avro"),  # trailing bytes
        (lambda b: b[:-3], "malformed_avro"),  # cut short
        (lambda b: b[:2], "not_avro"),
        (lambda b: b"\x01" + b[1:], "not_avro"),
        (lambda b: b[:1] + (999).to_bytes(4, "big") + b[5:], "unknown_schema_id"),
    ],
)
def test_bad_bytes_are_decode_errors_with_their_reason(mangle, reason):
    c = codec()
    data = c.encoder("gov.psb.resident_population-value", _resident_schema())(_event())
    with pytest.raises(DecodeError) as caught:
        c.decode(mangle(data))
    assert caught.value.reason == reason


def test_reader_schema_resolves_only_a_differing_writer():
    c = codec()
    old = _resident_schema()
    data = c.encoder("gov.psb.resident_population-value", old)(_event())
    new = json.loads(json.dumps(old))
    new["fields"][0]["type"][1]["fields"].append(
        {"name": "remark", "type": ["null", "string"], "default": None}
    )
    assert c.decode(data, ReaderSchema(new))["after"]["remark"] is None
    assert "remark" not in c.decode(data, ReaderSchema(old))["after"]
    narrowed = json.loads(json.dumps(old))
    narrowed["fields"][0]["type"][1]["fields"][-1]["type"] = "int"  # updated_at: long -> int
    with pytest.raises(DecodeError) as caught:
        c.decode(data, ReaderSchema(narrowed))
    assert caught.value.reason == "schema_resolution"


def test_a_record_that_does_not_fit_is_an_encode_error():
    encode = codec().encoder("gov.psb.resident_population-value", _resident_schema())
    with pytest.raises(EncodeError):
        encode({**_event(), "ts_ms": "soon"})
    with pytest.raises(EncodeError):
        encode({**_event(), "ts_ms": 1.5})  # fastavro would truncate it silently
