"""Dead letters: every field named, L3/L4 values masked, IDs scrubbed from details; the sealed
original opens only with the authority's private key."""

from __future__ import annotations

import json
import os
import stat

import pytest
from nacl.public import PrivateKey

from services.common.authority_seal import (
    KEY_FILE,
    SealError,
    private_key,
    public_key,
    seal,
    unseal,
)
from services.common.dead_letter import DeadLetter, mask_value, masked_change, scrub
from services.common.idnumbers import find_resident_ids
from services.common.settings import Settings
from tests.unit.fixtures import RESIDENTS, catalog, resident


def test_masked_change_names_every_field_and_masks_l3_l4_only():
    entry = catalog()[RESIDENTS]
    person = resident()
    view = masked_change({"op": "u", "before": person, "after": person}, entry)
    assert view["op"] == "u" and set(view["after"]) == set(person)
    for name, value in view["after"].items():
        level = entry.fields[name].sensitivity.value
        if level in ("L1", "L2"):
            assert value == person[name], name
        elif person[name] is not None:
            assert value != person[name], name
    assert find_resident_ids(json.dumps(view, ensure_ascii=False)) == []


def test_fields_the_catalog_does_not_describe_are_masked_and_open_text_is_scrubbed():
    entry = catalog()[RESIDENTS]
    someone = resident()["id_number"]
    assert mask_value(entry, "not_in_catalog", "clear?") == "***"
    assert mask_value(None, "gender", "男") == "***"  # no catalog record: fail closed
    # An L1/L2 text that happens to quote an ID number shows it masked 6+4.
    assert (
        mask_value(entry, "gender", f"see {someone}") == f"see {someone[:6]}********{someone[-4:]}"
    )
    assert scrub(f"key {someone} changed") == f"key {someone[:6]}********{someone[-4:]} changed"


def test_a_source_dead_letter_is_keyed_and_found_by_its_position_never_its_key():
    letter = DeadLetter("router", "not_avro", "bad bytes", "gov.psb.x", 1, 42)
    assert letter.key() == b"gov.psb.x:1:42"
    body = json.loads(letter.value())
    assert body["source"] == {"topic": "gov.psb.x", "partition": 1, "offset": 42}
    assert body["record"] is None and body["sealed"] is None
    assert dict(letter.headers())["govbus.source.offset"] == b"42"


def test_sealed_originals_open_only_with_the_matching_private_key():
    authority, other = PrivateKey.generate(), PrivateKey.generate()
    sealed = seal(authority.public_key, b'{"id_number": "x"}')
    assert unseal(authority, sealed) == b'{"id_number": "x"}'
    with pytest.raises(SealError):
        unseal(other, sealed)


def test_without_keys_set_one_private_key_file_is_made_and_shared(tmp_path):
    settings = Settings(data_dir=tmp_path)
    pub = public_key(settings)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert bytes(private_key(settings).public_key) == bytes(pub)
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no draft left behind


def test_a_public_key_alone_seals_but_cannot_open(tmp_path):
    from services.common.settings import ConfigError

    pair = PrivateKey.generate()
    import base64

    settings = Settings(
        data_dir=tmp_path, dlq_public_key=base64.b64encode(bytes(pair.public_key)).decode()
    )
    assert bytes(public_key(settings)) == bytes(pair.public_key)
    with pytest.raises(ConfigError, match="GOVBUS_DLQ_PRIVATE_KEY"):
        private_key(settings)
    assert not (tmp_path / KEY_FILE).exists()
