"""Seal data to the authority's key: any process can seal, only the authority can open.

A NaCl sealed box (X25519 + XSalsa20-Poly1305, libsodium's ``crypto_box_seal``) under the
authority's public key. Ingest seals the original of a change it rejects, which never reaches a
source topic, so that the dead letter carries it without showing it; ``govbus dlq redrive``
opens it with the private key. The keys come from the settings (``GOVBUS_DLQ_PUBLIC_KEY``,
``GOVBUS_DLQ_PRIVATE_KEY``); with neither set, one pair is kept in a private file under the
data directory, created on first use.
"""

from __future__ import annotations

import base64
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from services.common.private_files import secret_once
from services.common.settings import ConfigError, Settings

KEY_FILE = "dlq-authority.key"


class SealError(ValueError):
    """A sealed original that this key cannot open (another key, or damaged)."""


def new_key_pair() -> tuple[str, str]:
    """(public, private), base64: the values of GOVBUS_DLQ_PUBLIC_KEY / _PRIVATE_KEY."""
    private = PrivateKey.generate()
    return _b64(bytes(private.public_key)), _b64(bytes(private))


def seal(public_key: PublicKey, data: bytes) -> str:
    return _b64(SealedBox(public_key).encrypt(data))


def unseal(private_key: PrivateKey, sealed: str) -> bytes:
    try:
        return SealedBox(private_key).decrypt(base64.b64decode(sealed))
    except (CryptoError, ValueError) as exc:
        raise SealError("the sealed original does not open with this private key") from exc


def public_key(settings: Settings) -> PublicKey:
    if settings.dlq_public_key:
        return PublicKey(base64.b64decode(settings.dlq_public_key))
    if settings.dlq_private_key:
        return _private_from_settings(settings).public_key
    return _key_file_pair(settings).public_key


def private_key(settings: Settings) -> PrivateKey:
    """The authority's private key; ConfigError naming the setting when this process has none."""
    if settings.dlq_private_key:
        return _private_from_settings(settings)
    if settings.dlq_public_key:
        raise ConfigError(
            "GOVBUS_DLQ_PRIVATE_KEY is not set: only the authority's private key opens the "
            "originals sealed to GOVBUS_DLQ_PUBLIC_KEY"
        )
    return _key_file_pair(settings)


def _private_from_settings(settings: Settings) -> PrivateKey:
    return PrivateKey(base64.b64decode(settings.dlq_private_key.get_secret_value()))


def _key_file_pair(settings: Settings) -> PrivateKey:
    # Private from its creation; two processes starting together get the same pair.
    text = secret_once(Path(settings.data_dir) / KEY_FILE, lambda: new_key_pair()[1])
    return PrivateKey(base64.b64decode(text))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
