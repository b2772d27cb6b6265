"""The control plane's operations: the workflow and the catalog over the store, published live.

Every grant change is published to ``govbus.grants`` inside the store's transaction, before
it commits: if Kafka does not take it, nothing changes. At start-up every grant is published
again, so the topic always ends up saying what the store says.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from services.catalog.control_store import ControlStore, Resource
from services.catalog.workflow import (
    SYSTEM,
    Action,
    Actor,
    Calendar,
    Case,
    Conflict,
    Forbidden,
    GrantRequest,
    NotFound,
    Refused,
    Role,
    decide,
    expired,
    new_case,
)
from services.common.catalog import CatalogEntry, Grant, GrantState
from services.common.config_files import load_catalog, load_departments, load_grants
from services.common.grant_feed import GrantRecord
from services.common.plan import compile_plan, plan_delivery
from services.common.schemas import value_schema
from services.common.settings import ConfigError

Publish = Callable[[list[GrantRecord]], None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


def check_schema_fields(entry: CatalogEntry, schema: Mapping[str, Any]) -> list[str]:
    """The schema and the entry must name the same fields: every field needs a sensitivity."""
    names = [f.get("name") for f in schema.get("fields", [])]
    problems = []
    if undeclared := [n for n in names if n not in entry.fields]:
        problems.append(f"schema fields {undeclared} have no catalog entry (sensitivity)")
    if absent := [n for n in entry.fields if n not in names]:
        problems.append(f"fields {absent} are not in the value schema")
    return problems


class ControlPlane:
    def __init__(
        self,
        store: ControlStore,
        publish: Publish,
        calendar: Calendar,
        schemas_dir: Path,
        mask_secret: bytes,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.store = store
        self._publish = publish
        self.calendar = calendar
        self._schemas_dir = schemas_dir
        self._mask_secret = mask_secret
        self._clock = clock

    # -- reading ----------------------------------------------------------------------------
    def resource(self, resource_id: str) -> Resource:
        found = self.store.resource(resource_id)
        if found is None:
            raise NotFound(f"no resource {resource_id!r} in the catalog")
        return found

    def case(self, grant_id: str) -> Case:
        found = self.store.case(grant_id)
        if found is None:
            raise NotFound(f"no grant {grant_id!r}")
        return found

    def records(self, cases: Iterable[Case]) -> list[GrantRecord]:
        out = []
        for case in cases:
            res = self.resource(case.grant.resource)
            out.append(res.record(case.grant))
        return out

    def publish_all(self, on_topic: Iterable[GrantRecord] = ()) -> int:
        """Publish every grant's state, so the topic says what the store says after a restart.

        ``on_topic`` is what the topic holds now: a grant there on one of this catalog's
        resources that the store does not know (a store restored from an older backup, say)
        is published as revoked, so no router keeps delivering under it.
        """
        records = self.records(self.store.cases())
        known = {r.grant.id for r in records}
        ours = {r.entry.resource_id for r in self.store.resources()}
        for r in on_topic:
            unknown = r.grant.id not in known and r.resource.resource_id in ours
            if unknown and r.grant.state is not GrantState.REVOKED:
                revoked = r.grant.model_copy(update={"state": GrantState.REVOKED})
                records.append(r.model_copy(update={"grant": revoked}))
        self._publish(records)
        return len(records)

    # -- grants -----------------------------------------------------------------------------
    def request(self, actor: Actor, request: GrantRequest) -> Case:
        now = self._clock()
        with self.store.transaction() as conn:
            res = self.store.get_resource(conn, request.resource)
            if res is None:
                raise NotFound(f"no resource {request.resource!r} in the catalog")
            if request.amends:
                old = self.store.get_case(conn, request.amends)
                if old is None or (old.grant.consumer, old.grant.resource) != (
                    actor.department,
                    request.resource,
                ):
                    raise Refused(
                        f"amends: {request.amends!r} is not a grant of {actor.department} "
                        f"on {request.resource}"
                    )
            code = res.entry.code.replace("_", "-")
            grant_id = f"{actor.department.replace('_', '-')}-{code}-{secrets.token_hex(3)}"
            case = new_case(request, res.entry, actor, grant_id, now, self.calendar)
            self.store.put_case(conn, case)
            self.store.log(conn, actor.user, "grant", grant_id, "request", None, _dump(case), now)
            self._publish([res.record(case.grant)])
        return case

    def act(self, actor: Actor, grant_id: str, action: Action, reason: str | None = None) -> Case:
        now = self._clock()
        with self.store.transaction() as conn:
            case = self.store.get_case(conn, grant_id)
            if case is None:
                raise NotFound(f"no grant {grant_id!r}")
            res = self.store.get_resource(conn, case.grant.resource)
            if res is None:
                raise Conflict(
                    f"grant {grant_id} is on {case.grant.resource}, no longer in the catalog"
                )
            if actor.role is Role.CONSUMER and actor.department != case.grant.consumer:
                raise Forbidden(f"{actor.user} may not act on grants of {case.grant.consumer}")
            after = decide(case, action, actor, res.entry, now, self.calendar, reason)
            steps = [(action.value, case, after)]
            if action is Action.ACTIVATE and after.grant.amends:
                old = self.store.get_case(conn, after.grant.amends)
                if old is not None and old.grant.state is GrantState.ACTIVE:
                    # The amended grant replaces the old one for this consumer and resource.
                    why = f"superseded by {grant_id}"
                    revoked = decide(old, Action.REVOKE, actor, res.entry, now, self.calendar, why)
                    steps.append((Action.REVOKE.value, old, revoked))
            for name, before, changed in steps:
                self.store.put_case(conn, changed)
                self.store.log(
                    conn,
                    actor.user,
                    "grant",
                    changed.grant.id,
                    name,
                    _dump(before),
                    _dump(changed),
                    now,
                )
            self._publish([res.record(changed.grant) for _, _, changed in steps])
        return after

    def expire_due(self) -> list[Case]:
        """Close every grant whose validity has ended (run periodically by the service)."""
        today = self._clock().date()
        done = []
        for case in expired(self.store.cases(), today):
            try:
                done.append(self.act(SYSTEM, case.grant.id, Action.EXPIRE))
            except Conflict:
                continue  # changed meanwhile
        return done

    def preview(self, grant: Grant, samples: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """What the grant's consumer would receive for each sample record (None: filtered out)."""
        res = self.resource(grant.resource)
        plan = compile_plan(grant, res.entry, res.value_schema, self._mask_secret)
        out = []
        for i, record in enumerate(samples):
            missing = [f for f in grant.fields if f not in record]
            if missing:
                raise Refused(f"sample {i}: fields {missing} missing")
            event = {
                "before": None,
                "after": record,
                "op": "c",
                "event_id": f"preview-{i}",
                "ts_ms": 0,
            }
            delivery = plan_delivery(plan, event)
            out.append(None if delivery is None else delivery.value["record"])
        return out

    # -- catalog ----------------------------------------------------------------------------
    def put_resource(
        self, actor: Actor, entry: CatalogEntry, schema: dict[str, Any] | None
    ) -> Resource:
        if actor.role not in (Role.AUTHORITY, Role.PROVIDER):
            raise Forbidden(
                f"{actor.user} is {actor.role}; only the authority or a provider edits the catalog"
            )
        if actor.role is Role.PROVIDER and actor.department != entry.provider:
            raise Forbidden(
                f"{actor.user} of {actor.department} may not edit resources of {entry.provider}"
            )
        now = self._clock()
        with self.store.transaction() as conn:
            before = self.store.get_resource(conn, entry.resource_id)
            if schema is None:
                if before is None:
                    raise Refused(f"value_schema: a new resource {entry.resource_id} needs one")
                schema = before.value_schema
            problems = check_schema_fields(entry, schema)
            if problems:
                raise Refused(f"value_schema: {'; '.join(problems)}")
            resource = Resource(entry, schema)
            self.store.put_resource(conn, resource)
            self.store.log(
                conn,
                actor.user,
                "resource",
                entry.resource_id,
                "update" if before else "create",
                before.as_json() if before else None,
                resource.as_json(),
                now,
            )
            # Followers compile grants from the record: they get the resource's new schema.
            cases = self.store.find_cases(conn, resource=entry.resource_id)
            self._publish([resource.record(c.grant) for c in cases])
        return resource

    def import_folder(
        self, actor: Actor, catalog_dir: Path, grants_dir: Path | None, schemas_dir: Path
    ) -> dict[str, int]:
        """Departments and resources from ``catalog_dir``, grants from ``grants_dir``.

        The files are checked exactly as the spine checks them; the first problem stops the
        import with a message naming file, entry and field, and nothing is written.
        """
        if actor.role is not Role.AUTHORITY:
            raise Forbidden(f"{actor.user} is {actor.role}; only the authority imports a catalog")
        try:
            depts = load_departments(catalog_dir)
            catalog = load_catalog(catalog_dir, schemas_dir)
            has_grants = grants_dir is not None and grants_dir.is_dir()
            file_grants = load_grants(grants_dir, catalog) if has_grants else []
        except ConfigError as exc:
            raise Refused(str(exc)) from exc
        now = self._clock()
        with self.store.transaction() as conn:
            for code, dept in depts.items():
                self.store.put_department(conn, code, dept)
            imported = {}
            for entry in catalog.values():
                before = self.store.get_resource(conn, entry.resource_id)
                resource = Resource(entry, value_schema(entry, schemas_dir))
                imported[entry.resource_id] = resource
                self.store.put_resource(conn, resource)
                self.store.log(
                    conn,
                    actor.user,
                    "resource",
                    entry.resource_id,
                    "import",
                    before.as_json() if before else None,
                    resource.as_json(),
                    now,
                )
            cases = []
            for grant in file_grants:
                before = self.store.get_case(conn, grant.id)
                case = Case(
                    grant=grant,
                    requested_by=f"import:{actor.user}",
                    requested_at=now,
                    updated_at=now,
                )
                self.store.put_case(conn, case)
                self.store.log(
                    conn, actor.user, "grant", grant.id, "import", _dump(before), _dump(case), now
                )
                cases.append(case)
            self._publish([imported[c.grant.resource].record(c.grant) for c in cases])
        return {"departments": len(depts), "resources": len(catalog), "grants": len(file_grants)}

    def import_files(self, actor: Actor, files: Mapping[str, str]) -> dict[str, int]:
        """Import file texts keyed by relative path: catalog/*.yaml, grants/*.yaml, schemas/*."""
        with tempfile.TemporaryDirectory(prefix="govbus-import-") as tmp:
            root = Path(tmp)
            schemas = root / "schemas"
            shutil.copytree(self._schemas_dir, schemas)
            for rel, text in files.items():
                parts = Path(rel).parts
                if (
                    len(parts) != 2
                    or parts[0] not in ("catalog", "grants", "schemas")
                    or parts[1].startswith(".")
                ):
                    raise Refused(
                        f"files: {rel!r} is not catalog/<name>, grants/<name> or schemas/<name>"
                    )
                (root / parts[0]).mkdir(exist_ok=True)
                (root / rel).write_text(text, encoding="utf-8")
            try:
                return self.import_folder(actor, root / "catalog", root / "grants", schemas)
            except Refused as exc:
                raise Refused(exc.message.replace(f"{root}/", "")) from exc

    def export_files(self) -> dict[str, str]:
        """The catalog and grants as the files the spine reads, for keeping in git."""
        dump = lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)  # noqa: E731
        resources = self.store.resources()
        depts = {code: _dump(d) for code, d in self.store.departments().items()}
        files = {
            "catalog/departments.yaml": dump({"departments": depts}),
            "catalog/resources.yaml": dump({"resources": [_dump(r.entry) for r in resources]}),
            "grants/grants.yaml": dump(
                {
                    "grants": [
                        c.grant.model_dump(mode="json", exclude_none=True)
                        for c in self.store.cases()
                    ]
                }
            ),
        }
        for r in resources:
            files[f"schemas/{r.entry.schema_file}"] = (
                json.dumps(r.value_schema, ensure_ascii=False, indent=2) + "\n"
            )
        return files


