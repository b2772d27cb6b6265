"""The citizen data-use ledger: shares of one person found by clear key or pseudonym."""

from __future__ import annotations

import datetime as dt

import pytest

from services.audit_ledger import pseudonyms, shares_of, valid_id_number
from services.common.audit import share_record
from services.common.idnumbers import make_resident_id, resident_id_valid
from services.common.masking import consumer_key, hmac_value

SECRET = b"a-test-master-secret-of-32-bytes"
X = "11010519491231002X"
OTHER = "110105194912310029"


def _pseudonym(consumer: str, id_number: str = X) -> str:
    return hmac_value(id_number, consumer_key(SECRET, consumer))


def test_finds_clear_and_pseudonymous_keys_with_kind_and_fields():
    fields = {"id_number": "hmac", "name": "keep"}
    records = [
        share_record("g-mca", "mca", "psb.p", [("e1", {"id_number": _pseudonym("mca")}),
                     ("e2", {"id_number": _pseudonym("mca", OTHER)})], 1000, "live", fields),
        share_record("g-late", "late", "psb.p", [("e3", {"id_number": X})], 2000, "backfill",
                     {"id_number": "keep"}),
        # Another consumer's pseudonym of X does not join under this consumer's key.
        share_record("g-edu", "edu", "psb.p", [("e4", {"id_number": _pseudonym("mca")})], 3000),
    ]  # fmt: skip
    found = shares_of(records, X, pseudonyms(SECRET, X))
    assert [(s.consumer, s.grant_id, s.kind, s.event_ids) for s in found] == [
        ("mca", "g-mca", "live", ["e1"]),
        ("late", "g-late", "backfill", ["e3"]),
    ]
    assert found[0].fields == fields and found[0].ts_ms == 1000


def test_the_id_number_is_checked_and_compacted():
    assert valid_id_number("110105 19491231 002x") == X
    with pytest.raises(ValueError, match="not a valid resident ID"):
        valid_id_number("110105194912310021")


def test_a_resident_of_a_re_coded_district_is_accepted_like_at_ingest():
    """蜀山区 (340104) dates from 2002; a resident born in 1980 registered there is real, and
    ingest accepts the number, so the ledger must find them too."""
    number = make_resident_id("340104", dt.date(1980, 5, 1), 11)
    assert resident_id_valid(number)
    assert valid_id_number(number) == number
