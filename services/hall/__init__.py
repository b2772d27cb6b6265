"""The online data hall (线上政务数据大厅): the web console of the catalog service, at /hall."""

from __future__ import annotations

from services.common.settings import Settings

PREFIX = "/hall"


def hall_url(settings: Settings) -> str:
    """The console's address, as ``govbus run`` prints it (catalog service, under /hall)."""
    host = settings.registry_host
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"  # listening everywhere: this machine reaches it locally
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.registry_port}{PREFIX}/"
