"""`govbus adapter <name>`: run the adapter file ``deploy/adapters/<name>.yaml`` by its kind."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from services.common.settings import ConfigError, Settings, load_service_settings, load_settings
from services.ingest.adapters.config import AdapterBase, load_adapters
from services.ingest.adapters.debezium_run import remove_debezium, run_debezium
from services.ingest.adapters.file_drop import run_file_drop
from services.ingest.adapters.polling import run_polling
from services.ingest.adapters.process import adapter_process

# kind -> runner(adapter config, adapter process); importing a kind's module registers it.
RUNNERS: dict[str, Callable[[Any, Any], None]] = {
    "debezium": run_debezium,
    "polling": run_polling,
    "files": run_file_drop,
}
# kind -> remover(name, adapter config, settings): undo what the runner set up at the source.
REMOVERS: dict[str, Callable[[str, Any, Settings], None]] = {
    "debezium": remove_debezium,
}


def configured_adapters(settings: Settings) -> dict[str, AdapterBase]:
    """Every adapter file, validated (a bad one stops start-up naming the file and field)."""
    return load_adapters(settings.adapters_dir)


def _adapter(settings: Settings, name: str) -> AdapterBase:
    adapters = configured_adapters(settings)
    cfg = adapters.get(name)
    if cfg is None:
        known = ", ".join(sorted(adapters)) or "none"
        raise ConfigError(f"no adapter {name!r} in {settings.adapters_dir} (there: {known})")
    return cfg


def run_adapter(args: argparse.Namespace) -> int:
    if args.remove:
        settings = load_settings()
        cfg = _adapter(settings, args.name)
        remover = REMOVERS.get(cfg.kind)
        if remover is None:
            raise ConfigError(f"{args.name}: a {cfg.kind} adapter sets up nothing to remove")
        remover(args.name, cfg, settings)
        return 0
    settings = load_service_settings()
    cfg = _adapter(settings, args.name)
    with adapter_process(args.name, settings, cfg.metrics_port) as proc:
        RUNNERS[cfg.kind](cfg, proc)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("adapter", help="run one provider adapter of deploy/adapters/")
    parser.add_argument("name", help="the adapter file's name, without .yaml")
    parser.add_argument(
        "--remove",
        action="store_true",
        help="remove what the adapter set up at its source (connector, replication slot)",
    )
    parser.set_defaults(func=run_adapter)
