"""The request form of the data hall, read into the API's own GrantRequest.

The form's field names: ``resource``, ``purpose``, ``legal_basis``, ``fields`` (one per picked
field), ``mask.<field>`` (a masking method, or ``default`` for the catalog's default),
``row_filter``, ``l4_clear_reason``, ``valid_from``, ``valid_until``, and ``samples`` (a JSON
array of records, for the preview). A form that does not make a valid request is Refused
(422) with what is wrong, in the API's words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from pydantic import ValidationError

from services.catalog.workflow import GrantRequest, Refused
from services.common.masking import MaskMethod

DEFAULT = "default"
# The methods the form offers; partial and generalize need parameters, so the API sets them.
FORM_METHODS = ("keep", "redact", "hmac", "drop")
SAMPLES_MAX = 100


class FormData:
    """What a submitted form holds: one value per name, or all of a repeated name."""

    def __init__(self, values: Mapping[str, Sequence[str]]) -> None:
        self._values = values

    def one(self, name: str) -> str:
        got = self._values.get(name) or [""]
        return got[0].strip()

    def all(self, name: str) -> list[str]:
        return [v for v in self._values.get(name, []) if v]


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
    )


def grant_request(form: FormData) -> GrantRequest:
    fields = form.all("fields")
    masking: dict[str, Any] = {}
    for name in fields:
        method = form.one(f"mask.{name}") or DEFAULT
        if method == DEFAULT:
            continue
        if method not in get_args(MaskMethod):
            raise Refused(f"mask.{name}: unknown masking method {method!r}")
        masking[name] = {"method": method}
    body = {
        "resource": form.one("resource"),
        "purpose": form.one("purpose"),
        "legal_basis": form.one("legal_basis"),
        "fields": fields,
        "row_filter": form.one("row_filter") or None,
        "masking": masking,
        "l4_clear_reason": form.one("l4_clear_reason") or None,
        "valid_from": form.one("valid_from"),
        "valid_until": form.one("valid_until"),
    }
    try:
        return GrantRequest.model_validate(body)
    except ValidationError as exc:
        raise Refused(f"invalid request: {_problems(exc)}") from exc


def samples(text: str) -> list[dict[str, Any]]:
    """The preview's sample records: a JSON array of 1 to 100 objects."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"samples: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(value, list) or not value or len(value) > SAMPLES_MAX:
        raise Refused(f"samples: a JSON array of 1 to {SAMPLES_MAX} records")
    if not all(isinstance(r, dict) for r in value):
        raise Refused("samples: every record is a JSON object")
    return value
