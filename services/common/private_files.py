"""Files that hold secrets: private from the moment they exist, never made private later."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable and writable by this user alone.

    The text goes to a new file created with mode 0600 (O_EXCL: never an existing file with a
    wider mode), then replaces ``path``, so no reader ever sees it open or half written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def secret_once(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path``, made by ``make`` and written private on first use.

    Two processes starting together agree: the new file is linked into place only if none is
    there yet, and the loser reads the winner's whole secret."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(make() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(staging, path)
        finally:
            staging.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()
