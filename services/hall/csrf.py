"""CSRF protection of the data hall: a token bound to the session (the synchronizer pattern).

Every POST carries the session's token, in the form field ``csrf_token`` or (htmx) the
``X-CSRF-Token`` header; a request from another origin is refused before that. The session
cookie is SameSite=Strict too, but the token does not rely on the browser for it.
"""

from __future__ import annotations

import hmac

FIELD = "csrf_token"
HEADER = "x-csrf-token"


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token, or from another origin."""


def check(expected: str, submitted: str | None, origin: str | None, own_origin: str) -> None:
    """Raise CsrfRefused unless ``submitted`` is the session's token from our own origin."""
    if origin is not None and origin != own_origin:
        raise CsrfRefused(f"request from another origin ({origin})")
    if not submitted or not hmac.compare_digest(submitted.encode(), expected.encode()):
        raise CsrfRefused("missing or wrong CSRF token: reload the page and try again")
