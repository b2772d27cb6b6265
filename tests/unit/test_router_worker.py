"""The Faust worker around the data path: a failure in the data path stops it non-zero."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from services.common.settings import REPO_ROOT

WORKER = textwrap.dedent(
    """
    import sys, faust
    from services.common.settings import Settings
    from services.router.app import DataPathService, create_app

    class Path:
        def run(self, stop):
            if sys.argv[1] == "fail":
                raise RuntimeError("an output was not acknowledged")
            stop.wait(0.5)  # routes a while, then the worker is asked to stop

    class Follower:
        def stop(self):
            print("follower stopped", flush=True)

    service = DataPathService(Path(), [Follower()])
    settings = Settings(router_group="worker-test", kafka_password="unit-test")
    worker = faust.Worker(create_app(settings), service,
                          loglevel="WARNING", override_logging=False)
    service.worker = worker
    worker.execute_from_commandline()
    """
)


def run_worker(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WORKER, mode],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_failed_data_path_stops_the_worker_with_a_non_zero_status():
    done = run_worker("fail")
    assert done.returncode != 0
    assert "an output was not acknowledged" in done.stderr
    assert "follower stopped" in done.stdout


def test_a_data_path_that_ends_stops_the_worker_cleanly():
    done = run_worker("ok")
    assert done.returncode == 0, done.stderr
    assert "follower stopped" in done.stdout
