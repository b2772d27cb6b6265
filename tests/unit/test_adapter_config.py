import pytest

from services.common.settings import ConfigError
from services.ingest.adapters.config import KINDS, AdapterBase, load_adapters, register_kind


class _Example(AdapterBase):
    table: str


@pytest.fixture(autouse=True)
def example_kind():
    register_kind("example", _Example)
    yield
    KINDS.pop("example", None)


def test_a_file_loads_as_its_kinds_model(tmp_path):
    (tmp_path / "hr-people.yaml").write_text("kind: example\nresource: hr.people\ntable: people\n")
    adapters = load_adapters(tmp_path)
    assert isinstance(adapters["hr-people"], _Example)
    assert adapters["hr-people"].provider == "hr"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("kind: nope\nresource: hr.people\n", "kind"),
        ("kind: example\nresource: people\ntable: t\n", "resource"),
        ("kind: example\nresource: hr.people\n", "table"),
        ("kind: example\nresource: hr.people\ntable: t\ncolour: red\n", "colour"),
        ("kind: [\n", "not valid YAML"),
    ],
)
def test_a_bad_file_stops_start_up_naming_file_and_field(tmp_path, text, named):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_adapters(tmp_path)
    assert "bad.yaml" in str(err.value) and named in str(err.value)
