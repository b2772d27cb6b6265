"""At every start the control topics are brought back to what the store says.

The whole state is owed again through the outbox (records are keyed and compacted, so saying
the same thing twice changes nothing), and a grant the topic has but the store does not is
owed as revoked, so no router keeps delivering under it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from services.catalog.control_store import ControlStore, grant_record
from services.common.catalog import GrantState
from services.common.feed import Decoded
from services.common.grant_feed import GrantRecord


def owe_everything(store: ControlStore, now: dt.datetime) -> int:
    """Owe the bus every resource and grant as the store has them; returns how many."""
    with store.transaction() as conn:
        owed = [store.owe_resource(conn, r, now) for r in store.find_resources(conn)]
        for case in store.find_cases(conn):
            owed.append(store.owe_grant(conn, grant_record(case), now))
    return len(owed)


def revoke_strays(
    store: ControlStore, on_topic: Mapping[str, Decoded[GrantRecord]], now: dt.datetime
) -> list[str]:
    """Owe a revocation for each grant that ``on_topic`` (govbus.grants) has and the store not.

    Only grants on this catalog's resources: another catalog's grants are not ours to revoke
    (a store restored from an older backup is the case in mind). An unreadable record already
    delivers nothing anywhere, since followers fail closed on it.
    """
    revoked = []
    with store.transaction() as conn:
        ours = {r.entry.resource_id for r in store.find_resources(conn)}
        for grant_id, record in on_topic.items():
            if not isinstance(record, GrantRecord) or record.grant.resource not in ours:
                continue
            if record.grant.state is GrantState.REVOKED or store.get_case(conn, grant_id):
                continue
            grant = record.grant.model_copy(update={"state": GrantState.REVOKED})
            store.owe_grant(conn, record.model_copy(update={"grant": grant}), now)
            revoked.append(grant_id)
    return revoked
