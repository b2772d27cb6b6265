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
from fastavro.read import SchemaResolutionError
from fastavro.schema import to_parsing_canonical_form

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


def canonical_form(schema: Any) -> str:
    """Avro's Parsing Canonical Form: equal for schemas that read and write alike."""
    return to_parsing_canonical_form(schema)


class ReaderSchema:
    """The schema a process reads with (a resource's current one), parsed once."""

    __slots__ = ("schema", "parsed", "canonical")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.parsed = parse_schema(schema)
        self.canonical = canonical_form(schema)


class AvroCodec:
    """Decode any registered writer schema; build encoders for (subject, schema) pairs."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._parsed: dict[int, Any] = {}
        self._raw: dict[int, dict[str, Any]] = {}  # writer schemas as registered, by id
        self._canonical_of: dict[int, str] = {}

    def _writer_schema(self, schema_id: int) -> Any:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            try:
                found = self._registry.get_schema(schema_id)
            except SchemaRegistryError as exc:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id}: {exc}") from exc
            raw = json.loads(found.schema_str)
            parsed = parse_schema(raw)
            self._parsed[schema_id] = parsed
            self._raw[schema_id] = raw
        return parsed

    def schema_id_of(self, data: bytes | None) -> int:
        if data is None or len(data) < HEADER.size:
            raise DecodeError("not_avro", "message shorter than the wire-format header")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError("not_avro", f"magic byte {magic} is not {MAGIC}")
        return schema_id

    def decode(self, data: bytes | None, reader: ReaderSchema | None = None) -> Any:
        """The record; with ``reader``, resolved to that schema (Avro schema resolution).

        Resolution costs about twice a plain read, so it runs only when the writer's schema
        differs from the reader's: events written with the current schema are read as they are.
        """
        schema_id = self.schema_id_of(data)
        schema = self._writer_schema(schema_id)
        resolve_to = None
        if reader is not None and reader.canonical != self._canonical(schema_id):
            resolve_to = reader.parsed
        buffer = io.BytesIO(data)
        buffer.seek(HEADER.size)
        try:
            record = schemaless_reader(buffer, schema, resolve_to)
        except SchemaResolutionError as exc:
            raise DecodeError("schema_resolution", f"schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise DecodeError("malformed_avro", f"{type(exc).__name__}: {exc}") from exc
        if buffer.tell() != len(data):
            raise DecodeError("malformed_avro", f"{len(data) - buffer.tell()} trailing bytes")
        return record

    def _canonical(self, schema_id: int) -> str:
        found = self._canonical_of.get(schema_id)
        if found is None:
            found = self._canonical_of[schema_id] = canonical_form(self._raw[schema_id])
        return found

    def encoder(self, subject: str, schema: dict[str, Any]) -> Encoder:
        """Register ``schema`` under ``subject`` (idempotent) and return its encoder."""
        try:
            schema_id = self._registry.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except SchemaRegistryError as exc:
            raise EncodeError("schema_rejected", f"{subject}: {exc}") from exc
        parsed = parse_schema(schema)
        self._parsed[schema_id] = parsed
        self._raw[schema_id] = schema
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
