import datetime
import string
import uuid
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.common.idnumbers import find_resident_ids, make_resident_id
from services.common.masking import (
    HMAC_HEX_CHARS,
    REDACTED,
    MaskingError,
    MaskSpec,
    build_masker,
    consumer_key,
    generalize_age,
    generalize_date,
    generalize_region,
    hmac_value,
    output_type,
    partial,
    partial_name,
    redact,
)

MASTER = b"0123456789abcdef0123456789abcdef"
KEY_A = consumer_key(MASTER, "wsjkw")
KEY_B = consumer_key(MASTER, "gaj")
ALL_METHOD_SPECS = [
    MaskSpec(method="keep"),
    MaskSpec(method="redact"),
    MaskSpec(method="hmac"),
    MaskSpec(method="partial", style="id_card"),
    MaskSpec(method="partial", style="phone"),
    MaskSpec(method="partial", style="name"),
    MaskSpec(method="partial", head=1, tail=1),
    MaskSpec(method="generalize", to="year"),
    MaskSpec(method="generalize", to="year_month"),
    MaskSpec(method="generalize", to="region_prefix"),
    MaskSpec(method="generalize", to="age_band"),
]
resident_ids = st.builds(
    make_resident_id,
    st.from_regex(r"[1-8][0-9]{5}", fullmatch=True),
    st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)),
    st.integers(0, 999),
)


def masker(key: bytes = KEY_A, **spec: Any) -> Any:
    return build_masker(MaskSpec(**spec), key)


# --- spec validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"method": "partial"}, "partial needs style"),
        ({"method": "partial", "style": "phone", "head": 2}, "either style or head/tail"),
        ({"method": "generalize"}, "generalize needs to"),
        ({"method": "generalize", "to": "year", "digits": 2}, "digits only applies"),
        ({"method": "generalize", "to": "year", "band": 5}, "band only applies"),
        ({"method": "hmac", "head": 3}, "takes no parameter"),
        ({"method": "keep", "to": "year"}, "takes no parameter"),
        ({"method": "generalize", "to": "region_prefix", "digits": 6}, "less than or equal"),
        ({"method": "generalize", "to": "age_band", "band": 1}, "greater than or equal"),
        ({"method": "partial", "head": -1}, "greater than or equal"),
        ({"method": "tokenize"}, "method"),
        ({"method": "keep", "colour": "red"}, "Extra inputs"),
    ],
)
def test_invalid_specs_rejected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MaskSpec(**spec)


def test_spec_is_frozen() -> None:
    spec = MaskSpec(method="keep")
    with pytest.raises(ValidationError):
        spec.method = "drop"  # type: ignore[misc]


# --- methods ---------------------------------------------------------------------------------


def test_keep_and_drop() -> None:
    assert masker(method="keep")("张三") == "张三"
    assert masker(method="drop") is None


def test_redact() -> None:
    mask = masker(method="redact")
    assert mask("张三") == REDACTED
    assert mask(42) is None
    assert mask(b"raw") is None


def test_partial_presets() -> None:
    assert masker(method="partial", style="id_card")("34010419900517123X") == "340104********123X"
    assert masker(method="partial", style="phone")("13812345678") == "138****5678"
    name = masker(method="partial", style="name")
    assert name("张三丰") == "张**"
    assert name("张三") == "张*"
    assert name("欧阳娜娜") == "欧阳**"
    assert name("司马光") == "司马*"


def test_partial_short_values_fully_masked() -> None:
    assert partial("1234", head=3, tail=4) == "****"
    assert partial("1234567", head=3, tail=4) == "*******"
    assert partial_name("张") == "*"
    assert partial_name("欧阳") == "**"
    assert partial("", head=1) == ""


def test_partial_head_tail() -> None:
    assert masker(method="partial", head=2)("abcdef") == "ab****"
    assert masker(method="partial", tail=2)("abcdef") == "****ef"
    assert masker(method="partial", head=0, tail=0)("abc") == "***"


def test_hmac_known_shape_and_determinism() -> None:
    mask = masker(method="hmac")
    digest = mask("11010519491231002X")
    assert len(digest) == HMAC_HEX_CHARS
    assert set(digest) <= set(string.hexdigits.lower())
    assert digest == mask("11010519491231002X")
    assert digest != masker(KEY_B, method="hmac")("11010519491231002X")


