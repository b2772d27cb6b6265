"""The row-filter language of grants: typed by people in the console, so untrusted.

A hand-written tokenizer and recursive-descent parser compile the text once into nested closures;
nothing is ever passed to eval, exec or compile. Input length, nesting depth and `in`-list size
are bounded, so hostile text costs linear time and a bounded stack.

Evaluation uses SQL's three-valued logic: a comparison involving null (or a missing field) or
mismatched types is *unknown*; `not unknown` stays unknown, and a record passes only if the whole
filter is true. This fails closed: `not (region == "340104")` does not let rows with no region
through. `x == null` and `x != null` are the explicit null tests.
"""

from __future__ import annotations

import datetime
import functools
import operator
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

MAX_LENGTH = 2000
MAX_DEPTH = 50
MAX_IN_ITEMS = 200

Record = Mapping[str, Any]
Eval = Callable[[Record], "bool | None"]  # None is SQL's unknown

_KEYWORDS = frozenset({"and", "or", "not", "in", "startswith", "true", "false", "null"})
_LITERAL_KEYWORDS = {"true": True, "false": False, "null": None}
_UNSUPPORTED_WORDS = {
    "lambda": "lambdas are not allowed",
    "is": "'is' is not supported; write x == null or x != null",
    "if": "conditional expressions are not allowed",
    "for": "comprehensions are not allowed",
    "import": "imports are not allowed",
}
_FORBIDDEN_CHARS = {
    ".": "'.' is not allowed (no attribute access; write numbers as 0.5)",
    "[": "subscripts are not allowed",
    "]": "subscripts are not allowed",
    "=": "use '==' to compare",
    "&": "use 'and'",
    "|": "use 'or'",
    "“": "use ASCII quotes",
    "”": "use ASCII quotes",
    "‘": "use ASCII quotes",
    "’": "use ASCII quotes",
    "（": "use ASCII parentheses",
    "）": "use ASCII parentheses",
    "，": "use an ASCII comma",
}
_ARITHMETIC = frozenset("+-*/%@^~")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")  # two-character operators first
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


class FilterError(ValueError):
    """The filter text is rejected; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.position = position


class _Token(NamedTuple):
    kind: str  # name, kw, str, num, op, "(", ")", ",", end
    value: Any
    pos: int


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of filter"
    return repr(str(token.value)[:20])


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote, parts, i = text[start], [], start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(parts), i + 1
        if c != "\\":
            parts.append(c)
            i += 1
            continue
        esc = text[i + 1 : i + 2]
        if esc in _ESCAPES:
            parts.append(_ESCAPES[esc])
            i += 2
        elif esc == "u" and _HEX4.fullmatch(text, i + 2, i + 6):
            parts.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise FilterError("unknown escape in string", i)
    raise FilterError("unterminated string", start)


def _read_number(text: str, start: int) -> tuple[int | float, int]:
    m = _NUMBER.match(text, start)
    assert m is not None  # the caller saw a digit, or '-' before a digit
    number: int | float = float(m[0]) if m[1] or m[2] else int(m[0])
    if number in (float("inf"), float("-inf")):
        raise FilterError("number out of range", start)
    return number, m.end()


def _read_word(text: str, start: int) -> tuple[_Token, int]:
    m = _NAME.match(text, start)
    assert m is not None
    word = m[0]
    if word.lower() in _KEYWORDS:
        return _Token("kw", word.lower(), start), m.end()
    if word in _UNSUPPORTED_WORDS:
        raise FilterError(_UNSUPPORTED_WORDS[word], start)
    if word.startswith("__"):
        raise FilterError("names starting with '__' are not allowed", start)
    return _Token("name", word, start), m.end()


def _tokenize(text: str) -> list[_Token]:
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():  # includes the ideographic space that Chinese input methods type
            i += 1
        elif c in "'\"":
            value, end = _read_string(text, i)
            tokens.append(_Token("str", value, i))
            i = end
        elif c.isascii() and (c.isdigit() or (c == "-" and text[i + 1 : i + 2].isdigit())):
            number, end = _read_number(text, i)
            tokens.append(_Token("num", number, i))
            i = end
        elif c.isascii() and (c.isalpha() or c == "_"):
            token, i = _read_word(text, i)
            tokens.append(token)
        elif c in "(),":
            tokens.append(_Token(c, c, i))
            i += 1
        elif op := next((op for op in _OPERATORS if text.startswith(op, i)), None):
            tokens.append(_Token("op", op, i))
            i += len(op)
        elif c in _FORBIDDEN_CHARS:
            raise FilterError(_FORBIDDEN_CHARS[c], i)
        elif c in _ARITHMETIC:
            raise FilterError("arithmetic is not allowed", i)
        else:
            hint = " (text values must be quoted)" if c.isalpha() else ""
            raise FilterError(f"unexpected character {c!r}{hint}", i)
    tokens.append(_Token("end", None, len(text)))
    return tokens


# --- evaluation helpers: each returns True, False or None (unknown) -------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "num"
    if isinstance(value, str):
        return "str"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    return "other"


@functools.lru_cache(maxsize=1024)
def _parse_temporal(kind: str, text: str) -> datetime.date | None:
    parse = datetime.datetime.fromisoformat if kind == "datetime" else datetime.date.fromisoformat
    try:
        return parse(text)
    except ValueError:
        return None


def _align(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Both values in one comparable kind, or None; ISO strings compare with dates."""
    ka, kb = _kind(a), _kind(b)
    if ka == kb != "other":
        return a, b
    if ka in ("date", "datetime") and kb == "str":
        parsed = _parse_temporal(ka, b)
        return None if parsed is None else (a, parsed)
    if kb in ("date", "datetime") and ka == "str":
        parsed = _parse_temporal(kb, a)
        return None if parsed is None else (parsed, b)
    return None


