"""Bad configuration stops start-up with a message naming the key; secrets stay masked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from services.common.config_files import load_catalog, load_grants
from services.common.settings import REPO_ROOT, ConfigError, Settings, load_settings
from tests.unit.fixtures import SCHEMAS


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("GOVBUS_BATCH_SIZE", "lots")
    load_settings.cache_clear()
    with pytest.raises(ConfigError, match="GOVBUS_BATCH_SIZE"):
        load_settings()
    load_settings.cache_clear()


def test_bootstrap_needs_a_port():
    with pytest.raises(ValueError, match="host:port"):
        Settings(kafka_bootstrap="localhost")


def test_secrets_are_masked_when_printed():
    settings = Settings(mask_secret="very-secret-master-key")
    assert "very-secret-master-key" not in repr(settings)
    assert "very-secret-master-key" not in str(settings)
    assert Settings.printable_url("postgresql://u:pw@db/x") == "postgresql://u:***@db/x"


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "deploy" / "catalog", tmp_path / "catalog")
    shutil.copytree(REPO_ROOT / "deploy" / "grants", tmp_path / "grants")
    return tmp_path


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_the_shipped_catalog_and_grants_load():
    catalog = load_catalog(REPO_ROOT / "deploy" / "catalog", SCHEMAS)
    grants = load_grants(REPO_ROOT / "deploy" / "grants", catalog)
    assert len(catalog) >= 3 and len({g.consumer for g in grants}) >= 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["resources"][0].update(share_type="sometimes"),
            r"resource 'resident_population'.*share_type",
        ),
        (
            lambda d: d["resources"][0]["fields"].pop("phone"),
            r"resource 'resident_population'.*phone",
        ),
        (
            lambda d: d["resources"][1].update(provider="nobody"),
            r"'enterprise_registration'.*provider",
        ),
    ],
)
def test_bad_catalog_entry_names_entry_and_field(config_copy, change, message):
    _edit(config_copy / "catalog" / "resources.yaml", change)
    with pytest.raises(ConfigError, match=message):
        load_catalog(config_copy / "catalog", SCHEMAS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: g["masking"].pop("id_number"),
            r"grant 'mca-resident-population'.*id_number is L4",
        ),
        (
            lambda g: g.update(row_filter="__import__('os')"),
            r"grant 'mca-resident-population'.*row_filter",
        ),
        (
            lambda g: g["masking"].update(name={"method": "scramble"}),
            r"field 'masking.name.method'",
        ),
        (lambda g: g.update(resource="psb.nothing"), r"field 'resource': unknown resource"),
        (lambda g: g["masking"].update(id_number={"method": "redact"}), r"key field id_number"),
    ],
)
def test_bad_grant_names_grant_and_field(config_copy, change, message):
    _edit(config_copy / "grants" / "demo.yaml", lambda d: change(d["grants"][0]))
    catalog = load_catalog(config_copy / "catalog", SCHEMAS)
    with pytest.raises(ConfigError, match=message):
        load_grants(config_copy / "grants", catalog)


def test_not_shared_resource_cannot_be_granted(config_copy):
    _edit(
        config_copy / "catalog" / "resources.yaml",
        lambda d: d["resources"][0].update(share_type="not_shared"),
    )
    catalog = load_catalog(config_copy / "catalog", SCHEMAS)
    with pytest.raises(ConfigError, match="not shared"):
        load_grants(config_copy / "grants", catalog)
