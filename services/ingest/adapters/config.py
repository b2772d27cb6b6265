"""Adapter files under ``deploy/adapters/``: one YAML file per adapter, named by its file stem.

Every file names its ``kind`` and the catalog resource it feeds; the rest is the kind's own
model. Each kind registers its model here (``KINDS``), so one loader validates every file at
start, and an error names the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.common.settings import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class AdapterBase(BaseModel):
    """What every adapter file has: its kind, the resource (``<provider>.<code>``) it feeds, and
    the port of its metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    resource: str
    # Its /metrics port (the govbus-adapters scrape job lists each); 0: any free port.
    metrics_port: int = Field(0, ge=0, le=65535)

    @field_validator("resource")
    @classmethod
    def _resource_id(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*", value):
            raise ValueError(f"expected <provider>.<resource>, got {value!r}")
        return value

    @property
    def provider(self) -> str:
        return self.resource.split(".", 1)[0]


# kind -> model class; each adapter kind's module adds itself (see ``register_kind``).
KINDS: dict[str, type[AdapterBase]] = {}


def register_kind(kind: str, model: type[AdapterBase]) -> type[AdapterBase]:
    KINDS[kind] = model
    return model


def parse_adapter(name: str, raw: Any, where: str) -> AdapterBase:
    """One adapter file's content as its kind's model; a problem names ``where`` and the field."""
    if not NAME.match(name):
        raise ConfigError(f"{where}: adapter name {name!r} must match {NAME.pattern}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    kind = raw.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ConfigError(f"{where}: kind: expected one of {sorted(KINDS)}, got {kind!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from exc


def load_adapters(directory: Path) -> dict[str, AdapterBase]:
    """Every ``*.yaml`` in ``directory``, by adapter name (the file stem)."""
    adapters: dict[str, AdapterBase] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path.name}: not valid YAML: {exc}") from exc
        adapters[path.stem] = parse_adapter(path.stem, raw, path.name)
    return adapters
