"""Avro in the Confluent wire format: magic byte 0, 4-byte schema id, Avro binary body.

Schemas are parsed once and cached by id; fastavro re-parsing per record would cost
orders of magnitude. Registry and fastavro errors become :class:`DecodeError` /
:class:`EncodeError` carrying a short reason code for the dead-letter topic.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_reader, schemaless_writer

MAGIC = 0
HEADER = struct.Struct(">bI")


class DecodeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Encoder = Callable[[Any], bytes]


class AvroCodec:
    """Decode any registered writer schema; build encoders for (subject, schema) pairs."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._parsed: dict[int, Any] = {}

    def _writer_schema(self, schema_id: int) -> Any:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            try:
                found = self._registry.get_schema(schema_id)
            except SchemaRegistryError as exc:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id}: {exc}") from exc
            parsed = parse_schema(json.loads(found.schema_str))
            self._parsed[schema_id] = parsed
        return parsed

    def schema_id_of(self, data: bytes | None) -> int:
        if data is None or len(data) < HEADER.size:
            raise DecodeError("not_avro", "message shorter than the wire-format header")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError("not_avro", f"magic byte {magic} is not {MAGIC}")
        return schema_id

    def decode(self, data: bytes | None) -> Any:
        schema = self._writer_schema(self.schema_id_of(data))
        buffer = io.BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = schemaless_reader(buffer, schema, None)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError("malformed_avro", f"{type(exc).__name__}: {exc}") from exc
        if buffer.tell() != len(data):
            raise DecodeError("malformed_avro", f"{len(data) - buffer.tell()} trailing bytes")
        return record

    def encoder(self, subject: str, schema: dict[str, Any]) -> Encoder:
        """Register ``schema`` under ``subject`` (idempotent) and return its encoder."""
        try:
            schema_id = self._registry.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except SchemaRegistryError as exc:
            raise EncodeError("schema_rejected", f"{subject}: {exc}") from exc
        parsed = parse_schema(schema)
        self._parsed[schema_id] = parsed
        header = HEADER.pack(MAGIC, schema_id)

        def encode(record: Any) -> bytes:
            buffer = io.BytesIO()
            buffer.write(header)
            try:
                schemaless_writer(buffer, parsed, record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise EncodeError("schema_mismatch", f"{subject}: {exc}") from exc
            return buffer.getvalue()

        encode.schema_id = schema_id  # type: ignore[attr-defined]
        return encode
