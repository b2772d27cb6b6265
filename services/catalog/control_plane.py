"""The control plane's operations: the workflow and the catalog over the store.

Each change commits in one transaction with what it owes the bus: its records in the outbox
(a resource's on ``govbus.catalog``, a grant's on ``govbus.grants``), which the relay
publishes once Kafka takes them. Nothing here talks to Kafka, so no request waits on it and
no lock is held across it. At start-up the whole state is owed again (convergence.py), so
the topics end up saying what the store says.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from services.catalog.catalog_edit import (
    check_schema_fields,
    key_changes,
    next_schema_version,
    schema_size_problem,
)
from services.catalog.control_store import ControlStore, Resource, grant_record
from services.catalog.kafka_accounts import owe_department_account
from services.catalog.outbox import RecordTooLarge
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.stewardship import resource_problem
from services.catalog.subjects import (
    check_subjects,
    check_value_change,
    register_subjects,
    subject_schemas,
)
from services.catalog.workflow import (
    LIVE,
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
    suspension_reasons,
)
from services.common.catalog import CatalogEntry, Grant, GrantState
from services.common.config_files import load_catalog, load_departments, load_grants
from services.common.plan import compile_plan, plan_delivery
from services.common.schemas import source_schema, value_schema
from services.common.settings import ConfigError


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _dump(model: Any) -> Any:
    return None if model is None else model.model_dump(mode="json")


class ControlPlane:
    def __init__(
        self,
        store: ControlStore,
        registry: SchemaRegistryStore,
        calendar: Calendar,
        schemas_dir: Path,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.store = store
        self.registry = registry
        self.calendar = calendar
        self.schemas_dir = schemas_dir
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

    def _write_case(
        self, conn: Connection, user: str, action: str, before: Case | None, after: Case
    ) -> None:
        now = self._clock()
        self.store.put_case(conn, after)
        self.store.log(
            conn, user, "grant", after.grant.id, action, _dump(before), _dump(after), now
        )
        try:
            self.store.owe_grant(conn, grant_record(after), now)
        except RecordTooLarge as exc:
            raise Refused(str(exc)) from exc

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
            self._write_case(conn, actor.user, "request", None, case)
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
            self._write_case(conn, actor.user, action.value, case, after)
            if action is Action.ACTIVATE and after.grant.amends:
                old = self.store.get_case(conn, after.grant.amends)
                if old is not None and old.grant.state in LIVE:
                    # The amended grant replaces the old one for this consumer and resource.
                    why = f"superseded by {grant_id}"
                    revoked = decide(old, Action.REVOKE, actor, res.entry, now, self.calendar, why)
                    self._write_case(conn, actor.user, Action.REVOKE.value, old, revoked)
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

    def preview_request(
        self, actor: Actor, request: GrantRequest, samples: list[dict[str, Any]]
    ) -> list[dict[str, Any] | None]:
        """What a request, once granted as asked, would deliver for each sample record: checked
        as a request is (only a consumer, only a shared resource), and nothing is stored."""
        entry = self.resource(request.resource).entry
        case = new_case(request, entry, actor, "preview", self._clock(), self.calendar)
        return self.preview(case.grant, samples)

    def preview(self, grant: Grant, samples: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """What the grant's consumer would receive for each sample record (None: filtered out).

        HMAC pseudonyms come from a key made for this call and then forgotten, never from the
        consumer's: a preview shows the shape of a delivery, and is no pseudonym oracle.
        """
        res = self.resource(grant.resource)
        plan = compile_plan(grant, res.entry, res.value_schema, secrets.token_bytes(32))
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
    def _checked(
        self, before: Resource | None, entry: CatalogEntry, schema: dict[str, Any]
    ) -> tuple[Resource, dict[str, str]]:
        """The resource an edit makes, and its registry subjects; refused if it may not be."""
        if problem := schema_size_problem(schema):
            raise Refused(f"value_schema: {problem}")
        if problems := check_schema_fields(entry, schema):
            raise Refused(f"value_schema: {'; '.join(problems)}")
        changed = key_changes(before.entry, before.value_schema, entry, schema) if before else []
        if changed:
            raise Refused(f"{entry.resource_id}: {'; '.join(changed)}")
        if before is not None:
            check_value_change(
                self.registry, entry, before.value_schema, before.schema_version, schema
            )
        subjects = subject_schemas(entry, schema, source_schema(self.schemas_dir))
        check_subjects(self.registry, subjects)
        version = next_schema_version(
            before.value_schema if before else None, before.schema_version if before else 0, schema
        )
        return Resource(entry, schema, version), subjects

    def _write_resource(
        self, conn: Connection, user: str, action: str, before: Resource | None, res: Resource
    ) -> None:
        """Store the resource, suspend the live grants it no longer allows, owe it all."""
        now = self._clock()
        entry = res.entry
        self.store.put_resource(conn, res)
        self.store.log(
            conn,
            user,
            "resource",
            entry.resource_id,
            action,
            before.as_json() if before else None,
            res.as_json(),
            now,
        )
        # Suspensions are owed before the resource's new record, so no follower applies the
        # new catalog to a grant that it stops.
        for case in self.store.find_cases(conn, resource=entry.resource_id, state="active"):
            if reasons := suspension_reasons(case.grant, entry):
                why = f"{action} of {entry.resource_id} by {user}: {'; '.join(reasons)}"
                after = decide(case, Action.SUSPEND, SYSTEM, entry, now, self.calendar, why)
                self._write_case(conn, user, Action.SUSPEND.value, case, after)
        try:
            self.store.owe_resource(conn, res, now)
        except RecordTooLarge as exc:
            raise Refused(str(exc)) from exc

    def put_resource(
        self, actor: Actor, entry: CatalogEntry, schema: dict[str, Any] | None
    ) -> Resource:
        if problem := resource_problem(actor, entry.provider):
            raise Forbidden(problem)
        with self.store.transaction() as conn:
            before = self.store.get_resource(conn, entry.resource_id)
            if schema is None:
                if before is None:
                    raise Refused(f"value_schema: a new resource {entry.resource_id} needs one")
                schema = before.value_schema
            resource, subjects = self._checked(before, entry, schema)
            self._write_resource(
                conn, actor.user, "update" if before else "create", before, resource
            )
            # Last, inside the transaction: a refusal here still rolls the edit back.
            register_subjects(self.registry, subjects)
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
        with self.store.transaction() as conn:
            for code, dept in depts.items():
                self.store.put_department(conn, code, dept)
                owe_department_account(conn, code)
            subjects: dict[str, str] = {}
            for entry in catalog.values():
                before = self.store.get_resource(conn, entry.resource_id)
                resource, more = self._checked(before, entry, value_schema(entry, schemas_dir))
                subjects |= more
                self._write_resource(conn, actor.user, "import", before, resource)
            for grant in file_grants:
                self._import_grant(conn, actor, grant)
            register_subjects(self.registry, subjects)
        return {"departments": len(depts), "resources": len(catalog), "grants": len(file_grants)}

    def _import_grant(self, conn: Connection, actor: Actor, grant: Grant) -> None:
        now = self._clock()
        before = self.store.get_case(conn, grant.id)
        was_active = before is not None and before.grant.state is GrantState.ACTIVE
        activations = before.activations if before else 0
        if grant.state is GrantState.ACTIVE and not was_active:
            activations += 1  # a grant imported as active is an activation: it is backfilled
        case = Case(
            grant=grant,
            requested_by=f"import:{actor.user}",
            requested_at=now,
            updated_at=now,
            activations=activations,
        )
        self._write_case(conn, actor.user, "import", before, case)
