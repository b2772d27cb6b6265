"""The scorecard's facts from a real broker: changes offered per resource (its source topic's
end offsets plus ingest rejects) and dead letters per resource, read on incrementally."""

from __future__ import annotations

import pytest

from services.catalog.scorecard import FlowFacts
from services.catalog.scorecard_sources import DeadLetterTally, flow_facts
from services.common.catalog_feed import CatalogRecord
from services.common.config_files import load_catalog
from services.common.dead_letter import DeadLetter, produce_dead_letter
from services.common.kafka_clients import (
    bus_topic_specs,
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.schemas import value_schema

pytestmark = pytest.mark.integration


def test_offered_changes_and_dead_letters_per_resource(bus):
    settings = bus.settings
    entries = load_catalog(settings.catalog_dir, settings.schemas_dir)
    water = entries[f"water_{bus.tag}.water_payment"]
    schema = value_schema(water, settings.schemas_dir)
    record = CatalogRecord(resource=water, value_schema=schema, schema_version=1)
    ensure_topics(
        make_admin(settings), [*bus_topic_specs(settings), source_topic_spec(water.topic, settings)]
    )
    producer = make_producer(settings)
    for i in range(3):
        producer.produce(water.topic, b"bill", f"k{i}".encode())
    for stage in ("ingest", "router"):
        letter = DeadLetter(stage, "invalid_id_number", "bad", resource=water.resource_id)
        produce_dead_letter(producer, letter)
    assert producer.flush(30) == 0

    tally = DeadLetterTally()
    facts = flow_facts(settings, [record], tally)
    # Offered: 3 on the topic and 1 rejected before it; dead: both stages.
    assert facts[water.resource_id] == FlowFacts(offered=4, dead_letters=2)

    produce_dead_letter(producer, DeadLetter("sink", "bad_row", "x", resource=water.resource_id))
    assert producer.flush(30) == 0
    # Read on from where the last reading stopped: nothing counted twice.
    assert flow_facts(settings, [record], tally)[water.resource_id] == FlowFacts(4, 3)
