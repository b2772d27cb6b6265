"""What a department's Kafka account is: its principal name, its password, its ACLs (pure).

A department's systems connect as ``dept.<code>``. Whether it provides, consumes or both, it
may write its own source topics ``gov.<code>.*``, read its own delivery topics
``deliver.<code>.*`` with consumer groups named ``<code>.*``, and nothing else: no raw topic
of another department, no delivery topic of another consumer, none of ``govbus.*`` (those are
the bus's services' and the authority's, who connect as the super user). Topic names end the
prefix with a dot, so department ``ps`` never matches ``psb``'s topics.

A department may also have named system accounts (its ETL host, its warehouse reader), each
its own principal ``dept.<code>.<name>`` with the department's ACLs. Department codes hold no
dot and system account names hold none either, so ``dept.a.b`` is always system account ``b``
of department ``a``: no system account can take another department's name or another's
account, and the ACL prefixes stay per department whatever the account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from services.common.topics import delivery_topic, source_topic

ACCOUNT_PREFIX = "dept."
PASSWORD_CHARS = 32
SYSTEM_NAME = r"^[a-z][a-z0-9_-]*$"  # no dot: see the module's docstring
SYSTEM_NAME_MAX = 32


def account_name(department: str, system: str | None = None) -> str:
    """The SCRAM user name (and principal) of a department's account, or of one of its
    system accounts."""
    base = f"{ACCOUNT_PREFIX}{department}"
    return base if system is None else f"{base}.{system}"


def system_name_problem(system: str) -> str | None:
    """Why ``system`` cannot name a system account, or None if it can."""
    if len(system) > SYSTEM_NAME_MAX or re.fullmatch(SYSTEM_NAME, system) is None:
        return (
            f"{system!r} is no system account name "
            f"({SYSTEM_NAME}, at most {SYSTEM_NAME_MAX} characters)"
        )
    return None


def system_of(name: str, department: str) -> str | None:
    """The system account name in the principal ``name`` of ``department``; None for the
    department's own account."""
    own = account_name(department)
    return None if name == own else name.removeprefix(f"{own}.")


def principal(name: str) -> str:
    return f"User:{name}"


def account_password(secret: bytes, name: str, generation: int = 0) -> str:
    """The account's password, derived from the bus's account secret and the account's
    generation (bumped by each rotation): nothing to store."""
    message = f"kafka-scram:{name}" if generation == 0 else f"kafka-scram:{name}:{generation}"
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:PASSWORD_CHARS]


def _allow(kind: ResourceType, prefix: str, who: str, operation: AclOperation) -> AclBinding:
    return AclBinding(
        kind, prefix, ResourcePatternType.PREFIXED, who, "*", operation, AclPermissionType.ALLOW
    )


def department_acls(name: str, department: str) -> set[AclBinding]:
    """Every ACL of the department's account ``name``: no more, no less."""
    who = principal(name)
    own_source = source_topic(department, "")  # "gov.<code>."
    own_delivery = delivery_topic(department, "")  # "deliver.<code>."
    own_groups = f"{department}."
    return {
        # Provider: produce to its own source topics (WRITE implies idempotent production).
        _allow(ResourceType.TOPIC, own_source, who, AclOperation.WRITE),
        _allow(ResourceType.TOPIC, own_source, who, AclOperation.DESCRIBE),
        # Consumer: read its own delivery topics, in its own consumer groups.
        _allow(ResourceType.TOPIC, own_delivery, who, AclOperation.READ),
        _allow(ResourceType.TOPIC, own_delivery, who, AclOperation.DESCRIBE),
        _allow(ResourceType.GROUP, own_groups, who, AclOperation.READ),
        _allow(ResourceType.GROUP, own_groups, who, AclOperation.DESCRIBE),
    }


def acls_of(name: str) -> AclBindingFilter:
    """A filter matching every ACL of the account ``name``."""
    return AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal(name),
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def all_acls() -> AclBindingFilter:
    """A filter matching every ACL on the cluster."""
    return AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def exact_filter(binding: AclBinding) -> AclBindingFilter:
    return AclBindingFilter(
        binding.restype,
        binding.name,
        binding.resource_pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )
