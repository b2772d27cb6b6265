"""Avro in the Confluent wire format: magic byte 0, 4-byte schema id, Avro binary body.

The codec is cavro (Cython): on our schemas it reads a change event in about half of
fastavro's time, resolves a writer to a reader schema in a third, and encodes a delivery
without a union hint (figures: benchmarks/codec_compare.py, README "Avro codec"). fastavro stays
the reference: a unit test holds cavro's bytes equal to fastavro's on the demo data.

Schemas are parsed once and cached: writers by id, resolved readers by (writer id, reader).
Registry and codec errors become :class:`DecodeError` / :class:`EncodeError` carrying a short
reason code for the dead-letter topic.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import cavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.schema import to_parsing_canonical_form

MAGIC = 0
HEADER = struct.Struct(">bI")
# Records read as dicts, like fastavro; everything else cavro's defaults (strict values: a float
# for a long or a bool for an int is an error, where fastavro truncates).
OPTIONS = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True)


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


def parse(schema: dict[str, Any]) -> cavro.Schema:
    """A schema as the codec uses it (parsed once per schema, never per record)."""
    return cavro.Schema(schema, OPTIONS, parse_json=False)


class ReaderSchema:
    """The schema a process reads with (a resource's current one), parsed once."""

    __slots__ = ("schema", "parsed", "canonical")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.parsed = parse(schema)
        self.canonical = canonical_form(schema)


# cavro's in-memory reader does not tell how much it read, so the body is read with this marker
# after it: a record that ends early leaves bytes before the marker (read back unequal), one
# that runs long eats into it (EOFError). Only a body followed by the marker itself passes
# unnoticed, and its record is whole. About 1 µs; a file reader with tell() costs 5.
END = b"\xffgovbus-end"  # its first byte occurs once: no shift of it matches itself
_END_READER = parse({"type": "fixed", "name": "End", "size": len(END)})


def read_body(schema: cavro.Schema | cavro.ResolvedSchema, data: bytes) -> Any:
    """The Avro body after the wire header; trailing bytes are an error, as a short body is."""
    reader = cavro.MemoryReader(memoryview(data + END)[HEADER.size :])
    record = schema.binary_read(reader)
    if _END_READER.binary_read(reader) != END:
        raise DecodeError("malformed_avro", "trailing bytes after the record")
    return record


class AvroCodec:
    """Decode any registered writer schema; build encoders for (subject, schema) pairs."""

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self._registry = registry
        self._parsed: dict[int, cavro.Schema] = {}
        self._raw: dict[int, dict[str, Any]] = {}  # writer schemas as registered, by id
        # (writer id, reader canonical form) -> what reads that writer's bytes for that reader
        self._readers: dict[tuple[int, str | None], cavro.Schema | cavro.ResolvedSchema] = {}

    def _writer_schema(self, schema_id: int) -> cavro.Schema:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            try:
                found = self._registry.get_schema(schema_id)
            except SchemaRegistryError as exc:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id}: {exc}") from exc
            raw = json.loads(found.schema_str)
            try:
                parsed = parse(raw)
            except Exception as exc:  # noqa: BLE001 - a registry schema cavro cannot read
                raise DecodeError("unknown_schema_id", f"schema id {schema_id}: {exc}") from exc
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

    def _reader(
        self, schema_id: int, reader: ReaderSchema | None
    ) -> cavro.Schema | cavro.ResolvedSchema:
        key = (schema_id, reader.canonical if reader is not None else None)
        found = self._readers.get(key)
        if found is None:
            found = writer = self._writer_schema(schema_id)
            # Resolution only when the writer differs: equal schemas are read as they are.
            if reader is not None and reader.canonical != canonical_form(self._raw[schema_id]):
                try:
                    found = reader.parsed.reader_for_writer(writer)
                except cavro.CavroException as exc:
                    raise DecodeError("schema_resolution", f"schema id {schema_id}: {exc}") from exc
            self._readers[key] = found
        return found

    def decode(self, data: bytes | None, reader: ReaderSchema | None = None) -> Any:
        """The record; with ``reader``, resolved to that schema (Avro schema resolution)."""
        schema_id = self.schema_id_of(data)
        schema = self._reader(schema_id, reader)
        try:
            return read_body(schema, data)
        except DecodeError:
            raise
        except cavro.CannotPromoteError as exc:  # found on reading, inside a union's branch
            raise DecodeError("schema_resolution", f"schema id {schema_id}: {exc}") from exc
        except Exception as exc:  # the codec raises many types on corrupt input
            raise DecodeError("malformed_avro", f"{type(exc).__name__}: {exc}") from exc

    def encoder(self, subject: str, schema: dict[str, Any]) -> Encoder:
        """Register ``schema`` under ``subject`` (idempotent) and return its encoder."""
        try:
            schema_id = self._registry.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except SchemaRegistryError as exc:
            raise EncodeError("schema_rejected", f"{subject}: {exc}") from exc
        parsed = parse(schema)
        self._parsed[schema_id] = parsed
        self._raw[schema_id] = schema
        header = HEADER.pack(MAGIC, schema_id)
        write = parsed.binary_encode

        def encode(record: Any) -> bytes:
            try:
                return header + write(record)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise EncodeError("schema_mismatch", f"{subject}: {exc}") from exc

        encode.schema_id = schema_id  # type: ignore[attr-defined]
        return encode
