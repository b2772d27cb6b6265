"""Peer contender: the router's grant logic written as an idiomatic Quix Streams app.

    .venv-quix/bin/python benchmarks/quix/route_app.py   (GOVBUS_* as for the router)

It runs in its own virtualenv (``make .venv-quix``, pins in requirements.txt) because
quixstreams caps confluent-kafka below the project's. The work is the project's own: the
source topic's deserializer reads the change event with ``AvroCodec`` and the resource's
current envelope schema, ``plan_delivery`` filters, projects and masks it per grant (plans
from ``compile_plan``), and the delivery topic's serializers write the consumer's key and
value with ``AvroCodec`` encoders, in the Confluent wire format, under the same subjects as
the router. Quix Streams runs the loop: consume, the dataframe's steps, produce, commit.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models.serializers import Deserializer, Serializer

from services.common.config_files import file_records
from services.common.plan import Delivery, compile_plan, plan_delivery
from services.common.registry_client import make_registry_client
from services.common.schemas import envelope_schema, source_schema
from services.common.serde import AvroCodec, Encoder, ReaderSchema
from services.common.settings import load_settings
from services.common.topics import key_subject, value_subject


class ChangeEventDeserializer(Deserializer):
    def __init__(self, codec: AvroCodec, reader: ReaderSchema) -> None:
        super().__init__()
        self._codec = codec
        self._reader = reader

    def __call__(self, value: bytes, ctx) -> dict[str, Any]:
        return self._codec.decode(value, self._reader)


class AvroSerializer(Serializer):
    """``pick`` takes the part of the delivery this serializer writes (key or value)."""

    def __init__(self, encode: Encoder, pick) -> None:
        self._encode = encode
        self._pick = pick

    def __call__(self, value: Any, ctx) -> bytes:
        return self._encode(self._pick(value))


def main() -> None:
    settings = load_settings()
    pattern = re.compile(settings.source_pattern)
    resources, grants = file_records(
        settings.catalog_dir, settings.grants_dir, settings.schemas_dir
    )
    record = next(r for r in resources if pattern.match(r.topic))
    secret = settings.mask_secret.get_secret_value().encode()
    plans = [
        compile_plan(g.grant, record.resource, record.value_schema, secret)
        for g in grants
        if g.source_topic == record.topic
    ]
    codec = AvroCodec(make_registry_client(settings))
    reader = ReaderSchema(envelope_schema(record.value_schema, source_schema(settings.schemas_dir)))

    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(settings.kafka_config()),
        consumer_group=settings.router_group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
        use_changelog_topics=False,
    )
    source = app.topic(record.topic, value_deserializer=ChangeEventDeserializer(codec, reader))
    events = app.dataframe(source)
    for plan in plans:
        delivery_topic = app.topic(
            plan.topic,
            key_serializer=AvroSerializer(
                codec.encoder(key_subject(plan.topic), plan.key_schema), lambda key: key
            ),
            value_serializer=AvroSerializer(
                codec.encoder(value_subject(plan.topic), plan.value_schema),
                lambda d: d.value,
            ),
        )
        deliveries = events.apply(partial(plan_delivery, plan)).filter(lambda d: d is not None)
        deliveries.to_topic(delivery_topic, key=_key_of)
    app.run()


def _key_of(delivery: Delivery) -> dict[str, Any]:
    return delivery.key


if __name__ == "__main__":
    main()
