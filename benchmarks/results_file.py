"""benchmarks/results/latest.json: every bench merges its figures in, the others' stay."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def merge_results(figures: Mapping[str, Any], path: Path = RESULTS) -> dict[str, Any]:
    """The file's figures with ``figures`` over them (a bench's keys replaced, not deleted)."""
    current = json.loads(path.read_text("utf-8")) if path.exists() else {}
    merged = {**current, **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", "utf-8")
    return merged
