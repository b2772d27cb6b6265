"""`govbus dlq list|show|redrive|keygen`: the dead-letter topic, for the authority.

``list``, ``show`` and ``redrive`` ask the control-plane API whose token is given and go on only
for the authority; the topic itself is the bus's and the authority's alone on a secured
cluster, and a sealed original opens only with the authority's private key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter

from services.common.authority_seal import SealError, new_key_pair
from services.common.settings import load_settings
from services.control_client import authority_only
from services.dlq_redrive import Letter, RedriveError, letter_at, read_letters, redrive


def _when(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _source(letter: Letter) -> str:
    h = letter.headers
    if "govbus.source.topic" not in h:
        return "(sealed original)" if (letter.body or {}).get("sealed") else "-"
    return f"{h['govbus.source.topic']}[{h['govbus.source.partition']}]@{h['govbus.source.offset']}"


def _matches(letter: Letter, args: argparse.Namespace) -> bool:
    return (
        (args.stage is None or letter.stage == args.stage)
        and (args.reason is None or letter.reason == args.reason)
        and (args.resource is None or letter.headers.get("govbus.resource") == args.resource)
    )


def _list(args: argparse.Namespace) -> int:
    letters = [x for x in read_letters(load_settings()) if _matches(x, args)]
    if args.json:
        rows = [{"offset": x.offset, "ts_ms": x.ts_ms, **(x.body or {})} for x in letters]
        print(json.dumps(rows[-args.limit :], ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    counts = Table("stage", "reason", "dead letters", title="by stage and reason")
    for (stage, reason), n in sorted(Counter((x.stage, x.reason) for x in letters).items()):
        counts.add_row(stage, reason, str(n))
    console.print(counts)
    rows = Table("offset", "time (UTC)", "stage", "reason", "resource", "source", "grant", "detail")
    for x in letters[-args.limit :]:
        h = x.headers
        rows.add_row(
            str(x.offset), _when(x.ts_ms), x.stage, x.reason, h.get("govbus.resource", "-"),
            _source(x), h.get("govbus.grant", "-"), h.get("govbus.detail", "")[:80],
        )  # fmt: skip
    console.print(rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    letter = letter_at(load_settings(), args.offset)
    shown = {"offset": letter.offset, "ts_ms": letter.ts_ms, "headers": letter.headers}
    shown["body"] = letter.body
    if shown["body"] and shown["body"].get("sealed"):
        shown["body"] = {**shown["body"], "sealed": "(sealed to the authority's key)"}
    print(json.dumps(shown, ensure_ascii=False, indent=2))
    return 0


def _redrive(args: argparse.Namespace) -> int:
    fixes = dict(args.set or [])
    letter = letter_at(load_settings(), args.offset)
    print(redrive(load_settings(), letter, fixes))
    return 0


def _keygen(_: argparse.Namespace) -> int:
    public, private = new_key_pair()
    print(f"GOVBUS_DLQ_PUBLIC_KEY={public}")
    print(f"GOVBUS_DLQ_PRIVATE_KEY={private}")
    return 0


def _fix(text: str) -> tuple[str, str]:
    field, sep, value = text.partition("=")
    if not sep or not field:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return field, value


def _refusing(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (RedriveError, SealError) as exc:
            print(f"govbus: {exc}", file=sys.stderr)
            return 1

    return run


def add_commands(sub: argparse._SubParsersAction) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, redrive (authority)")
    cmds = dlq.add_subparsers(dest="dlq_command", required=True)
    token = argparse.ArgumentParser(add_help=False)
    token.add_argument("--token", help="API token (default: GOVBUS_TOKEN)")

    p = cmds.add_parser("list", help="dead letters by stage and reason", parents=[token])
    p.add_argument("--stage", choices=["ingest", "router", "sink"])
    p.add_argument("--reason")
    p.add_argument("--resource", help="<provider>.<code>")
    p.add_argument("--limit", type=int, default=50, help="latest N rows (default 50)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=authority_only("dlq list", _refusing(_list)))

    p = cmds.add_parser("show", help="one dead letter, masked", parents=[token])
    p.add_argument("offset", type=int)
    p.set_defaults(func=authority_only("dlq show", _refusing(_show)))

    p = cmds.add_parser(
        "redrive", help="re-publish a dead letter's original through the bus", parents=[token]
    )
    p.add_argument("offset", type=int)
    p.add_argument(
        "--set",
        type=_fix,
        action="append",
        metavar="FIELD=VALUE",
        help="mend a rejected change's field (ingest dead letters; a string value)",
    )
    p.set_defaults(func=authority_only("dlq redrive", _refusing(_redrive)))

    cmds.add_parser(
        "keygen", help="a new authority key pair for GOVBUS_DLQ_PUBLIC_KEY / _PRIVATE_KEY"
    ).set_defaults(func=_keygen)
