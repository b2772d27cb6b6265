"""The demo's row-by-row comparison of a source table with the central store."""

from __future__ import annotations

from services.common.catalog_feed import CatalogRecord
from services.common.config_files import file_records
from services.common.settings import REPO_ROOT
from services.demo_rows import compare_resource, shown
from services.ingest.demo_data import RESIDENTS, DemoFeed
from services.row_compare import compare_rows

DEPLOY = REPO_ROOT / "deploy"


def residents() -> CatalogRecord:
    resources, _ = file_records(DEPLOY / "catalog", DEPLOY / "grants", REPO_ROOT / "schemas/avro")
    return next(r for r in resources if r.resource_id == RESIDENTS)


def test_equal_sets_compare_equal() -> None:
    rows = {("a",): {"k": "a", "v": 1}, ("b",): {"k": "b", "v": 2}}
    c = compare_rows(rows, dict(rows))
    assert (c.source, c.store, c.equal) == (2, 2, 2)
    assert c.same and not (c.missing or c.extra or c.different)


def test_missing_extra_and_different_keys_are_named_in_key_order() -> None:
    source = {(k,): {"k": k, "v": 1} for k in ("d", "a", "c", "b", "e")}
    store = {(k,): {"k": k, "v": 1} for k in ("a", "c", "x", "y")}
    store[("c",)] = {"k": "c", "v": 2}
    store[("e",)] = {"k": "e", "v": 1}
    c = compare_rows(source, store)
    assert c.missing == [("b",), ("d",)]
    assert c.extra == [("x",), ("y",)]
    assert c.different == [("c",)]
    assert (c.source, c.store, c.equal) == (5, 5, 2)
    assert not c.same


def test_a_value_changed_to_null_counts_as_different() -> None:
    c = compare_rows({(1, "x"): {"phone": "138"}}, {(1, "x"): {"phone": None}})
    assert c.different == [(1, "x")] and c.equal == 0


def test_source_rows_that_fail_their_checks_are_refused_not_missing() -> None:
    record = residents()
    feed = DemoFeed(seed=3, invalid_rate=0.3)
    created = [c.after for c in feed.changes(400) if c.op == "c" and c.resource == RESIDENTS]
    key = record.resource.key_fields[0]
    result = compare_resource(created, {}, record)
    assert result.refused > 0  # the demo's bad ID numbers
    assert result.refused + len(result.comparison.missing) == len({r[key] for r in created})
    stored = {(r[key],): r for r in created}
    assert compare_resource(created, stored, record).comparison.extra  # refused yet stored


def test_keys_are_shown_as_a_dead_letter_shows_them() -> None:
    record = residents()
    ids = [("110101199003074514",), ("110101199003074530",), ("110101199003074557",)]
    text = shown(record.resource, ids, n=2)
    assert "110101199003074514" not in text and text.startswith("110101")
    assert text.endswith("(+1)")
