"""``govbus adapter <name>``: run the adapter file ``deploy/adapters/<name>.yaml``.

The adapter's kind picks its runner; each kind adds one line to ``RUNNERS``.
"""

from __future__ import annotations

import argparse
import logging

from services.common.settings import ConfigError, load_settings
from services.ingest.adapters.config import load_adapters
from services.ingest.adapters.debezium_run import remove_debezium, run_debezium

# kind -> runner(name, adapter, settings, args) -> exit code
RUNNERS = {
    "debezium": run_debezium,
}
# kind -> remover(name, adapter, settings): undo what the runner set up at the source
REMOVERS = {
    "debezium": remove_debezium,
}


def _adapter(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s adapter %(levelname)s %(message)s")
    settings = load_settings()
    adapters = load_adapters(settings.adapters_dir)
    if args.name not in adapters:
        raise ConfigError(f"no adapter file {args.name}.yaml in {settings.adapters_dir}")
    adapter = adapters[args.name]
    if args.remove:
        REMOVERS[adapter.kind](args.name, adapter, settings)
        return 0
    return RUNNERS[adapter.kind](args.name, adapter, settings, args)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapter", help="run a provider adapter (deploy/adapters/<name>.yaml)")
    p.add_argument("name", help="adapter name: the file stem under deploy/adapters/")
    p.add_argument("--metrics-port", type=int, help="/metrics port (default: the setting)")
    p.add_argument(
        "--remove",
        action="store_true",
        help="remove what the adapter set up at the source (connector, replication slot)",
    )
    p.set_defaults(func=_adapter)
