"""Who may use the schema registry: HTTP basic auth, and write rights per subject.

Reads need any signed-in principal. Writes (register, delete, config) need the authority (or
the bus's own service user, which acts for it), or the provider whose source topic the subject
belongs to: ``gov.<provider>.<resource>-key`` and ``-value``. Control-plane users sign in with
``<user name>:<API token>``; the bus's services with ``GOVBUS_REGISTRY_USER`` and
``GOVBUS_REGISTRY_PASSWORD``, which confluent-kafka's ``basic.auth.user.info`` sends.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from services.catalog.control_store import ControlStore
from services.catalog.registry_errors import RegistryError
from services.catalog.users import Unauthenticated, token_actor
from services.catalog.workflow import Actor, Role
from services.common.settings import Settings
from services.common.topics import parse_source_topic

# Checks a user name and password: the principal, or Unauthenticated saying why not.
Login = Callable[[str, str], Actor]
basic = HTTPBasic(auto_error=False, realm="govbus registry")


class UnauthorizedError(RegistryError):
    error_code = 40101


class ForbiddenError(RegistryError):
    error_code = 40301


def subject_provider(subject: str) -> str | None:
    """The provider whose source topic the subject is the key or value subject of."""
    for suffix in ("-key", "-value"):
        if subject.endswith(suffix):
            parsed = parse_source_topic(subject.removesuffix(suffix))
            return parsed[0] if parsed else None
    return None


def write_refusal(actor: Actor, subject: str | None) -> str | None:
    """Why ``actor`` may not change ``subject`` (None: the global config), or None if it may."""
    if actor.role is Role.AUTHORITY:
        return None
    if subject is None:
        return f"{actor.user} is {actor.role}; only the authority changes the global config"
    if actor.role is Role.PROVIDER and subject_provider(subject) == actor.department:
        return None
    return (
        f"{actor.user} is {actor.role} of {actor.department} and may not change subject "
        f"{subject!r}; a provider changes only gov.{actor.department}.<resource>-key|-value"
    )


def service_login(settings: Settings) -> Login:
    """Only the bus's service user: the registry served alone (tests, benchmarks)."""
    service = Actor(user=settings.registry_user, department="authority", role=Role.AUTHORITY)
    password = settings.registry_password.get_secret_value().encode()

    def login(user: str, secret: str) -> Actor:
        if user == service.user and hmac.compare_digest(secret.encode(), password):
            return service
        raise Unauthenticated(f"wrong user name or password for {user!r}")

    return login


def user_login(settings: Settings, store: ControlStore) -> Login:
    """The service user, or a control-plane user with its API token as password."""
    service = service_login(settings)

    def login(user: str, secret: str) -> Actor:
        if user == settings.registry_user:
            return service(user, secret)
        actor = token_actor(store, secret)
        if actor.user != user:
            raise Unauthenticated(f"that token is not {user!r}'s")
        return actor

    return login


def signed_in(
    request: Request, creds: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> Actor:
    if creds is None:
        raise UnauthorizedError("missing credentials: sign in with HTTP basic auth (user:token)")
    try:
        return request.app.state.registry_login(creds.username, creds.password)
    except Unauthenticated as exc:
        raise UnauthorizedError(str(exc)) from exc


def _subject_writer(subject: str, actor: Annotated[Actor, Depends(signed_in)]) -> Actor:
    if refusal := write_refusal(actor, subject):
        raise ForbiddenError(refusal)
    return actor


def _global_writer(actor: Annotated[Actor, Depends(signed_in)]) -> Actor:
    if refusal := write_refusal(actor, None):
        raise ForbiddenError(refusal)
    return actor


Reader = Depends(signed_in)
SubjectWriter = Annotated[Actor, Depends(_subject_writer)]
GlobalWriter = Annotated[Actor, Depends(_global_writer)]