def bootstrap_authority(store: ControlStore, token: str | None) -> str | None:
    """The first user, an authority administrator; its token is returned once (else None)."""
    if store.has_users():
        return None
    with store.transaction() as conn:
        token = store.add_user(conn, "admin", "authority", Role.AUTHORITY, token)
        store.log(conn, "system", "user", "admin", "create", None, {"role": "authority"}, _now())
    return token


def add_user(store: ControlStore, actor: Actor, name: str, department: str, role: Role) -> str:
    if actor.role is not Role.AUTHORITY:
        raise Forbidden(f"{actor.user} is {actor.role}; only the authority manages users")
    if (
        role is not Role.AUTHORITY
        and department not in store.departments()
        and department != "authority"
    ):
        raise Refused(f"department: unknown department {department!r}")
    with store.transaction() as conn:
        token = store.add_user(conn, name, department, role)
        store.log(
            conn,
            actor.user,
            "user",
            name,
            "issue-token",
            None,
            {"department": department, "role": role.value},
            _now(),
        )
    return token


def remove_user(store: ControlStore, actor: Actor, name: str) -> None:
    """Delete a user: its token stops working at once."""
    if actor.role is not Role.AUTHORITY:
        raise Forbidden(f"{actor.user} is {actor.role}; only the authority manages users")
    if name == actor.user:
        raise Refused("an authority user cannot remove itself")
    with store.transaction() as conn:
        if not store.remove_user(conn, name):
            raise NotFound(f"no user {name!r}")
        store.log(conn, actor.user, "user", name, "remove", None, None, _now())
