import contextlib
import datetime
import json
import re
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.rowfilter import (
    MAX_DEPTH,
    MAX_IN_ITEMS,
    MAX_LENGTH,
    FilterError,
    compile_filter,
    referenced_fields,
)

PERSON = {"name": "张三丰", "region": "340104", "age": 35, "score": 88.5, "active": True}


def passes(text: str, record: dict[str, Any] = PERSON) -> bool:
    return compile_filter(text)(record)


# --- semantics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('region == "340104"', True),
        ("region == '340104'", True),
        ('region != "340104"', False),
        ("age > 30", True),
        ("age >= 35", True),
        ("age < 35", False),
        ("age <= 35.0", True),
        ("score > 88", True),
        ("score == 88.5", True),
        ("age > -5", True),
        ("1e2 > age", True),
        ('name == "张三丰"', True),
        ('name startswith "张"', True),
        ('name startswith "李"', False),
        ('region startswith "3401"', True),
        ('region in ("340104", "340103")', True),
        ('region in ("340103")', False),
        ('region not in ("340103", "340102")', True),
        ("age in (34, 35, 36)", True),
        ("active", True),
        ("not active", False),
        ("active == true", True),
        ("true", True),
        ("false", False),
        ("name == name", True),
        ('region == "340104" AND age > 30', True),
        ('"340104" == region', True),
        ('name == "a\\"b"', False),
        ('name == "\\u5f20\\u4e09\\u4e30"', True),
    ],
)
def test_semantics(text: str, expected: bool) -> None:
    assert passes(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # and binds tighter than or; not binds tighter than and.
        ("true or true and false", True),
        ("(true or true) and false", False),
        ("not false and false", False),
        ("not (false and false)", True),
        ("false and false or true", True),
        ("not not true", True),
        ("not age == 35", False),
    ],
)
def test_precedence(text: str, expected: bool) -> None:
    assert passes(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "missing == 1",
        "missing != 1",
        "missing < 1",
        "missing in (1, 2)",
        "missing not in (1, 2)",
        'missing startswith "a"',
        "not (missing == 1)",  # unknown stays unknown under not (SQL three-valued logic)
        "missing",
        "nothing == 1",
        "nothing != 1",
    ],
)
def test_null_and_missing_never_match(text: str) -> None:
    record = {**PERSON, "nothing": None}
    assert passes(text, record) is False


def test_explicit_null_tests() -> None:
    record = {"a": None, "b": 1}
    assert passes("a == null", record)
    assert passes("null == a", record)
    assert passes("missing == null", record)
    assert not passes("b == null", record)
    assert passes("b != null", record)
    assert not passes("a != null", record)


def test_unknown_inside_or_and() -> None:
    assert passes("missing == 1 or age == 35")
    assert not passes("missing == 1 and age == 35")
    assert not passes("not (missing == 1 and age == 35)")
    assert passes("not (missing == 1 and age == 36)")  # false and unknown is false


@pytest.mark.parametrize(
    "text",
    [
        'age < "3"',
        'age == "35"',
        "name > 3",
        "active == 1",
        "region in (340104)",
        'age startswith "3"',
        "name",
        'not (age == "35")',
    ],
)
def test_type_mismatch_is_false_not_an_error(text: str) -> None:
    assert passes(text) is False


def test_dates_compare_with_iso_strings() -> None:
    record = {"born": datetime.date(1990, 5, 17), "at": datetime.datetime(2024, 1, 2, 3, 4)}
    assert passes('born >= "1990-01-01"', record)
    assert passes('born in ("1990-05-17", "2000-01-01")', record)
    assert not passes('born < "1990-01-01"', record)
    assert not passes('born < "not a date"', record)
    assert passes('at > "2024-01-01T00:00:00"', record)
    assert not passes('at > "2024-01-01T00:00:00+08:00"', record)  # naive vs aware: unknown


def test_decimal_values_compare_as_numbers() -> None:
    record = {"amount": Decimal("12.50")}
    assert passes("amount > 12", record)
    assert passes("amount in (12.5)", record)


def test_keywords_case_insensitive_fields_case_sensitive() -> None:
    assert passes("NOT Active == TRUE", {"Active": False})
    assert not passes("active == true", {"Active": True})


def test_ideographic_space_is_whitespace() -> None:
    assert passes('region\u3000==\u3000"340104"')


