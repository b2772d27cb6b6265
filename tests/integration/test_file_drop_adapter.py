"""The file-drop adapter on the real broker: a CSV snapshot with bad rows (each dead-lettered
naming the file, the row and the reason), the same file dropped twice published once, an XLSX
snapshot diffed into creates, updates and deletes, and a file without its key column failed."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from openpyxl import Workbook

from services.common.topic_reader import end_offsets
from services.common.topics import DLQ
from tests.integration.adapters import (
    dead_letters,
    enterprise_rows,
    metric,
    published,
    resource_id,
    start_adapter,
)
from tests.integration.conftest import wait_until

HEADERS = {  # the department's headers -> resource fields
    "统一社会信用代码": "credit_code",
    "企业名称": "name",
    "法定代表人": "legal_rep_name",
    "法定代表人身份证号": "legal_rep_id_number",
    "企业类型": "enterprise_type",
    "注册资本": "registered_capital",
    "成立日期": "established_date",
    "行政区划": "region_code",
    "住所": "address",
    "行业代码": "industry_code",
    "登记状态": "status",
    "更新时间": "updated_at",
}
FIELD_HEADER = {f: h for h, f in HEADERS.items()}


def as_line(row: dict) -> list:
    return [row[f] for f in HEADERS.values()] + ["备注"]


def drop(folder: Path, name: str, data: bytes) -> None:
    """As a department's upload does: written under a hidden name, then renamed into place."""
    hidden = folder / f".{name}.part"
    hidden.write_bytes(data)
    hidden.rename(folder / name)


def csv_bytes(lines: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([[*HEADERS, "序号"], *lines])
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(lines: list[list], tmp_path: Path) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append([*HEADERS, "序号"])
    for line in lines:
        sheet.append(line)
    path = tmp_path / "book.xlsx"
    book.save(path)
    return path.read_bytes()


def report(folder: Path, where: str, name: str) -> dict:
    path = folder / where / f"{name}.report.json"
    wait_until(path.exists, 60, f"{where}/{name}.report.json")
    assert (folder / where / name).exists() and not (folder / name).exists()
    return json.loads(path.read_text(encoding="utf-8"))


def test_snapshots_bad_rows_duplicates_and_failed_files(bus, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    spec = {
        "kind": "files",
        "resource": resource_id(bus),
        "directory": str(folder),
        "mode": "snapshot",
        "columns": HEADERS,
    }
    url = start_adapter(bus, tmp_path, "qiye-files", spec)
    dlq_start = end_offsets(bus.settings, [DLQ])
    rows = enterprise_rows(24, seed=3)
    good = [as_line(r) for r in rows[:20]]
    bad_code = as_line({**rows[20], "credit_code": rows[20]["credit_code"][:-1] + "0"})
    bad_capital = as_line({**rows[21], "registered_capital": "一百万"})
    no_key = as_line({**rows[22], "credit_code": ""})
    too_long = [*as_line(rows[23]), "stray cell"]
    if rows[20]["credit_code"].endswith("0"):  # keep the altered check digit wrong
        bad_code[0] = rows[20]["credit_code"][:-1] + "1"
    # Rows 2-11 good, 12 bad code, 13-17 good, 18 bad capital, 19-23 good, 24 no key, 25 long.
    lines = good[:10] + [bad_code] + good[10:15] + [bad_capital] + good[15:] + [no_key, too_long]
    drop(folder, "qiye-20260301.csv", csv_bytes(lines))

    first = report(folder, "done", "qiye-20260301.csv")
    assert first["published"] == {"c": 20}
    assert [(r["row"], r["reason"]) for r in first["rejected"]] == [
        (12, "invalid_credit_code"),
        (18, "schema_mismatch"),
        (24, "bad_row"),
        (25, "bad_row"),
    ]
    assert "序号" in first["ignored_columns"]
    wait_until(lambda: len(published(bus)) >= 20, 30, "20 creates")
    letters = dead_letters(bus, dlq_start)
    assert len(letters) == 4
    for (headers, body), rejected in zip(letters, first["rejected"], strict=True):
        assert headers["govbus.reason"] == rejected["reason"]
        assert json.loads(body)["record"]["position"].startswith("qiye-20260301.csv#")
        assert json.loads(body)["record"]["position"].endswith(f":row {rejected['row']}")
    assert rows[20]["credit_code"][:-1] not in letters[0][1].decode()  # the bad code masked

    # The same content again, under another name: nothing published twice.
    drop(folder, "qiye-20260301-again.csv", csv_bytes(lines))
    again = report(folder, "done", "qiye-20260301-again.csv")
    assert again["duplicate_of"] == "qiye-20260301.csv"

    # The next day's snapshot as XLSX: rows 0-1 gone, 2-4 changed, two new; bad rows mended.
    changed = [{**r, "status": "注销", "updated_at": r["updated_at"] + 1} for r in rows[2:5]]
    new = enterprise_rows(26, seed=3)[24:]
    day2 = [as_line(r) for r in changed + rows[5:20] + new]
    drop(folder, "qiye-20260302.xlsx", xlsx_bytes(day2, tmp_path))
    second = report(folder, "done", "qiye-20260302.xlsx")
    assert second["published"] == {"c": 2, "d": 2, "u": 3}
    assert second["rejected"] == []
    wait_until(lambda: len(published(bus)) >= 27, 30, "the diff")
    events = published(bus)
    assert len(events) == 27  # the duplicate file published nothing
    assert Counter(e["op"] for e in events) == {"c": 22, "u": 3, "d": 2}
    deleted = {e["before"]["credit_code"] for e in events if e["op"] == "d"}
    assert deleted == {rows[0]["credit_code"], rows[1]["credit_code"]}
    updates = [e for e in events if e["op"] == "u"]
    assert all(e["before"]["status"] != "注销" and e["after"]["status"] == "注销" for e in updates)

    # A file that cannot be read as a whole: failed/, with the reason, nothing published.
    drop(folder, "broken.csv", "企业名称,住所\nx,y\n".encode())
    failed = report(folder, "failed", "broken.csv")
    assert "key column" in failed["error"]
    assert metric(url, "govbus_adapter_events_published_total", adapter="qiye-files") == 27
    assert metric(url, "govbus_adapter_files_waiting", adapter="qiye-files") == 0
    assert len(published(bus)) == 27
