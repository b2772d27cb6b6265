"""``govbus audit verify``: every audit chain intact, and every delivery on one.

Reads the whole of ``govbus.audit`` and checks each writer's HMAC chain with the authority's
audit key (``common/audit.py``), then reads every ``deliver.*`` topic and checks that each
delivery (by the grant and event id it carries) is named by an audit record of a chain that
verified. Exit status 0 when both hold, 1 otherwise, with the first problems named.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from services.common.audit import ChainReport, Position, verify_chains
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec, DecodeError
from services.common.settings import Settings, load_settings
from services.common.topic_reader import end_offsets, read_range, topic_names
from services.common.topics import AUDIT

DELIVERY_TOPICS = r"^deliver\."
SHOWN = 10  # problems named in the summary, of each kind


@dataclass(frozen=True)
class Delivery:
    position: Position
    grant_id: str | None
    event_id: str | None  # None: the record could not be read
    why: str = ""


@dataclass
class Verdict:
    chains: ChainReport
    deliveries: int = 0
    uncovered: list[Delivery] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chains.ok and not self.uncovered

    def summary(self) -> list[str]:
        c = self.chains
        lines = [
            f"audit: {sum(c.chains.values())} records verified on {len(c.chains)} chains, "
            f"{len(c.breaks)} broken",
            f"deliveries: {self.deliveries} read, {len(self.uncovered)} not on an audit chain",
        ]
        lines += [f"BROKEN {b}" for b in c.breaks[:SHOWN]]
        for d in self.uncovered[:SHOWN]:
            topic, partition, offset = d.position
            what = d.why or f"grant {d.grant_id} event {d.event_id}"
            lines.append(f"UNCOVERED {topic}[{partition}]@{offset}: {what}")
        return lines


def uncovered(deliveries: Iterable[Delivery], covered: set[tuple[str, str]]) -> list[Delivery]:
    """Deliveries no verified audit record names (unreadable ones included)."""
    return [d for d in deliveries if d.event_id is None or (d.grant_id, d.event_id) not in covered]


def _position(msg) -> Position:
    return (msg.topic(), msg.partition(), msg.offset())


def read_deliveries(
    settings: Settings, codec: AvroCodec, pattern: re.Pattern[str]
) -> Iterator[Delivery]:
    topics = [t for t in topic_names(settings) if pattern.match(t)]
    for msg in read_range(settings, {}, end_offsets(settings, topics)):
        if msg.value() is None:  # a tombstone carries no delivery
            continue
        try:
            value = codec.decode(msg.value())
            yield Delivery(_position(msg), value["grant_id"], value["event_id"])
        except (DecodeError, KeyError, TypeError) as exc:
            yield Delivery(_position(msg), None, None, f"unreadable delivery: {exc}")


def verify_bus(
    settings: Settings, deliveries: str = DELIVERY_TOPICS, audit_topic: str = AUDIT
) -> Verdict:
    """Every chain on ``audit_topic``, and every delivery on the topics ``deliveries`` (a
    regular expression) matches."""
    key = settings.audit_key.get_secret_value().encode()
    audit = read_range(settings, {}, end_offsets(settings, [audit_topic]))
    chains = verify_chains(((_position(m), m.value()) for m in audit), key)
    verdict = Verdict(chains)
    codec = AvroCodec(make_registry_client(settings))
    read = list(read_deliveries(settings, codec, re.compile(deliveries)))
    verdict.deliveries = len(read)
    verdict.uncovered = uncovered(read, chains.covered)
    return verdict


def _verify(args: argparse.Namespace) -> int:
    verdict = verify_bus(load_settings(), args.deliveries)
    print("\n".join(verdict.summary()))
    print("audit verify: OK" if verdict.ok else "audit verify: FAILED")
    return 0 if verdict.ok else 1


def audit_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``audit`` command group (created once): other modules add their commands to it."""
    group = sub.choices.get("audit")
    if group is None:
        group = sub.add_parser("audit", help="the audit trail of shares (authority)")
        group.set_defaults(commands=group.add_subparsers(dest="audit_command", required=True))
    return group.get_default("commands")


def add_commands(sub: argparse._SubParsersAction) -> None:
    audit = audit_commands(sub)
    verify = audit.add_parser(
        "verify",
        help="check every audit chain with the audit key, and that every delivery is audited",
    )
    verify.add_argument(
        "--deliveries",
        default=DELIVERY_TOPICS,
        metavar="REGEX",
        help="the delivery topics to check (default: every deliver.* topic)",
    )
    verify.set_defaults(func=_verify)
