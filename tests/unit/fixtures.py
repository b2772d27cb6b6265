"""Factories for unit tests: the real catalog and grants, records, envelopes, a mock registry."""

from __future__ import annotations

import uuid
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from services.common.catalog import CatalogEntry, Grant
from services.common.config_files import load_catalog, load_grants
from services.common.idnumbers import make_resident_id
from services.common.serde import AvroCodec
from services.common.settings import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas" / "avro"
RESIDENTS = "psb.resident_population"


def catalog() -> dict[str, CatalogEntry]:
    return load_catalog(REPO_ROOT / "deploy" / "catalog", SCHEMAS)


def grants() -> list[Grant]:
    return load_grants(REPO_ROOT / "deploy" / "grants", catalog())


def grant(grant_id: str, **changes: Any) -> Grant:
    found = next(g for g in grants() if g.id == grant_id)
    return found.model_copy(update=changes) if changes else found


def codec() -> AvroCodec:
    # confluent-kafka's in-memory registry; a fresh scope per test.
    return AvroCodec(SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"}))


def resident(**changes: Any) -> dict[str, Any]:
    import datetime as dt

    base = {
        "id_number": make_resident_id("340104", dt.date(1986, 5, 17), 123),
        "name": "王建国",
        "gender": "M",
        "birth_date": "1986-05-17",
        "ethnicity": "汉族",
        "region_code": "340104",
        "address": "安徽省合肥市蜀山区长江西路189号3栋1201室",
        "phone": "13905511234",
        "household_type": "城镇",
        "updated_at": 1_764_000_000_000,
    }
    return {**base, **changes}


def envelope(op: str, before=None, after=None, resource: str = "resident_population") -> dict:
    return {
        "before": before,
        "after": after,
        "op": op,
        "ts_ms": 1_764_000_000_123,
        "source": {
            "provider": "psb",
            "resource": resource,
            "system": "psb-hukou",
            "position": "lsn:1",
            "snapshot": False,
            "ts_ms": None,
        },
        "event_id": str(uuid.uuid4()),
    }


class QueuedFollower:
    """Stands in for the catalog follower: hands over the changes queued on it."""

    def __init__(self) -> None:
        self.queued: dict = {}

    def changes(self) -> dict:
        out, self.queued = self.queued, {}
        return out

    def stop(self) -> None:
        pass
