"""A resource's registry subjects, kept by the catalog itself.

Every resource has a key schema under ``<topic>-key`` and its change-event envelope under
``<topic>-value``. The control plane registers both in the registry of its own process when a
resource is created or edited, after checking them against the subject's compatibility mode:
an edit the registry would refuse is refused here with the same 409 and rule, before anything
is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.catalog import compatibility
from services.catalog.registry_errors import IncompatibleSchemaError, RegistryError
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.workflow import Conflict, Refused
from services.common.catalog import CatalogEntry
from services.common.schemas import envelope_schema, key_schema
from services.common.topics import key_subject, value_subject


def subject_schemas(
    entry: CatalogEntry, value: dict[str, Any], source: dict[str, Any]
) -> dict[str, str]:
    """Subject -> schema text of the resource's key and envelope."""
    return {
        key_subject(entry.topic): json.dumps(key_schema(entry, value), ensure_ascii=False),
        value_subject(entry.topic): json.dumps(envelope_schema(value, source), ensure_ascii=False),
    }


def check_value_change(
    registry: SchemaRegistryStore,
    entry: CatalogEntry,
    old: dict[str, Any],
    old_version: int,
    new: dict[str, Any],
) -> None:
    """Refuse (409) a value schema change the envelope's subject mode forbids, naming the
    field: checked on the bare record, whose problems the envelope only reports as a union
    branch of ``before``/``after``."""
    subject = value_subject(entry.topic)
    mode = registry.get_compatibility(subject)
    problems = compatibility.check(mode, json.dumps(new), {old_version: json.dumps(old)})
    if problems:
        details = ", ".join(compatibility.details(problems, mode))
        raise Conflict(f"value_schema: incompatible with the current one under {mode}: [{details}]")


def check_subjects(registry: SchemaRegistryStore, schemas: Mapping[str, str]) -> None:
    """Refuse (409, naming the rule) schemas the registry would not register."""
    for subject, text in schemas.items():
        try:
            mode, problems = registry.test_compatibility(subject, text)
        except RegistryError as exc:
            raise Refused(f"value_schema: {exc.message}") from exc
        if problems:
            details = ", ".join(compatibility.details(problems, mode))
            raise Conflict(
                f"value_schema: incompatible with subject {subject!r} under {mode}: [{details}]"
            )


def register_subjects(registry: SchemaRegistryStore, schemas: Mapping[str, str]) -> None:
    """Register each schema under its subject (idempotent: an unchanged schema keeps its id)."""
    for subject, text in schemas.items():
        try:
            registry.register(subject, text)
        except IncompatibleSchemaError as exc:  # registered by someone else meanwhile
            raise Conflict(f"value_schema: {exc.message}") from exc
        except RegistryError as exc:
            raise Refused(f"value_schema: {exc.message}") from exc