def test_hmac_int_joins_with_its_decimal_text() -> None:
    assert hmac_value(12345, KEY_A) == hmac_value("12345", KEY_A)
    u = uuid.UUID(int=7)
    assert hmac_value(u, KEY_A) == hmac_value(str(u), KEY_A)


def test_consumer_key_is_per_consumer_and_needs_a_real_secret() -> None:
    assert consumer_key(MASTER, "wsjkw") == KEY_A
    assert KEY_A != KEY_B
    assert consumer_key(b"f" * 32, "wsjkw") != KEY_A
    with pytest.raises(ValueError):
        consumer_key(b"short", "wsjkw")
    with pytest.raises(ValueError):
        consumer_key(MASTER, "")


def test_hmac_needs_a_key() -> None:
    with pytest.raises(MaskingError):
        build_masker(MaskSpec(method="hmac"), b"")


def test_generalize() -> None:
    assert masker(method="generalize", to="year")("1990-05-17") == "1990"
    assert masker(method="generalize", to="year_month")("1990-05-17") == "1990-05"
    assert masker(method="generalize", to="year_month")(datetime.date(1990, 5, 17)) == "1990-05"
    ts = datetime.datetime(2024, 3, 1, 8, 30, tzinfo=datetime.UTC)
    assert masker(method="generalize", to="year")(ts) == "2024"
    assert masker(method="generalize", to="year")("2024-03-01T08:30:00") == "2024"
    assert masker(method="generalize", to="region_prefix")("340104") == "340100"
    assert masker(method="generalize", to="region_prefix", digits=2)("340104") == "340000"
    assert masker(method="generalize", to="age_band")(35) == "30-39"
    assert masker(method="generalize", to="age_band", band=5)(35) == "35-39"
    assert masker(method="generalize", to="age_band")(0) == "0-9"


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ({"method": "generalize", "to": "year"}, "19900517"),
        ({"method": "generalize", "to": "year"}, "1990-02-30"),
        ({"method": "generalize", "to": "year"}, 1990),
        ({"method": "generalize", "to": "region_prefix"}, "34010"),
        ({"method": "generalize", "to": "region_prefix"}, 340104),
        ({"method": "generalize", "to": "age_band"}, "35"),
        ({"method": "generalize", "to": "age_band"}, -1),
        ({"method": "generalize", "to": "age_band"}, True),
        ({"method": "partial", "style": "phone"}, 13812345678),
        ({"method": "hmac"}, 1.5),
        ({"method": "hmac"}, True),
    ],
)
def test_wrong_shape_raises_without_leaking(spec: dict[str, Any], value: Any) -> None:
    with pytest.raises(MaskingError) as caught:
        masker(**spec)(value)
    message = str(caught.value)
    assert message.startswith(spec["method"])
    assert str(value) not in message


@pytest.mark.parametrize("spec", ALL_METHOD_SPECS, ids=lambda s: f"{s.method}-{s.style or s.to}")
def test_none_passes_through(spec: MaskSpec) -> None:
    assert build_masker(spec, KEY_A)(None) is None


# --- properties ------------------------------------------------------------------------------


@given(st.text(), st.text())
def test_redact_output_independent_of_input(a: str, b: str) -> None:
    # Stronger than "does not contain the value": the output carries no information at all.
    # (It trivially "contains" the values "", "*", "**" and "***".)
    assert redact(a) == redact(b) == REDACTED


@given(st.text(), st.integers(0, 20), st.integers(0, 20))
def test_partial_keeps_only_head_and_tail(value: str, head: int, tail: int) -> None:
    masked = partial(value, head, tail)
    assert len(masked) == len(value)
    if head + tail >= len(value):
        assert masked == "*" * len(value)
    else:
        middle = masked[head : len(value) - tail]
        assert masked[:head] == value[:head]
        assert masked[len(value) - tail :] == value[len(value) - tail :]
        assert middle == "*" * len(middle)
        # The only way the output equals the input is a value already starred where masked.
        if value[head : len(value) - tail] != middle:
            assert masked != value


@given(st.text(alphabet="张王欧阳司马三丰娜*abc", max_size=6))
def test_partial_name_keeps_only_the_surname(value: str) -> None:
    masked = partial_name(value)
    kept = 2 if value[:2] in ("欧阳", "司马") else 1
    if len(value) <= kept:
        assert masked == "*" * len(value)
    else:
        assert masked == value[:kept] + "*" * (len(value) - kept)


