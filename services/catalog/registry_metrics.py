"""Prometheus metrics of the registry, served by the registry itself at /metrics."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    requests = Counter(
        "govbus_registry_requests",
        "Registry HTTP requests",
        ["method", "status"],
        registry=registry,
    )

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        response = await call_next(request)
        requests.labels(request.method, str(response.status_code)).inc()
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
