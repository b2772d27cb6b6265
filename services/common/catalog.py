"""Catalog entries (data resources) and grants (shares), as validated pydantic models."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.masking import MaskSpec
from services.common.paths import escape_problem
from services.common.rowfilter import FilterError, compile_filter
from services.common.topics import delivery_topic, source_topic

CODE = r"^[a-z][a-z0-9_]*$"
# Size limits of every text field: a request beyond them is refused (422) naming the field,
# and no record the bus carries can grow past Kafka's message size through them.
CODE_MAX = 64  # department and resource codes, field names
NAME_MAX = 200  # names, descriptions, file names, ids
TEXT_MAX = 2000  # purpose, legal basis, row filter, reasons
FIELDS_MAX = 500  # fields of a resource or a grant


class Sensitivity(StrEnum):
    L1 = "L1"  # public
    L2 = "L2"  # internal
    L3 = "L3"  # personal
    L4 = "L4"  # sensitive personal: ID numbers, health, finance


class ShareType(StrEnum):
    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NOT_SHARED = "not_shared"  # 不予共享


class GrantState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    ACTIVE = "active"
    # Stopped by a catalog change the grant no longer fits (resource not shared, a field
    # raised to L4): delivers nothing until the authority activates it again or revokes it.
    SUSPENDED = "suspended"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FieldSpec(Strict):
    sensitivity: Sensitivity
    description: str = Field(max_length=NAME_MAX)
    # Identifier formats checked at ingest: a record with a bad one is dead-lettered.
    format: Literal["resident_id", "credit_code"] | None = None


class Department(Strict):
    name_zh: str = Field(max_length=NAME_MAX)
    name_en: str = Field(max_length=NAME_MAX)


FieldName = Annotated[str, Field(max_length=CODE_MAX)]


class CatalogEntry(Strict):
    code: str = Field(pattern=CODE, max_length=CODE_MAX)
    provider: str = Field(pattern=CODE, max_length=CODE_MAX)
    name_zh: str = Field(max_length=NAME_MAX)
    name_en: str = Field(max_length=NAME_MAX)
    category: Literal["government", "social"]
    update_frequency: Literal["realtime", "daily", "weekly", "monthly"]
    share_type: ShareType
    schema_file: str = Field(max_length=NAME_MAX)
    key_fields: tuple[FieldName, ...] = Field(min_length=1, max_length=FIELDS_MAX)
    fields: dict[FieldName, FieldSpec] = Field(max_length=FIELDS_MAX)

    @property
    def topic(self) -> str:
        return source_topic(self.provider, self.code)

    @property
    def resource_id(self) -> str:
        """Catalog-wide identifier: ``<provider>.<code>``."""
        return f"{self.provider}.{self.code}"

    @field_validator("schema_file")
    @classmethod
    def _schema_file_stays_in_schemas(cls, value: str) -> str:
        # It names a file under the schemas directory, on import and in exports.
        if problem := escape_problem(value):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _keys_are_fields(self) -> CatalogEntry:
        missing = [k for k in self.key_fields if k not in self.fields]
        if missing:
            raise ValueError(f"key_fields {missing} are not declared in fields")
        return self


class GrantTerms(Strict):
    """What a consumer asks for and, once approved, receives: a grant without its identity."""

    resource: str = Field(description="<provider>.<code> of a catalog entry", max_length=NAME_MAX)
    purpose: str = Field(min_length=1, max_length=TEXT_MAX)
    legal_basis: str = Field(min_length=1, max_length=TEXT_MAX)
    fields: tuple[FieldName, ...] = Field(min_length=1, max_length=FIELDS_MAX)
    row_filter: str | None = Field(None, max_length=TEXT_MAX)
    masking: dict[FieldName, MaskSpec] = {}
    # Why an L4 field may go out in clear; must name the authority's approval.
    l4_clear_reason: str | None = Field(None, max_length=TEXT_MAX)
    valid_from: dt.date
    valid_until: dt.date
    delivery: Literal["kafka"] = "kafka"
    # The grant this one replaces for the same consumer and resource, once it is active.
    amends: str | None = Field(None, max_length=NAME_MAX)

    @model_validator(mode="after")
    def _consistent(self) -> GrantTerms:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        stray = sorted(set(self.masking) - set(self.fields))
        if stray:
            raise ValueError(f"masking names fields not granted: {stray}")
        if self.row_filter is not None:
            try:
                compile_filter(self.row_filter)
            except FilterError as exc:
                raise ValueError(f"row_filter: {exc}") from exc
        return self


class Grant(GrantTerms):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=NAME_MAX)
    consumer: str = Field(pattern=CODE, max_length=CODE_MAX)
    state: GrantState = GrantState.REQUESTED

    @property
    def topic(self) -> str:
        return delivery_topic(self.consumer, self.resource.split(".", 1)[1])

    def is_live(self, today: dt.date) -> bool:
        return self.state is GrantState.ACTIVE and self.valid_from <= today <= self.valid_until


def check_grant_against_catalog(grant: Grant, entry: CatalogEntry) -> list[str]:
    """Problems that need both the grant and its resource to see; empty when fine."""
    problems = []
    if entry.share_type is ShareType.NOT_SHARED:
        problems.append(f"resource {entry.resource_id} is not shared (不予共享)")
    unknown = [f for f in grant.fields if f not in entry.fields]
    if unknown:
        problems.append(f"fields {unknown} are not in resource {entry.resource_id}")
    missing_keys = [k for k in entry.key_fields if k not in grant.fields]
    if missing_keys:
        problems.append(f"fields must include the key fields {missing_keys}")
    for key in entry.key_fields:
        # A delivered key must stay unique per record, or compaction would merge records.
        if key in grant.masking and grant.masking[key].method not in ("keep", "hmac"):
            problems.append(f"key field {key} may only be kept or hmac-masked")
    if (problem := row_filter_problem(grant, entry)) is not None:
        problems.append(f"row_filter: {problem}")
    for name in l4_in_clear(grant, entry):
        problems.append(f"field {name} is L4 and must be masked (or give l4_clear_reason)")
    return problems


def row_filter_problem(grant: Grant, entry: CatalogEntry) -> str | None:
    """Why the grant's row filter does not compile on the resource's fields, or None."""
    if grant.row_filter is None:
        return None
    try:
        compile_filter(grant.row_filter, set(entry.fields))
    except FilterError as exc:
        return str(exc)
    return None


def l4_in_clear(grant: Grant, entry: CatalogEntry) -> list[str]:
    """Granted L4 fields kept in clear without an ``l4_clear_reason``."""
    if grant.l4_clear_reason:
        return []
    out = []
    for name in grant.fields:
        spec = entry.fields.get(name)
        in_clear = name not in grant.masking or grant.masking[name].method == "keep"
        if spec and spec.sensitivity is Sensitivity.L4 and in_clear:
            out.append(name)
    return out
