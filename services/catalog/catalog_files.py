"""The catalog as files, for keeping in git: export, and import of file texts over the API.

The files have the format of ``deploy/catalog`` and ``deploy/grants`` (an import format only:
the control store is the one source of truth once imported).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

from services.catalog.control_plane import ControlPlane
from services.catalog.workflow import Actor, Refused
from services.common.paths import OutsideDirectory, inside

MAX_FILES = 200
MAX_FILE_CHARS = 1_000_000


def import_files(plane: ControlPlane, actor: Actor, files: Mapping[str, str]) -> dict[str, int]:
    """Import file texts keyed by relative path: catalog/*.yaml, grants/*.yaml, schemas/*."""
    if len(files) > MAX_FILES:
        raise Refused(f"files: {len(files)} files; at most {MAX_FILES} are taken")
    with tempfile.TemporaryDirectory(prefix="govbus-import-") as tmp:
        root = Path(tmp)
        schemas = root / "schemas"
        shutil.copytree(plane.schemas_dir, schemas)
        for rel, text in files.items():
            parts = Path(rel).parts
            if (
                len(parts) != 2
                or parts[0] not in ("catalog", "grants", "schemas")
                or parts[1].startswith(".")
            ):
                raise Refused(
                    f"files: {rel!r} is not catalog/<name>, grants/<name> or schemas/<name>"
                )
            if len(text) > MAX_FILE_CHARS:
                raise Refused(f"files: {rel} has {len(text)} characters; at most {MAX_FILE_CHARS}")
            try:
                path = inside(root, rel)
            except OutsideDirectory as exc:
                raise Refused(f"files: {exc}") from exc
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        try:
            return plane.import_folder(actor, root / "catalog", root / "grants", schemas)
        except Refused as exc:
            raise Refused(exc.message.replace(f"{root}/", "")) from exc


def export_files(plane: ControlPlane) -> dict[str, str]:
    """The catalog and grants as the files the import reads, for keeping in git."""
    dump = lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)  # noqa: E731
    store = plane.store
    resources = store.resources()
    depts = {code: d.model_dump(mode="json") for code, d in store.departments().items()}
    grants = [c.grant.model_dump(mode="json", exclude_none=True) for c in store.cases()]
    files = {
        "catalog/departments.yaml": dump({"departments": depts}),
        "catalog/resources.yaml": dump(
            {"resources": [r.entry.model_dump(mode="json") for r in resources]}
        ),
        "grants/grants.yaml": dump({"grants": grants}),
    }
    for r in resources:
        files[f"schemas/{r.entry.schema_file}"] = (
            json.dumps(r.value_schema, ensure_ascii=False, indent=2) + "\n"
        )
    return files
