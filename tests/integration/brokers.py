"""A private Kafka broker for the tests that stop or restart it.

The session's shared broker must stay up for every other test, so a test that takes the
broker away starts its own through the project's script (deploy/kafka/kafka.sh): its own data
directory and its own free port pair (broker on p, controller on p+1). The jar cache is the
project's, so a start costs a JVM boot, not a fetch. Data survives ``stop``/``restart``; it is
removed by ``close``.

    with PrivateBroker(tmp_path / "kafka") as broker:
        settings = Settings(kafka_bootstrap=broker.bootstrap, ...)
        broker.stop()       # the broker is away: clients see it as down
        broker.start()      # back on the same port, with the same data
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from services.common.settings import REPO_ROOT

KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port_pair() -> int:
    """A port p with p+1 free too: the broker listens on p, its controller on p+1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


class PrivateBroker:
    """One single-node KRaft broker that a test may start, stop and restart at will."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        wait_s: int = 90,
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: more of kafka.sh's settings, e.g. GOVBUS_KAFKA_SECURITY_PROTOCOL=SASL_SSL."""
        self.data_dir = Path(data_dir)
        self.port = port if port is not None else free_port_pair()
        self.bootstrap = f"localhost:{self.port}"
        self._env = {
            **os.environ,
            "GOVBUS_KAFKA_BOOTSTRAP": self.bootstrap,
            "GOVBUS_KAFKA_DIR": str(self.data_dir),
            "GOVBUS_KAFKA_WAIT_S": str(wait_s),
            **(env or {}),
        }

    def _run(self, command: str, check: bool = True) -> None:
        subprocess.run(["bash", str(KAFKA_SH), command], env=self._env, check=check)

    def start(self) -> None:
        """Start (or start again, same port and data); returns once the broker answers."""
        self._run("start")

    def stop(self) -> None:
        """Stop the broker and wait for its process to exit; the data stays."""
        self._run("stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        result = subprocess.run(
            ["bash", str(KAFKA_SH), "status"], env=self._env, capture_output=True, check=False
        )
        return result.returncode == 0

    def close(self) -> None:
        """Stop the broker and remove its data."""
        self._run("stop", check=False)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> PrivateBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