def test_known_fields_enforced() -> None:
    fields = {"region", "age"}
    assert compile_filter("region == '1' and age > 3", fields)({"region": "1", "age": 4})
    with pytest.raises(FilterError, match="unknown field 'name'") as caught:
        compile_filter("region == '1' and name == 'x'", fields)
    assert caught.value.position == 18


def test_referenced_fields() -> None:
    assert referenced_fields('a == 1 or (b in (1, 2) and not c startswith "x")') == {"a", "b", "c"}
    assert referenced_fields("true") == set()


def test_long_or_chain_up_to_the_limit() -> None:
    clause = "age == 1 or "
    text = clause * ((MAX_LENGTH - 10) // len(clause)) + "age == 35"
    assert len(text) <= MAX_LENGTH
    assert passes(text)
    assert not passes(text.replace("35", "36"))


def test_limits_are_inclusive() -> None:
    assert passes("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH)
    assert passes("not " * MAX_DEPTH + "true") is (MAX_DEPTH % 2 == 0)
    items = ", ".join(str(i) for i in range(MAX_IN_ITEMS))
    assert passes(f"age in ({items})")


# --- rejections ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name.upper", "attribute access"),
        ("name.__class__", "attribute access"),
        ("().__class__.__bases__", "attribute access"),
        ("__class__ == 1", "'__'"),
        ("__import__('os')", "'__'"),
        ("len(name) > 3", "function calls"),
        ("name[0] == 'x'", "subscripts"),
        ("lambda: 1", "lambdas"),
        ("age + 1 > 3", "arithmetic"),
        ("age * 2 > 3", "arithmetic"),
        ("-age > 3", "arithmetic"),
        ("age = 3", "'=='"),
        ("age > 3 && true", "'and'"),
        ("age is null", "'is'"),
        ("x if true else y", "conditional"),
        ("{1: 2}", "unexpected character"),
        ("age > 3;", "unexpected character"),
        ("名字 == '张'", "must be quoted"),
        ("name == “张”", "ASCII quotes"),
        ("", "empty filter"),
        ("   ", "empty filter"),
        ("age >", "expected a field name or a value"),
        ("age > 3 age", "unexpected 'age'"),
        ("age < 3 < 5", "unexpected '<'"),
        ("(age > 3", "expected ')'"),
        ("age > 3)", "unexpected ')'"),
        ("age in ()", "expected a field name or a value"),
        ("age in (1,)", "expected a field name or a value"),
        ("age in 1", "expected '('"),
        ("age in (region)", "values only"),
        ("age in (null)", "null in an in-list"),
        ("age < null", "null can only"),
        ("name startswith region", "quoted string"),
        ("'abc'", "expected a comparison"),
        ("3", "expected a comparison"),
        ("'unterminated", "unterminated string"),
        ("'bad \\q escape'", "unknown escape"),
        ("age > 1e999", "out of range"),
        ("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1), "nesting deeper"),
        ("not " * (MAX_DEPTH + 1) + "true", "nesting deeper"),
        ("age in (" + ",".join(["1"] * (MAX_IN_ITEMS + 1)) + ")", "more than"),
        ("x" * (MAX_LENGTH + 1), "longer than"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)) as caught:
        compile_filter(text)
    assert 0 <= caught.value.position <= max(len(text), MAX_LENGTH)
    assert "position" in str(caught.value)


def test_non_text_rejected() -> None:
    with pytest.raises(FilterError):
        compile_filter(b"age > 3")  # type: ignore[arg-type]


HOSTILE = [
    "(" * MAX_LENGTH,
    ")" * MAX_LENGTH,
    "not " * (MAX_LENGTH // 4),
    "-" * MAX_LENGTH,
    '"' + "\\" * (MAX_LENGTH - 2) + '"',
    "'" * MAX_LENGTH,
    "a in (" + "1," * (MAX_LENGTH // 2 - 4) + "1)",
    "a == 1 and " * (MAX_LENGTH // 11),
    "9" * MAX_LENGTH,
    "(not " * (MAX_LENGTH // 5),
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:12]))
def test_hostile_input_is_cheap_and_contained(text: str) -> None:
    start = time.perf_counter()
    with contextlib.suppress(FilterError):
        compile_filter(text)({"a": 1})
    assert time.perf_counter() - start < 0.5


FRAGMENTS = st.sampled_from(
    [
        "(", ")", ",", " ", "and", "or", "not", "in", "startswith", "true", "false", "null",
        "==", "!=", "<", "<=", ">", ">=", "a", "b", "__x", ".", "[", "]", "+", "-", "=", "1",
        "-2", "3.5", "1e5", "'s'", '"张"', "'", '"', "\\", "lambda", "f(", "\u3000", "is",
    ]
)  # fmt: skip


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_random_text_only_raises_filter_error(text: str) -> None:
    try:
        predicate = compile_filter(text)
    except FilterError:
        return
    assert predicate({"a": 1, "b": "x"}) in (True, False)


@settings(max_examples=500)
@given(st.lists(FRAGMENTS, max_size=400).map(" ".join))
def test_token_soup_only_raises_filter_error(text: str) -> None:
    start = time.perf_counter()
    try:
        predicate = compile_filter(text)
    except FilterError:
        return
    finally:
        assert time.perf_counter() - start < 0.5
    for record in ({}, {"a": 1, "b": "s"}, {"a": None, "b": 2.5}, {"a": "张", "b": True}):
        assert predicate(record) in (True, False)


# --- a reference model: random well-formed filters agree with a direct evaluator ----------


def _kind(value: Any) -> str:
    return {bool: "bool", int: "num", float: "num", str: "str"}[type(value)]


def _ref_compare(op: str, x: Any, y: Any) -> bool | None:
    if x is None or y is None or _kind(x) != _kind(y):
        return None
    return {
        "==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y
    }[op]  # fmt: skip


def _ref_eval(node: tuple, record: dict[str, Any]) -> bool | None:
    tag = node[0]
    if tag == "cmp":
        _, op, field, literal = node
        return _ref_compare(op, record.get(field), literal)
    if tag == "in":
        _, field, items, negated = node
        value = record.get(field)
        same_kind = [i for i in items if value is not None and _kind(i) == _kind(value)]
        if not same_kind:
            return None
        return (value in same_kind) != negated
    if tag == "startswith":
        value = record.get(node[1])
        return value.startswith(node[2]) if isinstance(value, str) else None
    if tag == "isnull":
        return (record.get(node[1]) is None) == node[2]
    if tag == "not":
        inner = _ref_eval(node[1], record)
        return None if inner is None else not inner
    values = [_ref_eval(child, record) for child in node[1]]
    if tag == "and":
        return False if False in values else (None if None in values else True)
    return True if True in values else (None if None in values else False)


def _render(node: tuple) -> str:
    tag = node[0]
    if tag == "cmp":
        return f"{node[2]} {node[1]} {json.dumps(node[3], ensure_ascii=False)}"
    if tag == "in":
        items = ", ".join(json.dumps(i, ensure_ascii=False) for i in node[2])
        return f"{node[1]} {'not in' if node[3] else 'in'} ({items})"
    if tag == "startswith":
        return f"{node[1]} startswith {json.dumps(node[2], ensure_ascii=False)}"
    if tag == "isnull":
        return f"{node[1]} {'==' if node[2] else '!='} null"
    if tag == "not":
        return f"not ({_render(node[1])})"
    return f" {tag} ".join(f"({_render(child)})" for child in node[1])


def _depth(node: tuple) -> int:
    if node[0] == "not":
        return 2 + _depth(node[1])  # "not (" nests twice
    if node[0] in ("and", "or"):
        return 1 + max(_depth(child) for child in node[1])
    return 0


FIELD_NAMES = st.sampled_from(["a", "b", "c"])
LITERALS = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, -1.5]), st.sampled_from(["", "x", "xy", "张"]),
    st.booleans(),
)  # fmt: skip
LEAVES = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), FIELD_NAMES,
              LITERALS),
    st.tuples(st.just("in"), FIELD_NAMES, st.lists(LITERALS, min_size=1, max_size=4),
              st.booleans()),
    st.tuples(st.just("startswith"), FIELD_NAMES, st.sampled_from(["", "x", "张"])),
    st.tuples(st.just("isnull"), FIELD_NAMES, st.booleans()),
)  # fmt: skip
TREES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.tuples(st.just("not"), children),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)),
    ),
    max_leaves=12,
)
RECORDS = st.dictionaries(FIELD_NAMES, st.one_of(st.none(), LITERALS))


@settings(max_examples=300)
@given(TREES, st.lists(RECORDS, min_size=1, max_size=5))
def test_agrees_with_reference_model(tree: tuple, records: list[dict[str, Any]]) -> None:
    text = _render(tree)
    if len(text) > MAX_LENGTH or _depth(tree) > MAX_DEPTH:
        return
    predicate = compile_filter(text, {"a", "b", "c"})
    for record in records:
        assert predicate(record) is (_ref_eval(tree, record) is True), text
