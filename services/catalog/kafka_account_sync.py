"""Applies the department accounts the control store owes Kafka: SCRAM credentials and ACLs.

A thread beside the outbox relay, in the same way: it applies what is owed with the
AdminClient, marks it applied once Kafka has answered, and retries with a bounded backoff
while Kafka is away. Everything it does is idempotent (an upsert of the same password, ACLs
that exist already), so at every start the whole state is applied again, and what Kafka has
beyond it for these accounts (an ACL granted by hand, or one a department should no longer
have) is removed.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from services.catalog import kafka_accounts
from services.catalog.control_store import ControlStore
from services.catalog.kafka_accounts import KafkaAccount
from services.catalog.kafka_acls import (
    account_name,
    account_password,
    acls_of,
    all_acls,
    department_acls,
    exact_filter,
    principal,
)
from services.catalog.retry_loop import RetryLoop
from services.common.kafka_clients import make_admin
from services.common.private_files import secret_once
from services.common.settings import Settings

log = logging.getLogger("govbus.kafka-accounts")

SCRAM = ScramMechanism.SCRAM_SHA_512
ITERATIONS = 8192  # Kafka's own default for SCRAM-SHA-512
IDLE_POLL_S = 1.0
ADMIN_TIMEOUT_S = 10.0


def account_secret(settings: Settings) -> bytes:
    """The secret department passwords are derived from: set, or generated once into a file
    under data_dir that is private from its creation."""
    if settings.kafka_account_secret is not None:
        return settings.kafka_account_secret.get_secret_value().encode()
    path = settings.data_dir / "kafka-accounts.secret"
    return secret_once(path, lambda: secrets.token_urlsafe(32)).encode()


def _wait_all(futures: dict[Any, Any], ignore: tuple[str, ...] = ()) -> None:
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() not in ignore:
                raise


class KafkaAccountSync:
    """Keeps Kafka's department credentials and ACLs as the control store says."""

    def __init__(self, store: ControlStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._secret = account_secret(settings)
        self._reconciled = False
        self._admin: AdminClient | None = None
        self._loop = RetryLoop(
            "kafka-accounts", lambda: self.apply_owed() > 0, self._failed, IDLE_POLL_S
        )
        self.failures = 0

    # -- what other threads call ------------------------------------------------------------
    def start(self) -> KafkaAccountSync:
        self._loop.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)

    def notify(self) -> None:
        """An account was added, removed or rotated: apply it now rather than at the next poll."""
        self._loop.notify()

    def client_config(self, department: str, system: str | None = None) -> dict[str, str]:
        """The confluent-kafka configuration a department's systems (or its system account
        ``system``) connect with, at the account's current password generation."""
        name = account_name(department, system)
        with self._store.reading() as conn:
            account = kafka_accounts.find(conn, name)
        generation = 0 if account is None else account.generation
        password = account_password(self._secret, name, generation)
        return {
            "bootstrap.servers": self._settings.kafka_bootstrap,
            **self._settings.kafka_security(name, password),
        }

    def owed(self) -> int:
        with self._store.reading() as conn:
            return len(kafka_accounts.pending(conn))

    # -- applying ---------------------------------------------------------------------------
    def apply_owed(self) -> int:
        """Apply every account the store owes Kafka (once per start: everything, and remove
        what Kafka has beyond it); returns how many were applied."""
        if not self._reconciled:
            departments = list(self._store.departments())
            with self._store.transaction() as conn:
                kafka_accounts.owe_all_again(conn, departments)
        with self._store.reading() as conn:
            owed = kafka_accounts.pending(conn)
        if not owed and self._reconciled:
            return 0
        if self._admin is None:
            self._admin = make_admin(self._settings)
        admin = self._admin
        for account in owed:
            self._apply(admin, account)
            with self._store.transaction() as conn:
                kafka_accounts.mark_applied(conn, account)
        if not self._reconciled:
            self._remove_strays(admin)
            self._reconciled = True
        return len(owed)

    def _apply(self, admin: AdminClient, account: KafkaAccount) -> None:
        if account.removed:
            # The credential first: from then on the account cannot log in at all.
            deletion = UserScramCredentialDeletion(account.name, SCRAM)
            _wait_all(
                admin.alter_user_scram_credentials([deletion], request_timeout=ADMIN_TIMEOUT_S),
                ignore=("RESOURCE_NOT_FOUND",),
            )
            _wait_all(admin.delete_acls([acls_of(account.name)], request_timeout=ADMIN_TIMEOUT_S))
            log.info("kafka account %s removed", account.name)
            return
        # An upsert replaces the account's credential: a rotated-out password stops working.
        password = account_password(self._secret, account.name, account.generation).encode()
        upsert = UserScramCredentialUpsertion(
            account.name, ScramCredentialInfo(SCRAM, ITERATIONS), password
        )
        _wait_all(admin.alter_user_scram_credentials([upsert], request_timeout=ADMIN_TIMEOUT_S))
        wanted = list(department_acls(account.name, account.department))
        _wait_all(admin.create_acls(wanted, request_timeout=ADMIN_TIMEOUT_S))
        log.info("kafka account %s applied (%d ACLs)", account.name, len(wanted))

    def _remove_strays(self, admin: AdminClient) -> None:
        with self._store.reading() as conn:
            accounts = kafka_accounts.active(conn)
        wanted = set().union(*(department_acls(a.name, a.department) for a in accounts))
        present = admin.describe_acls(all_acls(), request_timeout=ADMIN_TIMEOUT_S).result()
        # Only the principals this store knows: another catalog on the same cluster (a test's,
        # a staging one's) keeps its own accounts.
        mine = {principal(a.name) for a in accounts}
        extra = [b for b in present if b.principal in mine and b not in wanted]
        if extra:
            filters = [exact_filter(b) for b in extra]
            _wait_all(admin.delete_acls(filters, request_timeout=ADMIN_TIMEOUT_S))
            log.warning("removed %d ACLs no department account should have", len(extra))

    def _failed(self, exc: Exception, backoff_s: float) -> None:
        self.failures += 1
        self._admin = None  # a new client: the next round starts from a clean slate
        log.warning("kafka accounts not applied (%s); retrying in %.1f s", exc, backoff_s)
