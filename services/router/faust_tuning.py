"""Faust settings for a router that only moves bytes: measured, not guessed.

On a 2-core machine a no-op Faust agent consumed ~4.2k events/s with defaults; uvloop and a
Monitor without per-event bookkeeping (the bus keeps its own Prometheus metrics) took it to
~5.6k/s (see benchmarks/ and the spine issue's closing note).
"""

from __future__ import annotations

import asyncio

from faust.sensors import Monitor


class LeanMonitor(Monitor):
    """Faust's monitor without its per-message and per-event timing, which we never read."""

    def on_message_in(self, tp, offset, message) -> None:
        pass

    def on_stream_event_in(self, tp, offset, stream, event):
        return None

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:
        pass

    def on_message_out(self, tp, offset, message) -> None:
        pass

    def track_tp_end_offset(self, tp, offset) -> None:
        pass


def use_uvloop() -> None:
    """The libuv event loop: Faust spends most of its time in the loop's scheduling."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


LEAN_SETTINGS = {
    "Monitor": LeanMonitor,
    # Offsets only move for acked events, and take_events acks a batch after its outputs are
    # acknowledged, so there is no need to drain stream buffers before a commit.
    "stream_wait_empty": False,
}
