"""`govbus run` (what `make run` starts): live progress, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from services.common.settings import REPO_ROOT
from tests.integration.conftest import command_env


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            if marker.encode() in (pid_dir / "environ").read_bytes():
                found.append(int(pid_dir.name))
        except OSError:
            continue
    return found


def test_run_shows_progress_and_ctrl_c_stops_every_process(kafka_bootstrap, tmp_path):
    marker = f"govbus-run-test-{uuid.uuid4().hex}"
    env = command_env(kafka_bootstrap, tmp_path / marker, marker)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run", "--rate", "100"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # like a terminal: Ctrl-C reaches `govbus run` itself
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "govbus run ended early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("published") and " stored " in line:
                stored = int(line.split("stored")[1].split("|")[0])
                if stored > 0:
                    break
        else:
            raise AssertionError("no progress line with stored changes:\n" + "".join(lines))
        assert any(line.startswith("data hall (web console): http://") for line in lines)
        assert len(_processes_with(marker)) >= 5  # run + registry, router, sink, lag, feed
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    assert "all govbus processes stopped." in rest
    assert proc.returncode == 0
    assert _processes_with(marker) == []
