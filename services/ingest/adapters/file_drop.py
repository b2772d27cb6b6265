"""File drop: CSV and XLSX files a department drops into a watched directory.

A *snapshot* file holds the whole resource: it is diffed against the previous snapshot (the
rows last published per key, in the adapter's state) into creates, updates and deletes. A
*changes* file holds changes, one per row with its operation in ``op_column``. Headers are
renamed to fields by the adapter file's ``columns``. A bad row is dead-lettered with the file,
the row number and the reason; a file whose content was processed before is published no
second time. Each processed file moves to ``done/`` (or ``failed/`` when it could not be read
as a whole) with ``<file>.report.json`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator
from watchfiles import watch

from services.ingest.adapters.config import AdapterBase, register_kind
from services.ingest.adapters.output import NotAcknowledged, Rejected
from services.ingest.adapters.process import AdapterProcess
from services.ingest.adapters.rows import RowMapper
from services.ingest.adapters.state import Known, StateUpdate, key_json
from services.ingest.adapters.tables import SUFFIXES, Line, UnreadableFile, read_table
from services.ingest.publisher import Change
from services.ingest.validation import Problem

log = logging.getLogger("govbus.adapter.files")
OPS = {
    "c": "c", "u": "u", "d": "d",
    "create": "c", "insert": "c", "update": "u", "delete": "d",
    "新增": "c", "修改": "u", "删除": "d",
}  # fmt: skip
SETTLE_S = 1.0  # a file changed this recently may still be being written


class FileDropAdapter(AdapterBase):
    kind: Literal["files"]
    directory: Path  # relative: under GOVBUS_DATA_DIR
    mode: Literal["snapshot", "changes"]
    columns: dict[str, str] = {}  # file header -> resource field
    op_column: str | None = None  # changes files: the header of the operation column
    sheet: str | None = None  # XLSX: the sheet to read (default: the first)
    system: str | None = None

    @model_validator(mode="after")
    def _changes_name_their_op(self) -> FileDropAdapter:
        if self.mode == "changes" and not self.op_column:
            raise ValueError("op_column: a changes file needs the header of its operation column")
        return self


register_kind("files", FileDropAdapter)


@dataclass
class FilePlan:
    changes: list[Change] = field(default_factory=list)
    rejects: list[tuple[Change, Problem]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # position -> row number
    keys: dict[str, str] = field(default_factory=dict)  # position of a change -> its key


@dataclass(frozen=True)
class Dropped:
    name: str
    sha256: str
    lines: list[Line]


def _position(f: Dropped, what: str) -> str:
    return f"{f.name}#{f.sha256[:12]}:{what}"


def _reject(plan: FilePlan, change: Change, number: int, reason: str, detail: str) -> None:
    plan.rejects.append((change, Problem(reason, f"{change.position}: {detail}")))
    plan.rows[change.position] = number


def plan_file(
    f: Dropped,
    mode: str,
    known: dict[str, Known],
    mapper: RowMapper,
    op_column: str | None,
    resource: str,
    system: str,
) -> FilePlan:
    """The changes one file publishes, given the rows last published per key. Pure.

    A snapshot names each key once; a changes file may change a key several times, each
    change's ``before`` being the row as the one before left it."""
    plan, seen = FilePlan(), {}
    current = {k: v.row for k, v in known.items() if v.row is not None}
    for line in f.lines:
        position = _position(f, f"row {line.number}")
        record = mapper.record(line.cells)
        change = Change(resource, "u", None, record, position, system)
        if line.problem or mapper.missing_keys(record):
            detail = line.problem or f"key fields {mapper.missing_keys(record)} are empty"
            _reject(plan, change, line.number, "bad_row", detail)
            continue
        key = key_json(mapper.key(record))
        if mode == "snapshot" and key in seen:
            _reject(plan, change, line.number, "duplicate_key", f"same key as row {seen[key]}")
            continue
        seen[key] = line.number
        before = current.get(key)
        op = "u" if before is not None else "c"
        if mode == "changes":
            op = OPS.get(str(line.cells.get(op_column, "")).strip().lower(), "")
            if not op:
                given = line.cells.get(op_column)
                _reject(plan, change, line.number, "invalid_op", f"{op_column}={given!r}")
                continue
        elif before == record:
            continue  # unchanged since the last snapshot
        plan.rows[position], plan.keys[position] = line.number, key
        if op == "d":
            plan.changes.append(Change(resource, "d", before or record, None, position, system))
            current.pop(key, None)
        else:
            plan.changes.append(Change(resource, op, before, record, position, system))
            current[key] = record
    if mode == "snapshot":
        for key, row in sorted(current.items()):
            if key not in seen:
                position = _position(f, f"absent {key}")
                plan.changes.append(Change(resource, "d", row, None, position, system))
                plan.keys[position] = key
    return plan


def state_after(f: Dropped, plan: FilePlan, rejected: set[str]) -> StateUpdate:
    """What the file moves forward once Kafka acknowledged it: each key's last accepted change,
    and the file's content hash. A rejected change leaves its key as it was."""
    update = StateUpdate(files={f.sha256: f.name})
    for change in plan.changes:
        if change.position in rejected:
            continue
        key = plan.keys[change.position]
        if change.op == "d":
            update.put.pop(key, None)
            update.drop.add(key)
        else:
            update.drop.discard(key)
            update.put[key] = Known(change.position, change.after)
    return update


