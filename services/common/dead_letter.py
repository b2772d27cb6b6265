"""Dead letters: a record the bus could not take, kept with where it came from and why."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.topics import DLQ


@dataclass(frozen=True)
class DeadLetter:
    stage: str  # ingest | router | sink
    reason: str  # short code: not_avro, unknown_schema_id, unknown_resource, invalid_id_number ...
    detail: str
    key: bytes | None
    value: bytes | None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    grant: str | None = None  # the one grant whose delivery failed; None: the whole event

    def headers(self) -> list[tuple[str, bytes]]:
        pairs = {
            "govbus.stage": self.stage,
            "govbus.reason": self.reason,
            "govbus.detail": self.detail[:1000],
            "govbus.source.topic": self.topic,
            "govbus.source.partition": self.partition,
            "govbus.source.offset": self.offset,
            "govbus.grant": self.grant,
        }
        return [(k, str(v).encode()) for k, v in pairs.items() if v is not None]


def produce_dead_letter(producer, letter: DeadLetter, on_delivery=None) -> None:
    """Queue a dead letter on a confluent-kafka producer (the caller flushes)."""
    producer.produce(
        DLQ, value=letter.value, key=letter.key, headers=letter.headers(), on_delivery=on_delivery
    )


def header_map(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v.decode() if v is not None else "") for k, v in (headers or [])}
