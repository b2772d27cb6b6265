"""How often each user may preview: previews run the grant's masking on chosen records, so an
unlimited preview would let anyone probe the masking at will."""

from __future__ import annotations

import math
import time

from limits import parse, storage, strategies


class TooManyPreviews(Exception):
    def __init__(self, user: str, rate: str, retry_after_s: int) -> None:
        super().__init__(f"{user} may preview {rate}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class PreviewLimiter:
    """A moving window per user, in process memory (one catalog service holds the API)."""

    def __init__(self, rate: str) -> None:
        self._rate = rate
        self._item = parse(rate)
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def take(self, user: str) -> None:
        """Count one preview of ``user``; TooManyPreviews once the window is full."""
        if self._limiter.hit(self._item, "preview", user):
            return
        reset_at = self._limiter.get_window_stats(self._item, "preview", user).reset_time
        raise TooManyPreviews(user, self._rate, max(1, math.ceil(reset_at - time.time())))
