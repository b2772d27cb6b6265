"""`govbus department add|remove`, `govbus department account add|remove|list|rotate`,
`govbus kafka-config`, `govbus kafka-properties`: Kafka access.

`kafka-config --department <code>` prints the JSON confluent-kafka configuration the
department's systems (or, with ``--account NAME``, one of its system accounts) connect with
(``bootstrap.servers``, ``security.protocol``,
``sasl.mechanism``, ``sasl.username``, ``sasl.password``); the API gives it to the authority
and to the department's own users only. `kafka-properties FILE` writes the Java client
properties of this host's service principal (for Kafka's CLI tools' ``--command-config``, or a
Kafka Connect worker), in a file created private.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import quote

from services.common.kafka_security import write_java_client_properties
from services.common.settings import load_settings
from services.control_client import _call, _guarded


def _path(code: str, *rest: str) -> str:
    return "/".join([f"/departments/{quote(code, safe='')}", *(quote(p, safe="") for p in rest)])


def _kafka_config(args: argparse.Namespace) -> None:
    query = "" if args.account is None else f"?account={quote(args.account, safe='')}"
    config = _call(args, "GET", _path(args.department, "kafka-config") + query)
    print(json.dumps(config, indent=2))


def _account_add(args: argparse.Namespace) -> None:
    made = _call(args, "POST", _path(args.code, "accounts"), {"name": args.name})
    if args.json:
        print(json.dumps(made))
    else:
        print(f"{args.code} has the system account {args.name}; it connects as {made['principal']}")


def _account_remove(args: argparse.Namespace) -> None:
    _call(args, "DELETE", _path(args.code, "accounts", args.name))
    print(f"system account {args.name} of {args.code} removed")


def _account_rotate(args: argparse.Namespace) -> None:
    rotated = _call(args, "POST", _path(args.code, "accounts", args.name, "rotate"))
    print(
        f"system account {args.name} of {args.code} has a new password (generation "
        f"{rotated['generation']}); fetch it with kafka-config --account {args.name}"
    )


def _account_list(args: argparse.Namespace) -> None:
    accounts = _call(args, "GET", _path(args.code, "accounts"))
    if args.json:
        print(json.dumps(accounts))
    for account in [] if args.json else accounts:
        print(f"{account['name']}\t{account['principal']}\tgeneration {account['generation']}")


def _department_add(args: argparse.Namespace) -> None:
    body = {"name_zh": args.name_zh, "name_en": args.name_en}
    made = _call(args, "PUT", _path(args.code), body)
    if args.json:
        print(json.dumps(made, ensure_ascii=False))
    else:
        print(f"{args.code} saved; its systems connect to Kafka as {made['kafka_account']}")


def _department_remove(args: argparse.Namespace) -> None:
    _call(args, "DELETE", _path(args.code))
    print(f"{args.code} removed, with its users and its Kafka account")


def _kafka_properties(args: argparse.Namespace) -> int:
    path = write_java_client_properties(load_settings(), Path(args.file))
    print(f"wrote {path}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--token", help="API token (default: GOVBUS_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")

    p = sub.add_parser(
        "kafka-config",
        help="the confluent-kafka client config (JSON) of a department",
        parents=[common],
    )
    p.add_argument("--department", required=True, help="department code")
    p.add_argument("--account", help="a system account of the department (default: its own)")
    p.set_defaults(func=_guarded(_kafka_config))

    p = sub.add_parser(
        "kafka-properties",
        help="write the Java client properties of the bus's principal (--command-config)",
    )
    p.add_argument("file")
    p.set_defaults(func=_kafka_properties)

    dept = sub.add_parser("department", help="departments (authority)").add_subparsers(
        dest="department_command", required=True
    )
    p = dept.add_parser("add", help="add or rename a department", parents=[common])
    p.add_argument("code")
    p.add_argument("--name-zh", required=True)
    p.add_argument("--name-en", required=True)
    p.set_defaults(func=_guarded(_department_add))
    p = dept.add_parser(
        "remove", help="remove a department, its users and its Kafka account", parents=[common]
    )
    p.add_argument("code")
    p.set_defaults(func=_guarded(_department_remove))

    account = dept.add_parser(
        "account", help="a department's system accounts (authority or its own users)"
    ).add_subparsers(dest="account_command", required=True)
    for verb, func, text in (
        ("add", _account_add, "add a system account: its own principal, the department's ACLs"),
        ("remove", _account_remove, "remove a system account and its Kafka access"),
        ("rotate", _account_rotate, "give a system account a new password"),
    ):
        p = account.add_parser(verb, help=text, parents=[common])
        p.add_argument("code", help="department code")
        p.add_argument("name", help="system account name")
        p.set_defaults(func=_guarded(func))
    p = account.add_parser("list", help="a department's system accounts", parents=[common])
    p.add_argument("code", help="department code")
    p.set_defaults(func=_guarded(_account_list))
