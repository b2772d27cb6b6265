"""Pure functions behind the catalog pages: search, and a resource's schema history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.catalog.control_store import Resource
from services.catalog.registry_errors import RegistryError
from services.catalog.registry_store import SchemaRegistryStore
from services.common.topics import value_subject


@dataclass(frozen=True)
class Search:
    q: str = ""  # part of the Chinese or English name, or of the code
    provider: str = ""
    category: str = ""
    share_type: str = ""

    def matches(self, res: Resource) -> bool:
        e = res.entry
        q = self.q.strip().casefold()
        if q and not any(q in s.casefold() for s in (e.name_zh, e.name_en, e.resource_id)):
            return False
        return (
            (not self.provider or e.provider == self.provider)
            and (not self.category or e.category == self.category)
            and (not self.share_type or e.share_type.value == self.share_type)
        )


def search(resources: Iterable[Resource], query: Search) -> list[Resource]:
    """The resources matching every given criterion, by provider then code."""
    found = [r for r in resources if query.matches(r)]
    return sorted(found, key=lambda r: (r.entry.provider, r.entry.code))


@dataclass(frozen=True)
class SchemaHistory:
    subject: str
    versions: list[int]  # registry versions of the change-event envelope
    compatibility: str  # the subject's mode (its own, else the registry's default)


def schema_history(registry: SchemaRegistryStore, res: Resource) -> SchemaHistory:
    subject = value_subject(res.entry.topic)
    try:
        versions = registry.versions(subject)
    except RegistryError:
        versions = []  # not registered yet: the page says so
    return SchemaHistory(subject, versions, registry.get_compatibility(subject))
