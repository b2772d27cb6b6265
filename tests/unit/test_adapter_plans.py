"""The adapters' pure parts: source values to Avro, what a polled page or a dropped file
publishes, the state a batch moves forward, and a pushed item as a change."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pytest

from services.catalog.ingest_gateway import to_change
from services.common import config_files
from services.common.catalog_feed import CatalogRecord
from services.common.settings import REPO_ROOT, ConfigError, Settings
from services.ingest.adapters.command import configured_adapters
from services.ingest.adapters.config import load_adapters
from services.ingest.adapters.file_drop import Dropped, plan_file, state_after
from services.ingest.adapters.polling import (
    Polled,
    after_rejects,
    cursor_floor,
    decode_cursor,
    encode_cursor,
    plan_key_diff,
    plan_page,
)
from services.ingest.adapters.rows import RowMapper, convert
from services.ingest.adapters.state import Known, key_json
from services.ingest.adapters.tables import Line, UnreadableFile, read_table
from services.ingest.validation import Problem

RES = "samr.enterprise_registration"


def catalog_record(resource_id: str) -> CatalogRecord:
    deploy = REPO_ROOT / "deploy"
    records, _ = config_files.file_records(
        deploy / "catalog", deploy / "grants", REPO_ROOT / "schemas" / "avro"
    )
    return next(r for r in records if r.resource_id == resource_id)


@pytest.fixture(scope="module")
def mapper() -> RowMapper:
    return RowMapper.build(catalog_record(RES), {"tyshxydm": "credit_code", "gxsj": "updated_at"})


def test_values_convert_to_the_field_type_or_pass_unchanged():
    long, double, text = frozenset({"long"}), frozenset({"double"}), frozenset({"string"})
    when = dt.datetime(2026, 3, 1, 8, 0, 0)
    assert convert(when, long) == 1772352000000  # naive: UTC
    assert convert(when.replace(tzinfo=dt.timezone(dt.timedelta(hours=8))), long) == (
        1772352000000 - 8 * 3600 * 1000
    )
    assert convert("2026-03-01 08:00:00", long) == 1772352000000
    assert convert("1772352000000", long) == 1772352000000
    assert convert(decimal.Decimal("1000.50"), double) == 1000.5
    assert convert(340102, text) == "340102"  # a code a spreadsheet read as a number
    assert convert(340102.0, text) == "340102"
    assert convert(dt.date(2020, 1, 2), text) == "2020-01-02"
    assert convert("  ", text) is None
    assert convert("一百万", double) == "一百万"  # left for validation to reject, naming it
    assert convert("是", frozenset({"boolean"})) is True


def test_mapper_renames_and_leaves_out_what_the_resource_lacks(mapper):
    record = mapper.record({"tyshxydm": "X1", "name": "n", "is_deleted": False})
    assert record == {"credit_code": "X1", "name": "n"}
    assert mapper.ignored(["tyshxydm", "is_deleted", "序号"]) == ["is_deleted", "序号"]
    assert mapper.source_column("credit_code") == "tyshxydm"


def test_cursors_round_trip_and_the_floor_is_the_overlap_below():
    when = dt.datetime(2026, 3, 1, 8, 0, 0)
    assert decode_cursor(encode_cursor(when)) == when
    assert decode_cursor(encode_cursor(17)) == 17
    assert cursor_floor(when, 30) == when - dt.timedelta(seconds=30)
    assert cursor_floor(17, 5) == 12
    assert cursor_floor(None, 5) is None


def polled(code: str, at: int, deleted: bool = False, **extra) -> Polled:
    return Polled({"credit_code": code, "name": f"n{code}", **extra}, at, deleted)


def test_a_page_skips_what_was_published_at_the_same_cursor(mapper):
    k = lambda code: key_json({"credit_code": code})  # noqa: E731
    known = {k("A"): Known(encode_cursor(5), {"credit_code": "A", "name": "old"})}
    known[k("B")] = Known(encode_cursor(7), {"credit_code": "B", "name": "nB"})
    page = [polled("A", 9), polled("B", 7), polled("C", 9), polled("D", 9, deleted=True)]
    plan = plan_page(page, known, mapper, RES, "sys", "t")
    assert [(c.op, (c.after or c.before)["credit_code"]) for c in plan.changes] == [
        ("u", "A"),
        ("c", "C"),
    ]
    assert plan.changes[0].before == {"credit_code": "A", "name": "old"}
    assert plan.update.drop == {k("D")}  # deleted before it was ever published: nothing sent
    assert plan.changes[0].position == f"t:{encode_cursor(9)}:{k('A')}"
    # A soft delete of a published row sends its last published image.
    gone = plan_page([polled("B", 8, deleted=True)], known, mapper, RES, "sys", "t")
    assert [(c.op, c.before["name"]) for c in gone.changes] == [("d", "nB")]


def test_a_rejected_row_keeps_its_version_and_the_row_last_published(mapper):
    k = key_json({"credit_code": "A"})
    known = {k: Known(encode_cursor(5), {"credit_code": "A", "name": "old"})}
    plan = plan_page([polled("A", 9)], known, mapper, RES, "sys", "t")
    update = after_rejects(plan, {plan.changes[0].position}, known)
    assert update.put[k] == Known(encode_cursor(9), {"credit_code": "A", "name": "old"})


def test_missing_keys_are_rejects_and_the_key_diff_deletes_what_is_gone(mapper):
    plan = plan_page([Polled({"name": "x"}, 3, False)], {}, mapper, RES, "s", "t")
    assert [p.reason for _, p in plan.rejects] == ["missing_key"]
    ka, kb = key_json({"credit_code": "A"}), key_json({"credit_code": "B"})
    known = {ka: Known("v1", {"credit_code": "A"}), kb: Known("v2", None)}
    diff = plan_key_diff(set(), known, RES, "s", "t")
    assert [(c.op, c.before) for c in diff.changes] == [("d", {"credit_code": "A"})]
    assert diff.update.drop == {ka, kb}


def lines(*rows: dict, start: int = 2) -> list[Line]:
    return [Line(start + i, row) for i, row in enumerate(rows)]


def test_a_snapshot_is_diffed_into_creates_updates_and_deletes(mapper):
    k = lambda code: key_json({"credit_code": code})  # noqa: E731
    known = {
        k("A"): Known("p", {"credit_code": "A", "name": "a"}),
        k("B"): Known("p", {"credit_code": "B", "name": "b"}),
        k("C"): Known("p", {"credit_code": "C", "name": "c"}),
    }
    f = Dropped(
        "day2.csv",
        "ab" * 32,
        lines(
            {"tyshxydm": "A", "name": "a"},
            {"tyshxydm": "B", "name": "b2"},
            {"tyshxydm": "D", "name": "d"},
            {"tyshxydm": "D", "name": "d again"},
            {"tyshxydm": "", "name": "no key"},
        ),
    )
    plan = plan_file(f, "snapshot", known, mapper, None, RES, "sys")
    got = [(c.op, (c.after or c.before)["credit_code"]) for c in plan.changes]
    assert got == [("u", "B"), ("c", "D"), ("d", "C")]
    assert [(p.reason, c.position) for c, p in plan.rejects] == [
        ("duplicate_key", "day2.csv#abababababab:row 5"),
        ("bad_row", "day2.csv#abababababab:row 6"),
    ]
    update = state_after(f, plan, rejected={plan.changes[0].position})
    assert k("B") not in update.put  # rejected: B stays as it was
    assert update.drop == {k("C")} and set(update.put) == {k("D")}
    assert update.files == {"ab" * 32: "day2.csv"}


def test_a_changes_file_chains_changes_of_one_key(mapper):
    f = Dropped(
        "c.csv",
        "cd" * 32,
        lines(
            {"op": "新增", "tyshxydm": "A", "name": "a"},
            {"op": "修改", "tyshxydm": "A", "name": "a2"},
            {"op": "删除", "tyshxydm": "A", "name": "a2"},
            {"op": "?", "tyshxydm": "B", "name": "b"},
        ),
    )
    plan = plan_file(f, "changes", {}, mapper, "op", RES, "sys")
    assert [(c.op, c.before and c.before["name"]) for c in plan.changes] == [
        ("c", None),
        ("u", "a"),
        ("d", "a2"),
    ]
    assert [p.reason for _, p in plan.rejects] == ["invalid_op"]
    update = state_after(f, plan, set())
    assert update.drop == {key_json({"credit_code": "A"})} and not update.put


def test_csv_in_gb18030_and_bad_files(tmp_path: Path):
    path = tmp_path / "a.csv"
    path.write_bytes("统一社会信用代码,企业名称\nX1,某公司,多余\n\nX2,另一公司\n".encode("gb18030"))
    table = read_table(path)
    assert table.header == ["统一社会信用代码", "企业名称"]
    assert [(ln.number, ln.problem is not None) for ln in table.lines] == [(2, True), (4, False)]
    (tmp_path / "b.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(UnreadableFile):
        read_table(tmp_path / "b.xlsx")


def test_a_pushed_item_becomes_a_change_or_a_problem():
    change = to_change(RES, "http:u", "b1", 3, {"op": "c", "after": {"x": 1}})
    assert change.position == "http:b1:3" and change.after == {"x": 1}
    assert to_change(RES, "s", "b", 0, {"op": "c", "position": "p9"}).position == "p9"
    assert isinstance(to_change(RES, "s", "b", 0, [1]), Problem)
    assert to_change(RES, "s", "b", 0, {"op": "c", "colour": 1}).reason == "invalid_envelope"
    assert to_change(RES, "s", "b", 0, {"op": "c", "position": 5}).reason == "invalid_envelope"


def test_the_deploy_adapter_files_load(tmp_path: Path):
    adapters = configured_adapters(Settings())
    assert adapters["samr-files"].kind == "files"
    (tmp_path / "x.yaml").write_text("kind: files\nresource: a.b\ndirectory: d\nmode: changes\n")
    with pytest.raises(ConfigError, match="x.yaml.*op_column"):
        load_adapters(tmp_path)


def test_the_demo_sample_file_plans_its_changes():
    cfg = configured_adapters(Settings())["samr-files"]
    table = read_table(REPO_ROOT / "deploy" / "adapters" / "samples" / "samr-changes.csv")
    mapper = RowMapper.build(catalog_record(cfg.resource), cfg.columns)
    assert mapper.ignored(table.header) == [cfg.op_column]
    f = Dropped("samr-changes.csv", "0" * 64, table.lines)
    plan = plan_file(f, cfg.mode, {}, mapper, cfg.op_column, cfg.resource, "s")
    assert [c.op for c in plan.changes] == ["c", "c", "c", "u", "c"] and not plan.rejects
    assert plan.changes[3].before == plan.changes[0].after
