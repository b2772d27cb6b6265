"""Start the bus's processes, watch them, and stop them all, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class ProcessGroup:
    log_dir: Path
    env: dict[str, str] | None = None  # None: this process's environment
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, *args: str, label: str | None = None) -> subprocess.Popen:
        """Run ``govbus <name> <args>``, known (and logged) as ``label`` (default: ``name``)."""
        label = label or name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{label}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", name, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C reaches us once, and we stop the children in order.
                start_new_session=True,
                env=self.env if self.env is not None else os.environ.copy(),
            )
        self.procs[label] = proc
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}:\n{self.log(name)[-2000:]}"
                )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process (a crash, in tests) and forget it."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM in reverse start order, wait against a deadline, then SIGKILL."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def wait_http(url: str, timeout_s: float = 30.0, group: ProcessGroup | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if group:
            group.check_alive()
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s}s: {last}")
