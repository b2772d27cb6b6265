import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.idnumbers import (
    credit_code_valid,
    find_resident_ids,
    gender_of,
    make_credit_code,
    make_resident_id,
    resident_id_check_char,
    resident_id_valid,
)

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

regions = st.from_regex(r"[1-8][0-9]{5}", fullmatch=True)
births = st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31))
seqs = st.integers(0, 999)
resident_ids = st.builds(make_resident_id, regions, births, seqs)
credit_bodies = st.text(alphabet=CREDIT_CHARSET, min_size=17, max_size=17)


def test_published_resident_id_is_valid() -> None:
    assert resident_id_valid("11010519491231002X")
    assert resident_id_valid("11010519491231002x")
    assert gender_of("11010519491231002X") == "F"


def test_generated_resident_id() -> None:
    rid = make_resident_id("340104", datetime.date(1990, 5, 17), 123)
    assert rid == "34010419900517123X"
    assert resident_id_check_char(rid[:17]) == "X"
    assert gender_of(rid) == "M"
    assert gender_of(make_resident_id("340104", datetime.date(1990, 5, 17), 124)) == "F"


@pytest.mark.parametrize(
    "candidate",
    [
        "110105194912310021",  # wrong check character
        "11010519491231002",  # too short
        "11010519491231002XX",  # too long
        "01010519491231002X",  # region starts with 0
        "91010519491231002X",  # region starts with 9
        "",
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
    ],
)
def test_malformed_resident_ids_rejected(candidate: str) -> None:
    assert not resident_id_valid(candidate)


@pytest.mark.parametrize(
    "birth", ["19000229", "20230230", "19901301", "19900100", "18991231", "21010101"]
)
def test_impossible_birth_dates_rejected(birth: str) -> None:
    first17 = "340104" + birth + "123"
    assert not resident_id_valid(first17 + resident_id_check_char(first17))


def test_leap_day_accepted() -> None:
    first17 = "34010420000229123"
    assert resident_id_valid(first17 + resident_id_check_char(first17))


def test_non_string_rejected() -> None:
    assert not resident_id_valid(11010519491231002)  # type: ignore[arg-type]
    assert not credit_code_valid(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("region", "birth", "seq"),
    [
        ("040104", datetime.date(1990, 1, 1), 1),
        ("34010", datetime.date(1990, 1, 1), 1),
        ("340104", datetime.date(1899, 12, 31), 1),
        ("340104", datetime.date(1990, 1, 1), 1000),
        ("340104", datetime.date(1990, 1, 1), -1),
    ],
)
def test_make_resident_id_rejects_bad_parts(region: str, birth: datetime.date, seq: int) -> None:
    with pytest.raises(ValueError):
        make_resident_id(region, birth, seq)


def test_check_char_and_gender_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        resident_id_check_char("1101051949123100")
    with pytest.raises(ValueError):
        gender_of("110105194912310021")


@given(resident_ids)
def test_every_made_id_validates(rid: str) -> None:
    assert resident_id_valid(rid)
    assert resident_id_valid(rid.lower())
    assert find_resident_ids(f"name=张三;id={rid};") == [rid]


@given(resident_ids, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_changing_one_character_invalidates(rid: str, position: int, char: str) -> None:
    # MOD 11-2 catches every single-character substitution (11 is prime, no weight is 0 mod 11).
    changed = rid[:position] + char + rid[position + 1 :]
    if changed != rid:
        assert not resident_id_valid(changed)


@given(seqs)
def test_gender_follows_sequence_parity(seq: int) -> None:
    rid = make_resident_id("110105", datetime.date(1980, 2, 29), seq)
    assert gender_of(rid) == ("M" if seq % 2 else "F")


def test_published_credit_code_is_valid() -> None:
    assert credit_code_valid("91350100M000100Y43")
    assert make_credit_code("91350100M000100Y4") == "91350100M000100Y43"
    assert credit_code_valid("91350100m000100y43")


@pytest.mark.parametrize(
    "candidate",
    [
        "91350100M000100Y44",  # wrong check character
        "91350100M000100Y4",  # too short
        "91350100I000100Y43",  # I is outside the charset
        "91350100O000100Y43",
        "",
    ],
)
def test_bad_credit_codes_rejected(candidate: str) -> None:
    assert not credit_code_valid(candidate)


def test_make_credit_code_rejects_bad_body() -> None:
    with pytest.raises(ValueError):
        make_credit_code("91350100S000100Y4")
    with pytest.raises(ValueError):
        make_credit_code("9135")


@given(credit_bodies, st.integers(0, 17), st.sampled_from(CREDIT_CHARSET))
def test_credit_code_check_catches_substitution(body: str, position: int, char: str) -> None:
    code = make_credit_code(body)
    assert credit_code_valid(code)
    changed = code[:position] + char + code[position + 1 :]
    if changed != code:
        assert not credit_code_valid(changed)


def test_find_resident_ids_in_avro_like_bytes() -> None:
    rid = "11010519491231002X"
    # An Avro length prefix can itself be an ASCII digit glued to the value ('0' is 48 = 2*24).
    payload = b"\x02\x30" + rid.encode() + b"\x00" + "张三".encode()
    assert find_resident_ids(payload) == [rid]
    assert find_resident_ids(f"a{rid}b{rid}") == [rid, rid]


def test_find_resident_ids_ignores_masked_and_invalid() -> None:
    assert find_resident_ids("110105********002X 110105194912310021") == []
    assert find_resident_ids("") == []
