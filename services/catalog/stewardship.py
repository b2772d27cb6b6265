"""Who manages a department's users, system accounts and resources: one rule for the API, the
CLI and the data hall.

The authority manages every department. Each department stations a chief representative
(首席代表) in the hall who keeps their role and also manages the department's own people and
accounts: adds, removes and rotates the tokens of its provider and consumer users (never an
authority or ops user, never another representative, never another department's), and edits
its resources as its providers may. Every such step is in the change log under the acting
user, which is how the authority oversees them.

Each function returns None when the step is allowed, else the reason it is refused.
"""

from __future__ import annotations

from services.catalog.workflow import Actor, Role

STAFF_ROLES = (Role.PROVIDER, Role.CONSUMER)  # the users a representative may manage


def user_problem(actor: Actor, department: str, role: Role, representative: bool) -> str | None:
    """May ``actor`` add, remove or rotate the token of such a user?"""
    if actor.role is Role.AUTHORITY:
        return None
    if not actor.representative:
        return (
            f"{actor.user} is {actor.role}; only the authority or a department's chief "
            "representative manages users"
        )
    if department != actor.department:
        return f"{actor.user} represents {actor.department}; users of {department} are not theirs"
    if role not in STAFF_ROLES:
        return f"a representative manages provider and consumer users; {role} users are not theirs"
    if representative:
        return "representatives are appointed and managed by the authority only"
    return None


def account_problem(actor: Actor, department: str) -> str | None:
    """May ``actor`` see and manage the Kafka system accounts of ``department``? The authority
    and the department's own users (its representative among them) may."""
    if actor.role is Role.AUTHORITY or actor.department == department:
        return None
    return f"{actor.user} of {actor.department} may not see the Kafka access of {department}"


def resource_problem(actor: Actor, provider: str) -> str | None:
    """May ``actor`` create or edit a resource of department ``provider``? The authority any;
    a provider, or the representative, of that department its own."""
    if actor.role is Role.AUTHORITY:
        return None
    if actor.role is not Role.PROVIDER and not actor.representative:
        return f"{actor.user} is {actor.role}; only the authority or a provider edits the catalog"
    if actor.department != provider:
        return f"{actor.user} of {actor.department} may not edit resources of {provider}"
    return None


def is_steward(actor: Actor) -> bool:
    """Whether the actor has the department page (部门管理) of the data hall."""
    return actor.role is Role.AUTHORITY or actor.representative


def department_page_problem(actor: Actor, department: str) -> str | None:
    """May ``actor`` manage ``department`` in the data hall (部门管理)? The authority any
    department, its representative its own."""
    if actor.role is Role.AUTHORITY or (actor.representative and actor.department == department):
        return None
    if actor.representative:
        return f"{actor.user} represents {actor.department}, not {department}"
    return (
        f"{actor.user} is no department's chief representative; the authority manages {department}"
    )
