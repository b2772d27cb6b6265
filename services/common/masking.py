"""Field masking methods: small pure functions, a validated spec per field, and one entry point
(`build_masker`) that the router calls once per grant to get a per-record closure.

Errors never carry the clear value: a `MaskingError` names the method and the value's type only,
because error messages end up in dead-letter headers and logs.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import uuid
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MaskMethod = Literal["keep", "drop", "redact", "partial", "hmac", "generalize"]
PartialStyle = Literal["id_card", "phone", "name"]
GeneralizeTo = Literal["year", "year_month", "region_prefix", "age_band"]

REDACTED = "***"
HMAC_HEX_CHARS = 32  # 128 bits: no practical collisions among join keys, half the bytes
DEFAULT_REGION_DIGITS = 4
DEFAULT_AGE_BAND = 10
_STYLE_HEAD_TAIL = {"id_card": (6, 4), "phone": (3, 4)}
_METHOD_PARAMS = {"partial": {"head", "tail", "style"}, "generalize": {"to", "digits", "band"}}
_PARAM_NAMES = ("head", "tail", "style", "to", "digits", "band")

_COMPOUND_SURNAME_TEXT = (
    "欧阳 司马 诸葛 上官 东方 皇甫 令狐 慕容 尉迟 公孙 夏侯 司徒 司空 长孙 宇文 轩辕 端木 "
    "西门 南宫 独孤 澹台 公冶 宗政 濮阳 淳于 单于 太叔 申屠 钟离 闻人 赫连 呼延 万俟 百里 "
    "东郭 拓跋 第五"
)
COMPOUND_SURNAMES = frozenset(_COMPOUND_SURNAME_TEXT.split())

_DATE_STR = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ].*)?", re.DOTALL)
_REGION_CODE = re.compile(r"[0-9]{6}")


class MaskingError(ValueError):
    """A value or Avro type does not fit the masking method; the clear value is never included."""


class MaskSpec(BaseModel):
    """How one field is masked for one consumer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: MaskMethod
    head: int | None = Field(default=None, ge=0)
    tail: int | None = Field(default=None, ge=0)
    style: PartialStyle | None = None
    to: GeneralizeTo | None = None
    # Bounds keep "generalize" from being the identity: 6 region digits or a band of 1 would
    # hand over the clear value.
    digits: int | None = Field(default=None, ge=1, le=5)
    band: int | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _check_combination(self) -> MaskSpec:
        given = {name for name in _PARAM_NAMES if getattr(self, name) is not None}
        unexpected = given - _METHOD_PARAMS.get(self.method, set())
        if unexpected:
            raise ValueError(f"method {self.method!r} takes no parameter(s) {sorted(unexpected)}")
        if self.method == "partial":
            if self.style is not None and given & {"head", "tail"}:
                raise ValueError("partial: give either style or head/tail, not both")
            if not given:
                raise ValueError("partial needs style ('id_card', 'phone', 'name') or head/tail")
        if self.method == "generalize":
            if self.to is None:
                raise ValueError(
                    "generalize needs to ('year', 'year_month', 'region_prefix', 'age_band')"
                )
            if self.digits is not None and self.to != "region_prefix":
                raise ValueError("generalize: digits only applies to to='region_prefix'")
            if self.band is not None and self.to != "age_band":
                raise ValueError("generalize: band only applies to to='age_band'")
        return self


def _type_name(value: Any) -> str:
    return type(value).__name__


def redact(value: Any) -> str | None:
    """Strings become REDACTED; every other type becomes None (its output schema is nullable)."""
    return REDACTED if isinstance(value, str) else None


def partial(value: str, head: int = 0, tail: int = 0) -> str:
    """Keep `head` and `tail` characters, replace the rest with '*', keeping the length.
    If nothing would be masked, everything is masked, so the clear value never survives."""
    if not isinstance(value, str):
        raise MaskingError(f"partial: expected a string, got {_type_name(value)}")
    n = len(value)
    if head + tail >= n:
        return "*" * n
    return value[:head] + "*" * (n - head - tail) + value[n - tail :]


def partial_name(value: str) -> str:
    """Keep the surname (two characters for a compound surname such as 欧阳), mask the rest."""
    if not isinstance(value, str):
        raise MaskingError(f"partial: expected a string, got {_type_name(value)}")
    surname = 2 if value[:2] in COMPOUND_SURNAMES else 1
    return partial(value, head=surname)


def consumer_key(master_secret: bytes, consumer: str) -> bytes:
    """Per-consumer HMAC key: the same value hashes alike within one consumer (joinable), and
    differently across consumers, so two consumers cannot join their deliveries."""
    if len(master_secret) < 16:
        raise ValueError("master secret must be at least 16 bytes")
    if not consumer:
        raise ValueError("consumer must not be empty")
    return hmac.new(master_secret, b"govbus-mask:" + consumer.encode(), hashlib.sha256).digest()


def _hmac_input(value: Any) -> bytes:
    # Integers hash as their decimal text so an ID held as int in one resource joins the same
    # ID held as a string in another.
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    if isinstance(value, uuid.UUID):
        return str(value).encode()
    raise MaskingError(f"hmac: expected a string, bytes, int or UUID, got {_type_name(value)}")


