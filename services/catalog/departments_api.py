"""The control-plane API of departments and their Kafka access (mounted with control_api).

``PUT``/``DELETE /departments/{code}`` (authority) add and remove a department with its Kafka
account; ``GET /departments/{code}/kafka-config`` gives the confluent-kafka configuration
its systems connect with, to the authority and to the department's own users, who also
manage its system accounts: ``GET``/``POST /departments/{code}/accounts``,
``DELETE /departments/{code}/accounts/{name}``, ``POST .../accounts/{name}/rotate``, and
``GET /departments/{code}/kafka-config?account=NAME``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from services.catalog.control_api import Plane, Who
from services.catalog.departments import put_department, remove_department
from services.catalog.kafka_account_sync import KafkaAccountSync
from services.catalog.kafka_acls import account_name
from services.catalog.system_accounts import (
    add_account,
    check_access,
    list_accounts,
    remove_account,
    rotate_account,
)
from services.catalog.workflow import NotFound
from services.common.catalog import CODE, CODE_MAX, Department


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def departments_router(sync: KafkaAccountSync) -> APIRouter:
    router = APIRouter()

    @router.put("/departments/{code}")
    def put(code: str, body: Department, actor: Who, plane: Plane) -> dict[str, Any]:
        if not _is_code(code):
            raise NotFound(f"{code!r} is no department code ({CODE}, at most {CODE_MAX})")
        put_department(plane.store, actor, code, body)
        sync.notify()
        return {"code": code, **body.model_dump(), "kafka_account": account_name(code)}

    @router.delete("/departments/{code}", status_code=204)
    def delete(code: str, actor: Who, plane: Plane) -> Response:
        remove_department(plane.store, actor, code)
        sync.notify()
        return Response(status_code=204)

    @router.get("/departments/{code}/kafka-config")
    def kafka_config(
        code: str, actor: Who, plane: Plane, account: str | None = None
    ) -> dict[str, str]:
        check_access(plane.store, actor, code)
        if account is not None and account not in {
            a["name"] for a in list_accounts(plane.store, actor, code)
        }:
            raise NotFound(f"department {code} has no system account {account!r}")
        return sync.client_config(code, account)

    @router.get("/departments/{code}/accounts")
    def accounts(code: str, actor: Who, plane: Plane) -> list[dict[str, object]]:
        return list_accounts(plane.store, actor, code)

    @router.post("/departments/{code}/accounts", status_code=201)
    def add(code: str, body: NewAccount, actor: Who, plane: Plane) -> dict[str, str]:
        name = add_account(plane.store, actor, code, body.name)
        sync.notify()
        return {"name": body.name, "principal": name}

    @router.delete("/departments/{code}/accounts/{name}", status_code=204)
    def remove(code: str, name: str, actor: Who, plane: Plane) -> Response:
        remove_account(plane.store, actor, code, name)
        sync.notify()
        return Response(status_code=204)

    @router.post("/departments/{code}/accounts/{name}/rotate")
    def rotate(code: str, name: str, actor: Who, plane: Plane) -> dict[str, object]:
        generation = rotate_account(plane.store, actor, code, name)
        sync.notify()
        return {"name": name, "generation": generation}

    return router


def _is_code(code: str) -> bool:
    return len(code) <= CODE_MAX and re.fullmatch(CODE, code) is not None
