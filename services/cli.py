"""The `govbus` command: one entry point for every process of the bus."""

from __future__ import annotations

import argparse
import sys

from services.common.settings import ConfigError, load_service_settings, load_settings


def _check_config(_: argparse.Namespace) -> int:
    from services.common.config_files import live_grants, load_catalog, load_grants

    settings = load_settings()
    catalog = load_catalog(settings.catalog_dir, settings.schemas_dir)
    grants = load_grants(settings.grants_dir, catalog)
    live = len(live_grants(grants))
    print(f"catalog: {len(catalog)} resources; grants: {len(grants)} ({live} live)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from services.bus import run_bus

    run_bus(load_service_settings(), rate=args.rate)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from services.demo import run_demo

    return run_demo(load_service_settings(), args.events, args.seed, Console(width=120))


def _service(name: str):
    def start(args: argparse.Namespace) -> int:
        if name == "catalog-service":
            from services.catalog.app import main
        elif name == "router":
            from services.router.app import main
        elif name == "sink":
            from services.sink.app import main
        elif name == "lag-exporter":
            from services.ops.lag_exporter import main
        else:
            from services.ingest.feed import main

            main(args)
            return 0
        main()
        return 0

    return start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="govbus", description="Government data-exchange bus")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the whole bus with a demo feed and live progress")
    run.add_argument("--rate", type=float, default=200.0, help="demo changes per second")
    run.set_defaults(func=_run)
    demo = sub.add_parser("demo", help="N changes through the whole path, then a summary")
    demo.add_argument("--events", type=int, default=5000)
    demo.add_argument("--seed", type=int, default=2026)
    demo.set_defaults(func=_demo)
    sub.add_parser(
        "check-config",
        help="validate catalog and grant files (the import format; the bus follows the catalog)",
    ).set_defaults(func=_check_config)
    for name, text in (
        ("catalog-service", "the catalog service: schema registry and control-plane API"),
        ("router", "the stream router (Faust worker)"),
        ("sink", "the central-store sink"),
        ("lag-exporter", "consumer lag of the router and sink as Prometheus metrics"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=_service(name))
    from services.control_client import add_commands
    from services.department_client import add_commands as add_department_commands
    from services.ingest.feed import add_arguments

    add_commands(sub)
    from services.ingest.adapters.command import add_commands as add_adapter_commands

    add_adapter_commands(sub)

    from services.audit_verify import add_commands as add_audit_commands

    add_audit_commands(sub)

    from services.dlq_commands import add_commands as add_dlq_commands

    add_dlq_commands(sub)

    add_department_commands(sub)

    feed = sub.add_parser("feed", help="the demo provider feed (resources from govbus.catalog)")
    add_arguments(feed)
    feed.set_defaults(func=_service("feed"))
    args = parser.parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ConfigError as exc:
        print(f"govbus: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
