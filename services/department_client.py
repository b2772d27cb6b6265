"""`govbus department add|remove`, `govbus kafka-config`, `govbus kafka-properties`: Kafka access.

`kafka-config --department <code>` prints the JSON confluent-kafka configuration the
department's systems connect with (``bootstrap.servers``, ``security.protocol``,
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


def _kafka_config(args: argparse.Namespace) -> None:
    config = _call(args, "GET", f"/departments/{quote(args.department, safe='')}/kafka-config")
    print(json.dumps(config, indent=2))


def _department_add(args: argparse.Namespace) -> None:
    body = {"name_zh": args.name_zh, "name_en": args.name_en}
    made = _call(args, "PUT", f"/departments/{quote(args.code, safe='')}", body)
    if args.json:
        print(json.dumps(made, ensure_ascii=False))
    else:
        print(f"{args.code} saved; its systems connect to Kafka as {made['kafka_account']}")


def _department_remove(args: argparse.Namespace) -> None:
    _call(args, "DELETE", f"/departments/{quote(args.code, safe='')}")
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
