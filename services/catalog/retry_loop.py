"""The catalog service's background workers' thread: a step run until stopped, retried on error.

The outbox relay and the Kafka account sync each hand their step to one of these. The step
returns True when it did work (it runs again at once) and False when there was none (the
loop waits for a wake-up, or ``idle_s``). A step that raises is retried after a backoff that
doubles up to a bound, so a Kafka that is away is asked again within seconds of its return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

MIN_BACKOFF_S, MAX_BACKOFF_S = 0.5, 5.0


class RetryLoop:
    def __init__(
        self,
        name: str,
        step: Callable[[], bool],
        failed: Callable[[Exception, float], None],
        idle_s: float = 1.0,
        finish: Callable[[], None] = lambda: None,
    ) -> None:
        """``failed(error, backoff_s)`` is told of each failed step; ``finish`` runs last."""
        self._step = step
        self._failed = failed
        self._idle_s = idle_s
        self._finish = finish
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)

    def notify(self) -> None:
        """Something changed: run the step now rather than after ``idle_s``."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        while not self._stop.is_set():
            try:
                worked = self._step()
            except Exception as exc:  # noqa: BLE001 - Kafka away or refusing: retry, never die
                self._failed(exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = MIN_BACKOFF_S
            if not worked:
                self._wake.wait(self._idle_s)
                self._wake.clear()
        self._finish()
