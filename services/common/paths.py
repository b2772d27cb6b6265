"""Paths named by untrusted input (files of an import, a catalog entry's schema file, the files
of an export) stay inside the directory they are given under."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class OutsideDirectory(ValueError):
    """A relative path that leads out of its directory."""


def escape_problem(rel: str) -> str | None:
    """Why ``rel`` would leave any directory it is joined to (absolute, or ``..``), or None."""
    parts = PurePosixPath(rel.replace("\\", "/"))
    if parts.is_absolute() or rel[1:3] == ":\\" or rel[1:3] == ":/":
        return f"{rel!r} is absolute; a path relative to its directory is expected"
    if ".." in parts.parts:
        return f"{rel!r} climbs out of its directory ('..')"
    return None


def inside(root: Path, rel: str) -> Path:
    """``root / rel``, refused with OutsideDirectory unless it stays under ``root`` (symbolic
    links followed)."""
    if problem := escape_problem(rel):
        raise OutsideDirectory(problem)
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise OutsideDirectory(f"{rel!r} leads out of {root} through a symbolic link")
    return path
