"""Server-side sessions of the data hall: the cookie carries only a random id.

The API token a user logs in with stays on the server, so the cookie proves nothing once the
session ends (logout, idle timeout, restart), and every request checks the token again, so
an expired or rotated token ends the session at once. One catalog service process serves the
hall, so the sessions live in its memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "govbus_hall"
LANGS = ("zh", "en")


@dataclass
class Session:
    sid: str
    csrf: str  # the token every form and htmx POST must carry (csrf.py)
    lang: str = "zh"
    token: str | None = None  # the API token the user logged in with; None before login
    seen: float = field(default_factory=time.monotonic)


class SessionStore:
    def __init__(self, idle_s: float, clock=time.monotonic) -> None:
        self._idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def new(self, lang: str = "zh") -> Session:
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), lang, seen=self._clock())
        with self._lock:
            self._drop_idle()
            self._sessions[s.sid] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        """The live session with this id (its idle clock restarted), or None."""
        if not sid:
            return None
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if self._clock() - s.seen > self._idle_s:
                del self._sessions[sid]
                return None
            s.seen = self._clock()
            return s

    def login(self, old: Session, token: str) -> Session:
        """A fresh session id and CSRF token for the logged-in user: an id planted before
        login (session fixation) is worth nothing after it."""
        self.end(old.sid)
        s = self.new(old.lang)
        s.token = token
        return s

    def end(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def _drop_idle(self) -> None:
        now = self._clock()
        for sid in [k for k, s in self._sessions.items() if now - s.seen > self._idle_s]:
            del self._sessions[sid]
