"""Mending a rejected change before its redrive."""

from __future__ import annotations

import pytest

from services.dlq_redrive import RedriveError, apply_fixes
from services.ingest.publisher import Change
from tests.unit.fixtures import RESIDENTS, resident


def test_a_fix_is_set_wherever_the_record_has_the_field():
    change = Change(RESIDENTS, "u", resident(), resident(name="王五"), "p:1", "psb-hukou")
    mended = apply_fixes(change, {"id_number": "340104198605120018"})
    assert mended.before["id_number"] == mended.after["id_number"] == "340104198605120018"
    assert mended.after["name"] == "王五" and (mended.op, mended.position) == ("u", "p:1")
    assert change.after["id_number"] == resident()["id_number"]  # the original is unchanged


def test_a_fix_naming_no_field_of_the_change_is_refused():
    change = Change(RESIDENTS, "c", None, resident(), "p:1", "psb-hukou")
    with pytest.raises(RedriveError, match="no field idnumber"):
        apply_fixes(change, {"idnumber": "x"})
