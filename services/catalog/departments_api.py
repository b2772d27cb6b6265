"""The control-plane API of departments and their Kafka access (mounted with control_api).

``PUT``/``DELETE /departments/{code}`` (authority) add and remove a department with its Kafka
account; ``GET /departments/{code}/kafka-config`` gives the confluent-kafka configuration
its systems connect with, to the authority and to the department's own users.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Response

from services.catalog.control_api import Plane, Who
from services.catalog.departments import put_department, remove_department
from services.catalog.kafka_account_sync import KafkaAccountSync
from services.catalog.kafka_acls import account_name
from services.catalog.workflow import Forbidden, NotFound, Role
from services.common.catalog import CODE, CODE_MAX, Department


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
    def kafka_config(code: str, actor: Who, plane: Plane) -> dict[str, str]:
        if actor.role is not Role.AUTHORITY and actor.department != code:
            raise Forbidden(
                f"{actor.user} of {actor.department} may not see the Kafka access of {code}"
            )
        if code not in plane.store.departments():
            raise NotFound(f"no department {code!r}")
        return sync.client_config(code)

    return router


def _is_code(code: str) -> bool:
    return len(code) <= CODE_MAX and re.fullmatch(CODE, code) is not None
