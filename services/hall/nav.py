"""The data hall's navigation: which pages each role sees in the top bar.

A page's own route still checks the role (pages.py, the control plane): the menu only spares
users links to pages that would refuse them. Pages of other modules add their entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.catalog.workflow import Actor, Role

EVERYONE = frozenset(Role)
WATCHERS = frozenset({Role.AUTHORITY, Role.OPS})  # the operations pages


@dataclass(frozen=True)
class NavItem:
    path: str  # under the hall's prefix
    label: str  # message key (i18n.py)
    roles: frozenset[Role] = EVERYONE
    representatives: bool = False  # also shown to a department's chief representative


NAV: list[NavItem] = [
    NavItem("/catalog", "nav.catalog"),
    NavItem("/grants", "nav.grants"),
    NavItem("/inbox", "nav.inbox", frozenset({Role.PROVIDER, Role.AUTHORITY})),
    NavItem("/flow", "nav.flow", WATCHERS),
    NavItem("/deadletters", "nav.deadletters", WATCHERS),
    NavItem("/audit", "nav.audit", WATCHERS),
    NavItem("/scorecard", "nav.scorecard", WATCHERS),
    NavItem("/department", "nav.department", frozenset({Role.AUTHORITY}), representatives=True),
]


def nav_for(actor: Actor) -> list[NavItem]:
    return [
        item
        for item in NAV
        if actor.role in item.roles or (item.representatives and actor.representative)
    ]
