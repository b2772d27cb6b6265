"""Check a provider record against its catalog entry before it enters the bus. Pure functions."""

from __future__ import annotations

from typing import Any, NamedTuple

from fastavro.validation import ValidationError, validate

from services.common.catalog import CatalogEntry
from services.common.idnumbers import credit_code_valid, resident_id_valid

FORMAT_CHECKS = {
    "resident_id": ("invalid_id_number", resident_id_valid),
    "credit_code": ("invalid_credit_code", credit_code_valid),
}


class Problem(NamedTuple):
    """Why a record cannot enter the bus; ``field`` names the field whose value failed a
    format check, whose value must then stay out of every dead letter."""

    reason: str
    detail: str
    field: str | None = None


def record_problem(entry: CatalogEntry, parsed_schema: Any, record: Any) -> Problem | None:
    """Why the record does not fit its resource, else None."""
    if not isinstance(record, dict):
        return Problem("schema_mismatch", f"record is {type(record).__name__}, not a mapping")
    unknown = sorted(set(record) - set(entry.fields))
    if unknown:
        return Problem("schema_mismatch", f"fields {unknown} are not in {entry.resource_id}")
    try:
        validate(record, parsed_schema, raise_errors=True)
    except ValidationError as exc:
        return Problem("schema_mismatch", str(exc)[:500])
    for name, spec in entry.fields.items():
        if spec.format is None or record.get(name) is None:
            continue
        reason, is_valid = FORMAT_CHECKS[spec.format]
        if not is_valid(record[name]):
            # The value itself stays out of the detail: the DLQ is readable by operators.
            return Problem(reason, f"field {name} fails its {spec.format} check digit", name)
    return None
