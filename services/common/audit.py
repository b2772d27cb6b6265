"""The audit trail of shares: who received which records, when, under which grant.

Records go to ``govbus.audit`` as JSON. Every writer (one router process, from its start to its
end) keeps a chain of its own, named by a random id drawn at start-up: the records carry the
chain id, a sequence number from 0, the MAC of the record before and their own MAC, an
HMAC-SHA256 keyed with the authority's audit key over all of that and the body. Two processes
never share a chain, so several routers in one group never fork one, and a process that dies
leaves a chain that simply ends. Records are keyed by chain id, so a chain stays on one
partition, in order. Editing, removing, reordering or replaying a record breaks its chain
there; whoever can write the topic but lacks the key cannot seal a record that verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
SEAL_FIELDS = ("chain", "seq", "prev", "mac")


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def mac_of(key: bytes, body: Mapping[str, Any], chain: str, seq: int, prev: str) -> str:
    """The record's MAC: its chain, place and predecessor bound to its body."""
    sealed = {**body, "chain": chain, "seq": seq, "prev": prev}
    return hmac.new(key, _canonical(sealed), hashlib.sha256).hexdigest()


@dataclass
class AuditChain:
    """One writer's chain: seals each body after the one before. Not thread-safe (the writer
    holds a lock around seal and produce, so the chain's order is the log's)."""

    key: bytes
    chain: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    head: str = GENESIS

    def seal(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mac = mac_of(self.key, body, self.chain, self.seq, self.head)
        record = {**body, "chain": self.chain, "seq": self.seq, "prev": self.head, "mac": mac}
        self.seq += 1
        self.head = mac
        return record


def share_record(
    grant_id: str,
    consumer: str,
    resource: str,
    deliveries: list[tuple[str, Mapping[str, Any]]],
    ts_ms: int,
    kind: str = "live",
    fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One batch of deliveries under one grant: event ids and the keys as delivered (masked).

    ``kind`` is "live" for routed changes, "backfill" for the current state sent on activation.
    ``fields``: each field delivered and its masking method (the citizen data-use ledger).
    """
    body = {
        "kind": kind,
        "grant_id": grant_id,
        "consumer": consumer,
        "resource": resource,
        "ts_ms": ts_ms,
        "count": len(deliveries),
        "event_ids": [event_id for event_id, _ in deliveries],
        "keys": [dict(key) for _, key in deliveries],
    }
    if fields is not None:
        body["fields"] = dict(fields)
    return body


Position = tuple[str, int, int]  # (topic, partition, offset) of a record on the audit topic


@dataclass(frozen=True)
class Break:
    """The first record of a chain that does not verify, and why."""

    chain: str
    position: Position
    why: str

    def __str__(self) -> str:
        topic, partition, offset = self.position
        return f"chain {self.chain}: {topic}[{partition}]@{offset}: {self.why}"


@dataclass
class ChainReport:
    chains: dict[str, int] = field(default_factory=dict)  # chain id -> records that verified
    breaks: list[Break] = field(default_factory=list)  # per broken chain, its first break
    covered: set[tuple[str, str]] = field(default_factory=set)  # (grant id, event id) audited

    @property
    def ok(self) -> bool:
        return not self.breaks


def parse_record(raw: bytes | None) -> dict[str, Any] | str:
    """The record, or why it cannot be one."""
    try:
        record = json.loads(raw or b"")
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [f for f in SEAL_FIELDS if f not in record]
    return f"not sealed: lacks {', '.join(missing)}" if missing else record


def verify_chains(records: Iterable[tuple[Position, bytes | None]], key: bytes) -> ChainReport:
    """Check every chain in ``records`` (audit topic order) against the audit key.

    Each chain must start at seq 0 from the genesis, go on one by one, each record naming its
    predecessor's MAC and carrying its own valid MAC. A chain is reported at its first bad
    record (later records of a broken chain are not trusted, so not counted as covering).
    """
    report = ChainReport()
    heads: dict[str, tuple[int, str]] = {}  # chain -> (next seq, MAC of the last record)
    broken: set[str] = set()
    for position, raw in records:
        record = parse_record(raw)
        if isinstance(record, str):
            report.breaks.append(Break("?", position, record))
            continue
        chain = str(record["chain"])
        if chain in broken:
            continue
        why = _link_problem(record, heads.get(chain, (0, GENESIS)), key)
        if why is not None:
            broken.add(chain)
            report.breaks.append(Break(chain, position, why))
            continue
        heads[chain] = (record["seq"] + 1, record["mac"])
        report.chains[chain] = report.chains.get(chain, 0) + 1
        grant = record.get("grant_id")
        report.covered.update((grant, e) for e in record.get("event_ids", ()))
    for chain in broken:
        report.chains.setdefault(chain, 0)
    return report


def _link_problem(record: Mapping[str, Any], head: tuple[int, str], key: bytes) -> str | None:
    seq, prev = head
    body = {k: v for k, v in record.items() if k not in SEAL_FIELDS}
    expected = mac_of(key, body, record["chain"], record["seq"], record["prev"])
    if not hmac.compare_digest(str(record["mac"]), expected):
        return "MAC does not match the record: edited, or sealed without the audit key"
    if record["seq"] != seq:
        return f"sequence {record['seq']} where {seq} was due (a record removed or replayed)"
    if record["prev"] != prev:
        return "does not follow the record before it in its chain"
    return None
