"""Load the catalog and grants from YAML files; a bad file stops start-up naming entry and field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from services.common.catalog import (
    CatalogEntry,
    Department,
    Grant,
    GrantState,
    check_grant_against_catalog,
)
from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.schemas import check_entry_schema, value_schema
from services.common.settings import ConfigError

M = TypeVar("M", bound=BaseModel)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _validate(model: type[M], raw: Any, where: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(entry)"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{where}: field '{field}': {first['msg']}{more}") from exc


def _entries(folder: Path, section: str) -> Iterable[tuple[Path, int, Any]]:
    for path in sorted(folder.glob("*.yaml")):
        items = _read_yaml(path).get(section) or []
        if not isinstance(items, list | dict):
            raise ConfigError(f"{path}: '{section}' must be a list or mapping")
        for index, item in enumerate(items.items() if isinstance(items, dict) else items):
            yield path, index, item


def load_departments(folder: Path) -> dict[str, Department]:
    found = {}
    for path, _, (code, raw) in _entries(folder, "departments"):
        found[code] = _validate(Department, raw, f"{path}: department '{code}'")
    return found


def load_catalog(folder: Path, schemas_dir: Path) -> dict[str, CatalogEntry]:
    """Catalog entries by resource id (``<provider>.<code>``), each checked against its schema."""
    departments = load_departments(folder)
    catalog: dict[str, CatalogEntry] = {}
    for path, index, raw in _entries(folder, "resources"):
        name = raw.get("code", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        where = f"{path}: resource '{name}'"
        entry = _validate(CatalogEntry, raw, where)
        if departments and entry.provider not in departments:
            raise ConfigError(f"{where}: field 'provider': unknown department {entry.provider!r}")
        if entry.resource_id in catalog:
            raise ConfigError(f"{where}: field 'code': duplicate resource {entry.resource_id}")
        problem = check_entry_schema(entry, schemas_dir)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        catalog[entry.resource_id] = entry
    if not catalog:
        raise ConfigError(f"{folder}: no resources found")
    return catalog


def load_grants(folder: Path, catalog: dict[str, CatalogEntry]) -> list[Grant]:
    grants: dict[str, Grant] = {}
    for path, index, raw in _entries(folder, "grants"):
        name = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
        where = f"{path}: grant '{name}'"
        grant = _validate(Grant, raw, where)
        entry = catalog.get(grant.resource)
        if entry is None:
            raise ConfigError(f"{where}: field 'resource': unknown resource {grant.resource!r}")
        problems = check_grant_against_catalog(grant, entry)
        if problems:
            raise ConfigError(f"{where}: {'; '.join(problems)}")
        if grant.id in grants:
            raise ConfigError(f"{where}: field 'id': duplicate grant id")
        grants[grant.id] = grant
    return list(grants.values())


def live_grants(grants: Iterable[Grant], today: dt.date | None = None) -> list[Grant]:
    today = today or dt.date.today()
    return [g for g in grants if g.is_live(today)]


def file_records(
    catalog_dir: Path, grants_dir: Path, schemas_dir: Path
) -> tuple[list[CatalogRecord], list[GrantRecord]]:
    """The files as the control plane's outbox publishes them on a new store: every resource
    at schema version 1, every grant (an active one at its first activation)."""
    catalog = load_catalog(catalog_dir, schemas_dir)
    resources = [
        CatalogRecord(resource=e, value_schema=value_schema(e, schemas_dir), schema_version=1)
        for e in catalog.values()
    ]
    grants = [
        GrantRecord(grant=g, activation=int(g.state is GrantState.ACTIVE))
        for g in load_grants(grants_dir, catalog)
    ]
    return resources, grants