@given(resident_ids)
def test_partial_id_card_hides_the_id(rid: str) -> None:
    masked = masker(method="partial", style="id_card")(rid)
    assert masked == rid[:6] + "********" + rid[14:]
    assert find_resident_ids(masked) == []


@given(st.text(), st.text())
def test_hmac_deterministic_per_consumer_and_distinct_across(value: str, other: str) -> None:
    a = hmac_value(value, KEY_A)
    assert a == hmac_value(value, KEY_A)
    # 128-bit outputs: a collision here would be a 2**-128 event, not a flaky test.
    assert a != hmac_value(value, KEY_B)
    assert (a == hmac_value(other, KEY_A)) == (value == other)


@given(st.text())
def test_hmac_output_does_not_contain_value(value: str) -> None:
    digest = hmac_value(value, KEY_A)
    if set(value) - set("0123456789abcdef"):
        assert value not in digest  # the output alphabet cannot even spell the value
    elif len(value) >= 8:
        # A given 8+ hex-char string lands in 32 random hex chars with odds below 2**-27.
        assert value not in digest
    # Shorter all-hex values ("a", "3f") can appear by coincidence; that reveals nothing.


@given(st.dates(datetime.date(1, 1, 1), datetime.date(9999, 12, 31)))
def test_generalize_date_properties(d: datetime.date) -> None:
    text = d.isoformat()
    assert generalize_date(text, "year") == text[:4] == generalize_date(d, "year")
    assert generalize_date(text, "year_month") == text[:7]


@given(st.from_regex(r"[0-9]{6}", fullmatch=True), st.integers(1, 5))
def test_generalize_region_properties(code: str, digits: int) -> None:
    out = generalize_region(code, digits)
    assert len(out) == 6
    assert out.startswith(code[:digits])
    assert out[digits:] == "0" * (6 - digits)


@given(st.integers(0, 200), st.integers(2, 50))
def test_generalize_age_band_contains_age(age: int, band: int) -> None:
    low, high = map(int, generalize_age(age, band).split("-"))
    assert low <= age <= high
    assert high - low + 1 == band
    assert low % band == 0


@given(st.text(min_size=1))
def test_generalize_never_returns_clear_value_on_bad_input(value: str) -> None:
    assume(not value.isdigit())
    for to in ("region_prefix", "age_band"):
        with pytest.raises(MaskingError):
            masker(method="generalize", to=to)(value)


# --- output types ----------------------------------------------------------------------------

DATE = {"type": "int", "logicalType": "date"}


@pytest.mark.parametrize(
    ("spec", "input_type", "expected"),
    [
        (MaskSpec(method="keep"), DATE, DATE),
        (MaskSpec(method="drop"), "string", None),
        (MaskSpec(method="redact"), "string", "string"),
        (MaskSpec(method="redact"), ["null", "string"], ["null", "string"]),
        (MaskSpec(method="redact"), "int", ["null", "int"]),
        (MaskSpec(method="redact"), DATE, ["null", DATE]),
        (MaskSpec(method="redact"), ["null", "long"], ["null", "long"]),
        (MaskSpec(method="hmac"), "long", "string"),
        (MaskSpec(method="hmac"), ["null", "string"], ["null", "string"]),
        (MaskSpec(method="partial", style="phone"), "string", "string"),
        (MaskSpec(method="generalize", to="year"), DATE, "string"),
        (MaskSpec(method="generalize", to="year_month"), ["null", "string"], ["null", "string"]),
        (MaskSpec(method="generalize", to="age_band"), "int", "string"),
        (MaskSpec(method="generalize", to="region_prefix"), "string", "string"),
    ],
)
def test_output_type(spec: MaskSpec, input_type: Any, expected: Any) -> None:
    assert output_type(spec, input_type) == expected


@pytest.mark.parametrize(
    ("spec", "input_type"),
    [
        (MaskSpec(method="partial", style="phone"), "long"),
        (MaskSpec(method="hmac"), "double"),
        (MaskSpec(method="hmac"), DATE),
        (MaskSpec(method="generalize", to="age_band"), "string"),
        (MaskSpec(method="generalize", to="year"), "int"),
        (MaskSpec(method="generalize", to="region_prefix"), ["null", "string", "int"]),
        (MaskSpec(method="generalize", to="year"), "null"),
    ],
)
def test_output_type_rejects_unfit_types(spec: MaskSpec, input_type: Any) -> None:
    with pytest.raises(MaskingError, match="cannot apply"):
        output_type(spec, input_type)
