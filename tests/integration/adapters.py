"""What the adapter tests share: demo rows, adapter files, and reading what an adapter published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from services.common.dead_letter import header_map
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import DLQ
from services.ingest.demo_data import ENTERPRISES, DemoFeed
from tests.integration.conftest import Bus, free_port, wait_until
from tests.integration.flow import decode_all, read_topics


def enterprise_rows(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` valid enterprise records with distinct credit codes."""
    rows: dict[str, dict[str, Any]] = {}
    for change in DemoFeed(seed=seed).changes(n * 20):
        if change.resource == ENTERPRISES and change.op == "c":
            rows.setdefault(change.after["credit_code"], change.after)
            if len(rows) == n:
                return list(rows.values())
    raise AssertionError(f"the demo feed gave {len(rows)} enterprises, not {n}")


def resource_id(bus: Bus) -> str:
    return f"samr_{bus.tag}.enterprise_registration"


def topic(bus: Bus) -> str:
    return f"gov.samr_{bus.tag}.enterprise_registration"


def start_adapter(bus: Bus, tmp_path: Path, name: str, spec: dict[str, Any]) -> str:
    """Write ``deploy/adapters/<name>.yaml`` for this bus and start ``govbus adapter <name>``;
    returns its metrics URL once it answers."""
    folder = tmp_path / "adapters"
    folder.mkdir(exist_ok=True)
    port = spec.setdefault("metrics_port", free_port())
    text = yaml.safe_dump(spec, allow_unicode=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    bus.processes.env["GOVBUS_ADAPTERS_DIR"] = str(folder)
    return restart_adapter(bus, name, port)


def restart_adapter(bus: Bus, name: str, port: int) -> str:
    bus.processes.start("adapter", name, label=name)
    url = f"http://127.0.0.1:{port}/metrics"

    def up() -> bool:
        bus.processes.check_alive()
        return httpx.get(url, timeout=1).status_code == 200

    wait_until(up, 90, f"adapter {name}")
    return url


def published(bus: Bus) -> list[dict[str, Any]]:
    """Every envelope on the test's enterprise topic, in offset order per partition."""
    return [value for _, value in decode_all(bus.settings, read_topics(bus.settings, [topic(bus)]))]


def latest_by_key(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each credit code's last event by source position order of arrival (one key, one
    partition, so the partition's order is the key's order)."""
    last: dict[str, dict[str, Any]] = {}
    for e in events:
        row = e["after"] or e["before"]
        last[row["credit_code"]] = e
    return last


def dead_letters(bus: Bus, start: dict) -> list[tuple[dict[str, str], bytes]]:
    end = end_offsets(bus.settings, [DLQ])
    key = resource_id(bus).encode()
    return [
        (header_map(m.headers()), m.value())
        for m in read_range(bus.settings, start, end)
        if m.key() == key
    ]


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of the adapter's metrics (0 when it is not there yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in httpx.get(url, timeout=2).text.splitlines():
        if line.startswith(f"{name}{{{wanted}") or line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def dump(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, allow_unicode=True)
