"""Kafka Connect's REST API: register, inspect and remove connectors.

A worker that just started answers REST before it has joined its group, and answers 409
while the group rebalances; both are waited out against a deadline.
"""

from __future__ import annotations

import time
from typing import Any

import httpx


class ConnectError(RuntimeError):
    """The Connect worker refused a request or did not answer in time."""


class ConnectClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout_s)
        self.url = url

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, deadline_s: float, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                problem = f"{self.url} does not answer: {exc}"
            else:
                if response.status_code != 409:  # 409: the group is rebalancing
                    return response
                problem = f"{method} {path}: 409 {response.text[:200]}"
            if time.monotonic() >= deadline:
                raise ConnectError(problem)
            time.sleep(0.5)

    def wait_ready(self, deadline_s: float = 60.0) -> None:
        """Until ``/connectors`` answers 200: the worker has joined its group."""
        response = self._call("GET", "/connectors", deadline_s)
        if response.status_code != 200:
            raise ConnectError(f"GET /connectors: {response.status_code} {response.text[:300]}")

    def put_connector(self, name: str, config: dict[str, str], deadline_s: float = 60.0) -> None:
        """Create the connector, or update its config (idempotent)."""
        response = self._call("PUT", f"/connectors/{name}/config", deadline_s, json=config)
        if response.status_code not in (200, 201):
            raise ConnectError(f"connector {name}: {response.status_code} {response.text[:500]}")

    def delete_connector(self, name: str, deadline_s: float = 30.0) -> bool:
        response = self._call("DELETE", f"/connectors/{name}", deadline_s)
        if response.status_code not in (204, 404):
            raise ConnectError(f"delete {name}: {response.status_code} {response.text[:300]}")
        return response.status_code == 204

    def forget(self, name: str, deadline_s: float = 60.0) -> None:
        """Stop the connector, delete its source offsets, then the connector: a connector made
        again under the name starts afresh instead of asking its old slot for an old LSN."""
        response = self._call("PUT", f"/connectors/{name}/stop", deadline_s)
        if response.status_code == 404:
            return
        deadline = time.monotonic() + deadline_s
        while (self.status(name) or {}).get("connector", {}).get("state") != "STOPPED":
            if time.monotonic() >= deadline:
                raise ConnectError(f"connector {name} not stopped after {deadline_s}s")
            time.sleep(0.5)
        response = self._call("DELETE", f"/connectors/{name}/offsets", deadline_s)
        if response.status_code not in (200, 204):
            raise ConnectError(f"offsets of {name}: {response.status_code} {response.text[:300]}")
        self.delete_connector(name, deadline_s)

    def status(self, name: str) -> dict[str, Any] | None:
        """The connector's and its tasks' states, or None when it does not exist (yet)."""
        response = self._call("GET", f"/connectors/{name}/status", 10.0)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ConnectError(f"status {name}: {response.status_code} {response.text[:300]}")
        return response.json()

    def restart_failed(self, name: str) -> None:
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true", 30.0)


def failed_task_trace(status: dict[str, Any] | None) -> str | None:
    """The first failed task's trace (why Debezium stopped), or None if none failed."""
    for task in (status or {}).get("tasks", []):
        if task.get("state") == "FAILED":
            return str(task.get("trace", "failed without a trace"))
    return None
