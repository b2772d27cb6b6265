"""Read a dropped CSV or XLSX file as a header and numbered rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

SUFFIXES = (".csv", ".xlsx")


class UnreadableFile(ValueError):
    """The file as a whole cannot be read: it goes to ``failed/`` with this reason."""


@dataclass(frozen=True)
class Line:
    number: int  # the row number a spreadsheet shows (the header is row 1)
    cells: dict[str, Any]
    problem: str | None = None  # why the line cannot be a row at all


@dataclass(frozen=True)
class SheetRows:
    header: list[str]
    lines: list[Line]


def read_table(path: Path, sheet: str | None = None) -> SheetRows:
    if path.suffix.lower() == ".csv":
        lines = list(csv.reader(io.StringIO(_decode(path.read_bytes()))))
    elif path.suffix.lower() == ".xlsx":
        lines = _xlsx_lines(path, sheet)
    else:
        raise UnreadableFile(f"{path.name}: expected one of {SUFFIXES}")
    if not lines:
        raise UnreadableFile("the file is empty: no header row")
    header = [str(h).strip() if h is not None else "" for h in lines[0]]
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise UnreadableFile(f"header row: column(s) {blank} have no name")
    out = []
    for number, cells in enumerate(lines[1:], start=2):
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
            continue  # blank line
        extra = [c for c in cells[len(header) :] if c not in (None, "")]
        problem = f"{len(cells)} cells, the header names {len(header)}" if extra else None
        out.append(Line(number, dict(zip(header, cells, strict=False)), problem))
    return SheetRows(header, out)


def _decode(raw: bytes) -> str:
    # Spreadsheets saved as CSV here come as UTF-8 (often with a BOM) or GB18030.
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise UnreadableFile("text is neither UTF-8 nor GB18030") from exc


def _xlsx_lines(path: Path, sheet: str | None) -> list[tuple]:
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
        raise UnreadableFile(f"not a readable XLSX workbook: {exc}") from exc
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise UnreadableFile(f"no sheet {sheet!r} (there: {book.sheetnames})")
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        return [tuple(r) for r in ws.iter_rows(values_only=True)]
    finally:
        book.close()
