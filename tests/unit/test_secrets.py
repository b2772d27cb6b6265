"""Secrets and paths: demo secrets refused outside demo mode, secret files private from their
first byte, and paths of import and export kept inside their directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.catalog import CatalogEntry
from services.common.config_files import load_catalog
from services.common.paths import OutsideDirectory, inside
from services.common.private_files import write_private
from services.common.schemas import check_entry_schema
from services.common.settings import REPO_ROOT, ConfigError, Settings
from services.control_client import ApiError, read_import, write_export
from tests.unit.fixtures import SCHEMAS


def catalog_entry() -> CatalogEntry:
    return load_catalog(REPO_ROOT / "deploy" / "catalog", SCHEMAS)["psb.resident_population"]


def test_a_service_refuses_the_public_demo_secrets_and_names_them():
    with pytest.raises(ConfigError) as refused:
        Settings().refuse_demo_secrets()
    assert "GOVBUS_MASK_SECRET" in str(refused.value)
    assert "GOVBUS_REGISTRY_PASSWORD" in str(refused.value)
    assert "GOVBUS_AUDIT_KEY" in str(refused.value)
    assert "GOVBUS_DEMO_MODE" in str(refused.value)
    with pytest.raises(ConfigError, match="GOVBUS_REGISTRY_PASSWORD") as one:
        Settings(mask_secret="a-secret-of-our-own", audit_key="k").refuse_demo_secrets()
    assert "GOVBUS_MASK_SECRET" not in str(one.value)


def test_demo_mode_or_secrets_of_ones_own_start():
    Settings(demo_mode=True).refuse_demo_secrets()
    Settings(
        mask_secret="m-secret", registry_password="r-secret", audit_key="a-secret"
    ).refuse_demo_secrets()


def test_secrets_stay_masked_when_settings_are_printed():
    printed = repr(Settings(mask_secret="m-secret", registry_password="r-secret", audit_key="a-k"))
    assert "m-secret" not in printed and "r-secret" not in printed and "a-k" not in printed


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_file_is_created_private_whatever_the_umask(tmp_path):
    old = os.umask(0)  # a umask that would leave a plainly created file world-readable
    try:
        path = tmp_path / "new-dir" / "authority.token"
        write_private(path, "s3cret\n")
        wider = tmp_path / "wider.token"
        wider.write_text("old\n")
        wider.chmod(0o644)
        write_private(wider, "s3cret\n")
    finally:
        os.umask(old)
    assert _mode(path) == 0o600 and path.read_text() == "s3cret\n"
    assert _mode(path.parent) == 0o700
    # An existing file with a wider mode is replaced by a private one, not rewritten in place.
    assert _mode(wider) == 0o600 and wider.read_text() == "s3cret\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new-dir", "wider.token"]


@pytest.mark.parametrize(
    "rel", ["../x.avsc", "schemas/../../x.avsc", "/etc/passwd", "..\\x.avsc", "C:\\x.avsc"]
)
def test_a_path_that_leaves_its_directory_is_refused(tmp_path, rel):
    with pytest.raises(OutsideDirectory):
        inside(tmp_path, rel)


def test_a_symbolic_link_out_of_the_directory_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    assert inside(root, "schemas/a.avsc") == root / "schemas" / "a.avsc"
    with pytest.raises(OutsideDirectory, match="symbolic link"):
        inside(root, "out/a.avsc")


def test_export_writes_nothing_when_one_file_would_land_outside(tmp_path):
    root = tmp_path / "export"
    files = {"catalog/resources.yaml": "resources: []\n", "schemas/../../escaped.avsc": "{}"}
    with pytest.raises(ApiError, match=r"climbs out"):
        write_export(root, files)
    assert not (tmp_path / "escaped.avsc").exists() and not root.exists()
    write_export(root, {"catalog/resources.yaml": "resources: []\n"})
    assert (root / "catalog" / "resources.yaml").read_text() == "resources: []\n"


def test_import_reads_no_file_through_a_link_out_of_its_directory(tmp_path):
    root = tmp_path / "import"
    (root / "catalog").mkdir(parents=True)
    (tmp_path / "secret.yaml").write_text("departments: {}\n")
    (root / "catalog" / "departments.yaml").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(ApiError, match="symbolic link"):
        read_import(root)


def test_a_catalog_entry_whose_schema_file_leaves_the_schemas_directory_is_refused():
    good = catalog_entry().model_dump()
    with pytest.raises(ValidationError, match="schema_file"):
        CatalogEntry.model_validate({**good, "schema_file": "../../x.avsc"})
    sneaked = catalog_entry().model_copy(update={"schema_file": "../deploy/x.avsc"})
    assert "climbs out" in (check_entry_schema(sneaked, SCHEMAS) or "")