def _compare(op: Callable[[Any, Any], bool], a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    aligned = _align(a, b)
    if aligned is None:
        return None
    try:
        return bool(op(*aligned))
    except TypeError:  # e.g. naive vs aware datetimes
        return None


def _all_of(parts: tuple[Eval, ...]) -> Eval:
    def evaluate(record: Record) -> bool | None:
        result: bool | None = True
        for part in parts:
            value = part(record)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    return evaluate


def _any_of(parts: tuple[Eval, ...]) -> Eval:
    def evaluate(record: Record) -> bool | None:
        result: bool | None = False
        for part in parts:
            value = part(record)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    return evaluate


def _negate(inner: Eval) -> Eval:
    def evaluate(record: Record) -> bool | None:
        value = inner(record)
        return None if value is None else not value

    return evaluate


class _Operand(NamedTuple):
    get: Callable[[Record], Any]
    is_field: bool
    literal: Any
    pos: int


def _in_pools(items: list[Any]) -> dict[str, frozenset[Any]]:
    """Literal items grouped by kind, plus the string items that read as dates or datetimes."""
    pools: dict[str, set[Any]] = {}
    for item in items:
        pools.setdefault(_kind(item), set()).add(item)
    for kind in ("date", "datetime"):
        parsed = {_parse_temporal(kind, s) for s in pools.get("str", ())} - {None}
        if parsed:
            pools[kind] = parsed
    return {kind: frozenset(values) for kind, values in pools.items()}


def _membership(operand: _Operand, items: list[Any], negated: bool) -> Eval:
    pools = _in_pools(items)

    def evaluate(record: Record) -> bool | None:
        value = operand.get(record)
        pool = None if value is None else pools.get(_kind(value))
        if pool is None:
            return None
        return (value in pool) != negated

    return evaluate


def _starts_with(operand: _Operand, prefix: str) -> Eval:
    def evaluate(record: Record) -> bool | None:
        value = operand.get(record)
        return value.startswith(prefix) if isinstance(value, str) else None

    return evaluate


def _null_test(operand: _Operand, want_null: bool) -> Eval:
    return lambda record: (operand.get(record) is None) == want_null


_PLAIN = (str, int, float)  # ordered among themselves, never a TypeError: no datetimes


def _comparison(op: Callable[[Any, Any], bool], left: _Operand, right: _Operand) -> Eval:
    if left.is_field and not right.is_field and type(right.literal) in _PLAIN:
        # field <op> literal, the usual case: a value of the literal's own type compares
        # directly, as _compare would; anything else takes _compare's path.
        get, literal, plain = left.get, right.literal, type(right.literal)

        def evaluate(record: Record) -> bool | None:
            value = get(record)
            if type(value) is plain:
                return op(value, literal)
            return _compare(op, value, literal)

        return evaluate
    return lambda record: _compare(op, left.get(record), right.get(record))


# --- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, fields: set[str] | None) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.fields = fields
        self.used: set[str] = set()

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.i += 1
        return token

    def is_kw(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "kw" and token.value == word

    def expect(self, kind: str, what: str) -> _Token:
        token = self.take()
        if token.kind != kind:
            raise FilterError(f"expected {what}, found {_describe(token)}", token.pos)
        return token

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"nesting deeper than {MAX_DEPTH}", token.pos)

    def parse(self) -> Eval:
        if self.peek().kind == "end":
            raise FilterError("empty filter", 0)
        root = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            raise FilterError(f"unexpected {_describe(token)}", token.pos)
        return root

    def parse_or(self) -> Eval:
        parts = [self.parse_and()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else _any_of(tuple(parts))

    def parse_and(self) -> Eval:
        parts = [self.parse_not()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else _all_of(tuple(parts))

    def parse_not(self) -> Eval:
        if not self.is_kw("not"):
            return self.parse_cmp()
        self.enter(self.take())
        inner = self.parse_not()
        self.depth -= 1
        return _negate(inner)

    def parse_cmp(self) -> Eval:
        if self.peek().kind == "(":
            self.enter(self.take())
            inner = self.parse_or()
            self.expect(")", "')'")
            self.depth -= 1
            return inner
        left = self.parse_operand()
        token = self.peek()
        if token.kind == "op":
            self.take()
            return self.comparison(token, left, self.parse_operand())
        if self.is_kw("in"):
            self.take()
            return _membership(left, self.parse_in_list(), negated=False)
        if self.is_kw("not") and self.is_kw("in", 1):
            self.take()
            self.take()
            return _membership(left, self.parse_in_list(), negated=True)
        if self.is_kw("startswith"):
            self.take()
            prefix = self.expect("str", "a quoted string after startswith")
            return _starts_with(left, prefix.value)
        return self.bare(left)

    def parse_operand(self) -> _Operand:
        token = self.take()
        if token.kind == "name":
            if self.peek().kind == "(":
                raise FilterError("function calls are not allowed", token.pos)
            if self.fields is not None and token.value not in self.fields:
                raise FilterError(f"unknown field {token.value!r}", token.pos)
            self.used.add(token.value)
            name = token.value
            return _Operand(lambda record: record.get(name), True, None, token.pos)
        if token.kind in ("str", "num") or (
            token.kind == "kw" and token.value in _LITERAL_KEYWORDS
        ):
            value = token.value if token.kind != "kw" else _LITERAL_KEYWORDS[token.value]
            return _Operand(lambda record: value, False, value, token.pos)
        raise FilterError(f"expected a field name or a value, found {_describe(token)}", token.pos)

    def parse_in_list(self) -> list[Any]:
        self.expect("(", "'(' after in")
        items = [self.parse_in_item()]
        while self.peek().kind == ",":
            self.take()
            if len(items) >= MAX_IN_ITEMS:
                raise FilterError(f"more than {MAX_IN_ITEMS} items in an in-list", self.peek().pos)
            items.append(self.parse_in_item())
        self.expect(")", "',' or ')' in the in-list")
        return items

    def parse_in_item(self) -> Any:
        operand = self.parse_operand()
        if operand.is_field:
            raise FilterError("in-lists hold values only, not field names", operand.pos)
        if operand.literal is None:
            raise FilterError("null in an in-list never matches; write x == null", operand.pos)
        return operand.literal

    def comparison(self, op: _Token, left: _Operand, right: _Operand) -> Eval:
        null_side = next((o for o in (left, right) if not o.is_field and o.literal is None), None)
        if null_side is None:
            return _comparison(_COMPARE[op.value], left, right)
        if op.value not in ("==", "!="):
            raise FilterError("null can only be compared with == or !=", op.pos)
        other = right if null_side is left else left
        return _null_test(other, want_null=op.value == "==")

    def bare(self, operand: _Operand) -> Eval:
        if operand.is_field:
            return lambda record: v if isinstance(v := operand.get(record), bool) else None
        if isinstance(operand.literal, bool):
            value = operand.literal
            return lambda record: value
        raise FilterError("expected a comparison", operand.pos)


def _parse(text: str, fields: set[str] | None) -> tuple[Eval, set[str]]:
    if not isinstance(text, str):
        raise FilterError("filter must be text", 0)
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter longer than {MAX_LENGTH} characters", MAX_LENGTH)
    parser = _Parser(text, fields)
    return parser.parse(), parser.used


def compile_filter(text: str, fields: set[str] | None = None) -> Callable[[Record], bool]:
    """Compile filter text into a predicate over records (mappings of field name to value).
    With `fields`, any other field name is rejected. Raises FilterError on any rejected text."""
    root, _ = _parse(text, fields)

    def predicate(record: Record) -> bool:
        return root(record) is True

    return predicate


def referenced_fields(text: str) -> set[str]:
    """Field names the filter reads; raises FilterError like compile_filter."""
    return _parse(text, None)[1]
