"""`govbus adapter <name>`: run the adapter file ``deploy/adapters/<name>.yaml`` by its kind."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from services.common.settings import ConfigError, Settings, load_settings
from services.ingest.adapters.config import AdapterBase, load_adapters
from services.ingest.adapters.file_drop import run_file_drop
from services.ingest.adapters.polling import run_polling
from services.ingest.adapters.process import adapter_process

# kind -> runner(adapter config, adapter process); importing a kind's module registers it.
RUNNERS: dict[str, Callable[[Any, Any], None]] = {
    "polling": run_polling,
    "files": run_file_drop,
}


def configured_adapters(settings: Settings) -> dict[str, AdapterBase]:
    """Every adapter file, validated (a bad one stops start-up naming the file and field)."""
    return load_adapters(settings.adapters_dir)


def run_adapter(args: argparse.Namespace) -> int:
    settings = load_settings()
    adapters = configured_adapters(settings)
    cfg = adapters.get(args.name)
    if cfg is None:
        known = ", ".join(sorted(adapters)) or "none"
        raise ConfigError(f"no adapter {args.name!r} in {settings.adapters_dir} (there: {known})")
    with adapter_process(args.name, settings, getattr(cfg, "metrics_port", 0)) as proc:
        RUNNERS[cfg.kind](cfg, proc)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("adapter", help="run one provider adapter of deploy/adapters/")
    parser.add_argument("name", help="the adapter file's name, without .yaml")
    parser.set_defaults(func=run_adapter)
