"""The data hall over a real (in-memory SQLite) control store, as a browser would use it:
cookies kept, the CSRF token read from each page's forms."""

from __future__ import annotations

import datetime as dt
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.catalog.control_plane import ControlPlane
from services.catalog.control_store import ControlStore
from services.catalog.preview_limit import PreviewLimiter
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.users import add_user, bootstrap_authority
from services.catalog.workflow import SYSTEM, Calendar, Role
from services.common.settings import REPO_ROOT
from services.hall.app import create_hall_app
from tests.unit.fixtures import SCHEMAS

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
USERS = (
    ("psb-li", "psb", Role.PROVIDER),
    ("samr-zhao", "samr", Role.PROVIDER),
    ("mca-wang", "mca", Role.CONSUMER),
    ("edu-chen", "edu", Role.CONSUMER),
    ("ops-sun", "dsj", Role.OPS),
)


class HallWorld:
    """One control plane with the demo catalog, its users' tokens, and the hall on /hall."""

    def __init__(self, preview_rate: str = "20/minute") -> None:
        store = ControlStore("sqlite://")
        self.plane = ControlPlane(store, SchemaRegistryStore("sqlite://"), Calendar(), SCHEMAS)
        deploy = REPO_ROOT / "deploy"
        self.plane.import_folder(SYSTEM, deploy / "catalog", deploy / "grants", SCHEMAS)
        self.tokens = {"admin": bootstrap_authority(store, None) or ""}
        admin = self.actor("admin")
        for name, dept, role in USERS:
            self.tokens[name] = add_user(store, admin, name, dept, role).token
        self.app = FastAPI()
        self.app.mount("/hall", create_hall_app(self.plane, PreviewLimiter(preview_rate)))

    def actor(self, name: str):
        found = self.plane.store.token_holder(self.tokens[name])
        assert found is not None
        return found[0]

    def expired_user(self, name: str, dept: str, role: Role) -> str:
        store = self.plane.store
        ttl, store.token_ttl = store.token_ttl, dt.timedelta(seconds=-1)
        try:
            return add_user(store, self.actor("admin"), name, dept, role).token
        finally:
            store.token_ttl = ttl

    def browser(self, user: str | None = None) -> Browser:
        b = Browser(TestClient(self.app, follow_redirects=False))
        if user is not None:
            b.login(self.tokens[user])
        return b


class Browser:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str, **kw):
        r = self.client.get(f"/hall{path}", **kw)
        if found := CSRF.search(r.text):
            self.csrf = found.group(1)
        return r

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kw):
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        return self.client.post(f"/hall{path}", data=form, **kw)

    def login(self, token: str):
        self.get("/login")
        r = self.post("/login", {"token": token})
        if r.status_code == 303:
            self.get("/catalog")
        return r