def hmac_value(value: str | bytes | int | uuid.UUID, key: bytes) -> str:
    """HMAC-SHA256 of the value under the consumer's key, as HMAC_HEX_CHARS hex characters."""
    if not key:
        raise MaskingError("hmac: empty key")
    # hmac.digest is the one-shot C path: several times faster than hmac.new per record.
    return hmac.digest(key, _hmac_input(value), "sha256").hex()[:HMAC_HEX_CHARS]


def _as_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.date):  # also datetime; its own (fastavro: UTC) fields are used
        return value
    if isinstance(value, str):
        m = _DATE_STR.fullmatch(value)
        if m:
            try:
                return datetime.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                pass
    raise MaskingError(f"generalize: expected a 'YYYY-MM-DD' date, got {_type_name(value)}")


def generalize_date(value: str | datetime.date, to: Literal["year", "year_month"]) -> str:
    """'1990-05-17' -> '1990' or '1990-05'."""
    d = _as_date(value)
    return f"{d.year:04d}" if to == "year" else f"{d.year:04d}-{d.month:02d}"


def generalize_region(value: str, digits: int = DEFAULT_REGION_DIGITS) -> str:
    """6-digit region code -> its first `digits` digits padded with zeros: '340104' -> '340100'."""
    if not isinstance(value, str) or not _REGION_CODE.fullmatch(value):
        raise MaskingError(f"generalize: expected a 6-digit region code, got {_type_name(value)}")
    return value[:digits] + "0" * (6 - digits)


def generalize_age(value: int, band: int = DEFAULT_AGE_BAND) -> str:
    """Age -> band: 35 -> '30-39' for band 10."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MaskingError(f"generalize: expected a non-negative int age, got {_type_name(value)}")
    low = value // band * band
    return f"{low}-{low + band - 1}"


def _method_function(spec: MaskSpec, key: bytes) -> Callable[[Any], Any]:
    if spec.method == "keep":
        return lambda value: value
    if spec.method == "redact":
        return redact
    if spec.method == "hmac":
        if not key:
            raise MaskingError("hmac: empty consumer key")
        return lambda value: hmac_value(value, key)
    if spec.method == "partial":
        if spec.style == "name":
            return partial_name
        head, tail = _STYLE_HEAD_TAIL.get(spec.style or "", (spec.head or 0, spec.tail or 0))
        return lambda value: partial(value, head, tail)
    if spec.to in ("year", "year_month"):
        to = spec.to
        return lambda value: generalize_date(value, to)
    if spec.to == "region_prefix":
        digits = spec.digits or DEFAULT_REGION_DIGITS
        return lambda value: generalize_region(value, digits)
    band = spec.band or DEFAULT_AGE_BAND
    return lambda value: generalize_age(value, band)


def build_masker(spec: MaskSpec, consumer_key: bytes) -> Callable[[Any], Any] | None:
    """The per-record masking closure for one field, or None for drop (remove the field).
    None values pass through as None for every method."""
    if spec.method == "drop":
        return None
    mask_value = _method_function(spec, consumer_key)

    def mask(value: Any) -> Any:
        return None if value is None else mask_value(value)

    return mask


# Avro (type, logicalType) pairs each method accepts, checked once per grant by output_type.
_TIMESTAMPS = {
    ("long", lt)
    for lt in (
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    )
}
_ACCEPTED_TYPES: dict[tuple[str, str | None], set[tuple[str, str | None]]] = {
    ("partial", None): {("string", None)},
    ("hmac", None): {
        ("string", None),
        ("bytes", None),
        ("int", None),
        ("long", None),
        ("string", "uuid"),
    },
    ("generalize", "year"): {("string", None), ("int", "date")} | _TIMESTAMPS,
    ("generalize", "year_month"): {("string", None), ("int", "date")} | _TIMESTAMPS,
    ("generalize", "region_prefix"): {("string", None)},
    ("generalize", "age_band"): {("int", None), ("long", None)},
}


def _branches(avro_type: Any) -> list[Any]:
    return list(avro_type) if isinstance(avro_type, list) else [avro_type]


def _base(avro_type: Any) -> tuple[str, str | None] | None:
    if isinstance(avro_type, str):
        return (avro_type, None)
    if isinstance(avro_type, dict) and isinstance(avro_type.get("type"), str):
        return (avro_type["type"], avro_type.get("logicalType"))
    return None


def _nullable(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        return avro_type if "null" in avro_type else ["null", *avro_type]
    return ["null", avro_type]


def output_type(spec: MaskSpec, input_avro_type: Any) -> Any | None:
    """Avro type of the masked field given the input field's type; None for drop.
    Raises MaskingError if the method cannot apply to that type, so a bad grant fails when it is
    compiled rather than on every record."""
    if spec.method == "keep":
        return input_avro_type
    if spec.method == "drop":
        return None
    nullable = "null" in _branches(input_avro_type)
    values = [b for b in _branches(input_avro_type) if b != "null"]
    if spec.method == "redact":
        if values and all(_base(b) == ("string", None) for b in values):
            return ["null", "string"] if nullable else "string"
        return _nullable(input_avro_type)
    accepted = _ACCEPTED_TYPES[(spec.method, spec.to)]
    if not values or any(_base(b) not in accepted for b in values):
        what = spec.method if spec.to is None else f"{spec.method} to {spec.to}"
        raise MaskingError(f"{what} cannot apply to Avro type {input_avro_type!r}")
    return ["null", "string"] if nullable else "string"
