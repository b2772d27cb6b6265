"""Two row sets of one resource compared key by key: the source's and the central store's.

Pure: the rows come in as mappings from the record key to the row's fields; reading them is
``demo_rows``' job. A row is equal when all its fields hold the same values on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Key = tuple[Any, ...]
Rows = Mapping[Key, Mapping[str, Any]]


@dataclass(frozen=True)
class RowComparison:
    source: int  # rows in the source
    store: int  # rows in the store
    equal: int
    missing: list[Key]  # in the source, not in the store
    extra: list[Key]  # in the store, not in the source
    different: list[Key]  # in both, with other values

    @property
    def same(self) -> bool:
        return not (self.missing or self.extra or self.different)


def compare_rows(source: Rows, store: Rows) -> RowComparison:
    """Keys of each kind in key order, so the first few shown are the same run after run."""
    missing = sorted((k for k in source if k not in store), key=_order)
    extra = sorted((k for k in store if k not in source), key=_order)
    both = [k for k in source if k in store]
    different = sorted((k for k in both if dict(source[k]) != dict(store[k])), key=_order)
    return RowComparison(
        source=len(source),
        store=len(store),
        equal=len(both) - len(different),
        missing=missing,
        extra=extra,
        different=different,
    )


def _order(key: Key) -> tuple[str, ...]:
    return tuple(str(part) for part in key)
