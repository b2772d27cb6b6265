"""SQLAlchemy engines for the project's stores: SQLite by default, any other URL as given."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.pool import StaticPool


def build_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # FastAPI runs sync endpoints on a thread pool; one shared connection is the only way an
    # in-memory database is visible to every thread, and each store's lock serialises writes.
    pool = {"poolclass": StaticPool} if in_memory else {}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets readers go on while a writer commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
