"""The citizen data-use ledger: ``govbus audit who-got --id-number X`` (the authority only).

Every share is on the audit trail (``govbus.audit``) with the record keys as delivered: in
clear where the grant keeps the key, else the consumer's HMAC pseudonym (key fields are only
ever kept or hmac-masked). So the ledger computes, for each consumer on the trail, its
pseudonym of X under its own key (``masking.consumer_key`` from the mask secret) and matches
every delivered key against X and that pseudonym. It finds what was delivered under a key that
holds the ID number; an ID number that is not a key field of its resource is not on the trail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from services.common.idnumbers import resident_id_valid
from services.common.masking import consumer_key, hmac_value
from services.common.settings import Settings, load_settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import AUDIT


@dataclass(frozen=True)
class Share:
    """One audit record's deliveries that concern the person."""

    ts_ms: int
    consumer: str
    grant_id: str
    resource: str
    kind: str  # live | backfill
    fields: dict[str, str] | None  # field -> masking method; None on records from before
    event_ids: list[str]


def valid_id_number(text: str) -> str:
    """The resident ID number in its compact form; ValueError saying what is wrong with it."""
    number = "".join(text.split()).upper()  # compact: no spaces, X upper case
    if not resident_id_valid(number):
        raise ValueError(
            # The number itself is not repeated: it is personal data, and may land in logs.
            "not a valid resident ID number (18 characters, a real birth date, the right check"
            " character)"
        )
    return number


def pseudonyms(master_secret: bytes, id_number: str) -> Callable[[str], str]:
    """Each consumer's HMAC pseudonym of the ID number, as its deliveries carry it."""

    @cache
    def of(consumer: str) -> str:
        return hmac_value(id_number, consumer_key(master_secret, consumer))

    return of


def shares_of(
    records: Iterable[Mapping[str, Any]], id_number: str, pseudonym_of: Callable[[str], str]
) -> list[Share]:
    """The shares of the person among audit records, in trail order."""
    found = []
    for record in records:
        consumer = record.get("consumer")
        if not consumer or not record.get("keys"):
            continue
        wanted = {id_number, pseudonym_of(consumer)}
        events = [
            event_id
            for event_id, key in zip(record.get("event_ids", []), record["keys"], strict=False)
            if isinstance(key, Mapping) and wanted & {str(v) for v in key.values()}
        ]
        if events:
            found.append(
                Share(
                    record.get("ts_ms", 0),
                    consumer,
                    record.get("grant_id", "?"),
                    record.get("resource", "?"),
                    record.get("kind", "live"),
                    record.get("fields"),
                    events,
                )
            )
    return found


def audit_records(settings: Settings) -> Iterator[dict[str, Any]]:
    """The whole audit trail, oldest first; a record that is not JSON is skipped."""
    for msg in read_range(settings, {}, end_offsets(settings, [AUDIT]), timeout_s=300):
        try:
            record = json.loads(msg.value())
        except (TypeError, ValueError):
            continue
        if isinstance(record, dict):
            yield record


def _when(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _who_got(args: argparse.Namespace) -> int:
    try:
        id_number = valid_id_number(args.id_number)
    except ValueError as exc:
        print(f"govbus: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    secret = settings.mask_secret.get_secret_value().encode()
    shares = shares_of(audit_records(settings), id_number, pseudonyms(secret, id_number))
    if args.json:
        print(json.dumps([asdict(s) for s in shares], ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("time", "consumer", "grant", "resource", "kind", "fields", "records")
    for s in shares:
        fields = ", ".join(
            name if method == "keep" else f"{name} ({method})"
            for name, method in (s.fields or {}).items()
        )
        table.add_row(
            _when(s.ts_ms),
            s.consumer,
            s.grant_id,
            s.resource,
            s.kind,
            fields or "(not recorded)",
            str(len(s.event_ids)),
        )
    Console().print(table)
    print(f"{len(shares)} shares of data about this person")
    return 0


def add_who_got(audit_sub: argparse._SubParsersAction) -> None:
    """Add ``who-got`` to the ``govbus audit`` group's subcommands."""
    from services.control_client import authority_only

    p = audit_sub.add_parser(
        "who-got",
        help="every consumer, grant, time and field set that received data about a person "
        "(authority)",
    )
    p.add_argument("--id-number", required=True, help="the person's resident ID number")
    p.add_argument("--token", help="API token (default: GOVBUS_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the shares as JSON")
    p.set_defaults(func=authority_only("who-got", _who_got))
