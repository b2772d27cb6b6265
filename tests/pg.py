"""PostgreSQL for the tests: the project's own cluster (deploy/postgres/pg.sh), started once
per session on a free port, or the server named in GOVBUS_TEST_PG_URL. Each test that asks
for a store gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from services.common.settings import REPO_ROOT

PG_SH = REPO_ROOT / "deploy" / "postgres" / "pg.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    reuse = os.environ.get("GOVBUS_TEST_PG_URL")
    if reuse:
        yield reuse
        return
    env = {
        **os.environ,
        "GOVBUS_PG_PORT": str(_free_port()),
        # Under the temp dir: the cluster's owner (postgres, when we are root) must reach it.
        "GOVBUS_PG_DIR": str(Path(tempfile.gettempdir()) / f"govbus-test-pg-{uuid.uuid4().hex}"),
    }
    subprocess.run(["bash", str(PG_SH), "start"], env=env, check=True)
    try:
        url = subprocess.run(
            ["bash", str(PG_SH), "url"], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        yield url
    finally:
        subprocess.run(["bash", str(PG_SH), "reset"], env=env, check=False)


def _database(server_url: str) -> Iterator[str]:
    """A fresh database on the server; dropped when the test is done."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A central-store URL on each database the project supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield from _database(request.getfixturevalue("pg_server_url"))


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database (for what runs on PostgreSQL only)."""
    yield from _database(pg_server_url)
