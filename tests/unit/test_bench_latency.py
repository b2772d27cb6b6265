"""The bench's latency probe: a replayed event's send time survives the router into its delivery.

benchmarks/paced.py rewrites each replayed event's id to start with its send time and reads it
back from the delivery's bytes at a fixed offset; these tests hold that offset to the real
router's output (plan.py's delivery schema), for every op.
"""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from services.common.catalog_feed import CatalogRecord
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.settings import REPO_ROOT
from services.common.topics import value_subject
from services.router.routing import Output, RawMessage, Router
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, codec, envelope, grant, resident

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # the benchmarks are scripts, not a package
from bench_io import templates  # noqa: E402
from paced import event_id, sent_ms_of  # noqa: E402

TODAY = dt.date(2026, 11, 26)
SENT_MS = 1_764_000_123_456


@pytest.fixture
def routed():
    c = codec()
    entry = catalog()[RESIDENTS]
    schema = value_schema(entry, SCHEMAS)
    router = Router(c, b"unit-test-master-secret", source_schema(SCHEMAS))
    router.set_resource(CatalogRecord(resource=entry, value_schema=schema, schema_version=1))
    router.add_grant(grant("mca-resident-population", row_filter=None))
    encode = c.encoder(value_subject(entry.topic), envelope_schema(schema, source_schema(SCHEMAS)))

    def route(event: dict) -> tuple[str, bytes]:
        (t,) = templates(c, [(b"k", encode(event))])
        new_id = event_id(SENT_MS, 42)
        (out,) = router.route(RawMessage(entry.topic, 0, 0, b"k", t.with_id(new_id)), TODAY)
        assert isinstance(out, Output)
        return new_id.decode(), out

    return route


@pytest.mark.parametrize(
    "event",
    [
        envelope("c", after=resident()),
        envelope("u", before=resident(), after=resident(name="王建军")),
        envelope("d", before=resident()),
    ],
    ids=["create", "update", "delete"],
)
def test_send_time_read_back_from_the_routed_delivery(routed, event):
    new_id, out = routed(event)
    assert out.event_id == new_id  # the router read the rewritten id
    assert sent_ms_of(out.value) == SENT_MS


def test_an_unpaced_delivery_is_refused(routed):
    _, out = routed(envelope("c", after=resident()))
    other = out.value[:7] + bytes([out.value[7] - 2]) + out.value[8:]  # a shorter event id
    with pytest.raises(ValueError, match="not a delivery of a paced event"):
        sent_ms_of(other)