def report(f: Dropped, plan: FilePlan, rejected: dict[str, Rejected]) -> dict[str, Any]:
    """The short report written beside the processed file."""
    published = Counter(c.op for c in plan.changes if c.position not in rejected)
    bad = sorted((plan.rows.get(p, 0), r.reason, r.detail) for p, r in rejected.items())
    return {
        "file": f.name,
        "sha256": f.sha256,
        "rows": len(f.lines),
        "published": dict(sorted(published.items())),
        "rejected": [{"row": n, "reason": r, "detail": d} for n, r, d in bad],
    }


class FileDropRun:
    def __init__(self, cfg: FileDropAdapter, proc: AdapterProcess) -> None:
        self.cfg, self.proc = cfg, proc
        self.system = cfg.system or proc.name
        self.inbox = (
            cfg.directory if cfg.directory.is_absolute() else proc.settings.data_dir / cfg.directory
        )
        for sub in ("", "done", "failed"):
            (self.inbox / sub).mkdir(parents=True, exist_ok=True)
        labels = proc.name
        proc.metrics.files_waiting.labels(labels).set_function(lambda: len(self.waiting()))
        proc.metrics.lag.labels(labels).set_function(self.oldest_age)

    def waiting(self) -> list[Path]:
        """Files to process, oldest first (hidden names are uploads still being written)."""
        found = []
        for p in self.inbox.iterdir():
            if p.suffix.lower() not in SUFFIXES or p.name.startswith((".", "~$")):
                continue
            try:  # metrics scrapes call this while a file is being moved away
                found.append((p.stat().st_mtime, p.name, p))
            except FileNotFoundError:
                continue
        return [p for _, _, p in sorted(found)]

    def oldest_age(self) -> float:
        for path in self.waiting():
            try:
                return time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
        return 0.0

    def process_waiting(self) -> None:
        """Every settled file, oldest first; with Kafka away, the file stays for the next round."""
        for path in self.waiting():
            if self.proc.stopping.is_set() or time.time() - path.stat().st_mtime < SETTLE_S:
                continue
            try:
                self.process(path)
            except NotAcknowledged as exc:
                log.warning("%s: not acknowledged, retried next round: %s", path.name, exc)
                return

    def process(self, path: Path) -> None:
        raw = path.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        earlier = self.proc.state.file_seen(sha)
        if earlier is not None:
            self._finish(path, "done", {"file": path.name, "sha256": sha, "duplicate_of": earlier})
            return
        try:
            table = read_table(path, self.cfg.sheet)
            mapper = self._mapper(table.header)
            if self.cfg.mode == "snapshot" and not table.lines:
                raise UnreadableFile("no rows: an empty snapshot would delete every record")
        except UnreadableFile as exc:
            self._finish(path, "failed", {"file": path.name, "sha256": sha, "error": str(exc)})
            return
        f = Dropped(path.name, sha, table.lines)
        plan = plan_file(
            f,
            self.cfg.mode,
            self._known(f, mapper),
            mapper,
            self.cfg.op_column,
            self.cfg.resource,
            self.system,
        )
        result = self.proc.output.send(plan.changes, plan.rejects)
        rejected = {r.position: r for r in result.rejected}
        self.proc.state.commit(state_after(f, plan, set(rejected)))
        body = report(f, plan, rejected)
        body["ignored_columns"] = mapper.ignored(table.header)
        self._finish(path, "done", body)
        self.proc.output.succeeded()

    def _mapper(self, header: list[str]) -> RowMapper:
        record = self.proc.output.publisher.record(self.cfg.resource)
        if record is None:
            raise UnreadableFile(f"resource {self.cfg.resource} is not in the catalog")
        mapper = RowMapper.build(record, self.cfg.columns)
        present = {mapper.field(h) for h in header}
        missing = [mapper.source_column(k) for k in mapper.key_fields if k not in present]
        if missing:
            raise UnreadableFile(f"header has no key column(s) {missing}")
        if self.cfg.mode == "changes" and self.cfg.op_column not in header:
            raise UnreadableFile(f"header has no operation column {self.cfg.op_column!r}")
        return mapper

    def _known(self, f: Dropped, mapper: RowMapper) -> dict[str, Known]:
        """Every key for a snapshot (its diff needs them all), else the keys the file names."""
        if self.cfg.mode == "snapshot":
            return dict(self.proc.state.all_known())
        records = (mapper.record(line.cells) for line in f.lines)
        return self.proc.state.known(
            key_json(mapper.key(r)) for r in records if not mapper.missing_keys(r)
        )

    def _finish(self, path: Path, where: str, body: dict[str, Any]) -> None:
        target = self.inbox / where / path.name
        if target.exists():  # a file of the same name processed before: keep both
            target = target.with_name(f"{path.stem}.{int(time.time() * 1000)}{path.suffix}")
        report_path = target.with_name(target.name + ".report.json")
        report_path.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
        path.rename(target)
        log.info("%s -> %s/: %s", path.name, where, json.dumps(body, ensure_ascii=False)[:300])


def run_file_drop(cfg: FileDropAdapter, proc: AdapterProcess) -> None:
    run = FileDropRun(cfg, proc)
    log.info("watching %s for %s (%s files)", run.inbox, cfg.resource, cfg.mode)
    run.process_waiting()
    for _ in watch(
        run.inbox,
        stop_event=proc.stopping,
        recursive=False,
        yield_on_timeout=True,
        rust_timeout=1000,
    ):
        run.process_waiting()
