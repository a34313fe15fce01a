"""Logstash's condition language (``if [program] =~ /^postfix/ and "x" in [tags] { ... }``):
reading it (the tokenizer the config reader shares) and evaluating it on an event.

    condition  := unary (("and" | "or" | "xor" | "nand") unary)*
                  # combined as Logstash's compiler does: "and" before "or" (a shunting yard
                  # that pops one operator at a time, see chain()); "xor"/"nand" only alone
    unary      := "!" unary | "(" condition ")" | test
    test       := value (op value)? | value "in" value | value "not in" value
                  | value ("=~" | "!~") (/regex/ | "string")
    value      := [field][ref] | "string" | 'string' | number | [ "list", 1 ]

What each test means, as Logstash evaluates it: a bare field is true when it is there and is not
false or null (an empty string is true, as in Ruby); ``==`` and ``!=`` compare values and types
(``"200" == 200`` is false; numbers compare as numbers); ``<`` ... compare numbers with numbers
and text with text (anything else is false); ``=~`` is false (``!~`` true) on a value that is not
text; ``in`` is membership in a list or a substring of a text. ``[tags]`` is the event's tags.
Regular expressions run with the ``regex`` module's timeout: a test that runs out of time
raises :class:`ConditionTimeout` (the record is dead-lettered with the condition and where it is
written), never stalls the worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import regex

from logpipe.common.errors import ConfigError, LogpipeError
from logpipe.indexer import fieldref

# a regular expression test's time budget (seconds), per test
REGEX_TIMEOUT = 0.25


class ConditionTimeout(LogpipeError):
    """A regular expression in a condition ran out of time on one event."""


@dataclass
class Token:
    kind: str   # 'str', 'word', 'num', 'regex', or the punctuation itself: { } [ ] => , ...
    value: str
    line: int


_PUNCT = ("=>", "==", "!=", "=~", "!~", "<=", ">=", "{", "}", "[", "]", ",", "(", ")", "<", ">",
          "!")
_WORD = re.compile(r"[A-Za-z_@][A-Za-z0-9_@.\-]*")
_NUM = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def tokenize(text: str, path: str, first_line: int = 1) -> list[Token]:
    """The tokens of Logstash's config language (comments and blanks dropped)."""
    tokens: list[Token] = []
    i, n, line = 0, len(text), first_line
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace() or c == "\ufeff":   # includes U+00A0 (non-breaking space)
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            start_line = line
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                j += 1
            if j >= n:
                raise ConfigError(f"unterminated string starting with {c}", path, start_line)
            tokens.append(Token("str", text[i + 1:j], start_line))
            i = j + 1
        elif c == "/" and tokens and tokens[-1].kind in ("=~", "!~"):
            # a regular expression literal: /.../ with \/ inside
            j = i + 1
            while j < n and text[j] not in "/\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != "/":
                raise ConfigError("unterminated regular expression /.../", path, line)
            tokens.append(Token("regex", text[i + 1:j], line))
            i = j + 1
        else:
            for p in _PUNCT:
                if text.startswith(p, i):
                    tokens.append(Token(p, p, line))
                    i += len(p)
                    break
            else:
                m = _NUM.match(text, i) if (c.isdigit() or c == "-") else None
                if m:
                    tokens.append(Token("num", m.group(), line))
                    i = m.end()
                    continue
                m = _WORD.match(text, i)
                if m:
                    tokens.append(Token("word", m.group(), line))
                    i = m.end()
                    continue
                raise ConfigError(f"unexpected character {c!r}", path, line)
    return tokens


# An evaluated condition: (doc, tags) -> bool
Test = Callable[[dict, list], bool]
_MISSING = object()


def _regex(source: str, text: str, path: str | None, line: int | None):
    # Ruby's /x/ reads "\/" as "/"; the rest is Oniguruma syntax, which the regex module reads
    try:
        return regex.compile(source.replace("\\/", "/"))
    except regex.error as exc:
        raise ConfigError(f"condition {text!r}: cannot read the regular expression "
                          f"/{source}/: {exc}", path, line) from None


def compile_condition(text: str, path: str | None = None, line: int | None = None,
                      timeout: float = REGEX_TIMEOUT, label: str | None = None) -> Test:
    """A condition's text (what follows ``if``) as a test on (doc, tags); a condition that
    cannot be read is a :class:`ConfigError` naming the file and line. ``label`` (``[types.x]
    filter 2``) joins the file and line in a :class:`ConditionTimeout`'s message."""
    return compile_tokens(tokenize(text, path or "<condition>", line or 1), text, path, line,
                          timeout, label)


def compile_tokens(tokens: list[Token], text: str, path: str | None = None,
                   line: int | None = None, timeout: float = REGEX_TIMEOUT,
                   label: str | None = None) -> Test:
    pos = 0
    where = f"{path}:{line}" if path and line else (path or "<condition>")
    if label:
        where += f" {label}"

    def fail(msg: str):
        raise ConfigError(f"condition {text!r}: {msg}", path, line)

    def peek(k: int = 0):
        return tokens[pos + k] if pos + k < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def value():
        """A value getter (doc, tags) -> value or _MISSING, and what it is."""
        tok = peek()
        if tok is None:
            fail("it ends early")
        if tok.kind == "[":
            if peek(1) is not None and peek(1).kind in ("word", "num") and \
                    peek(2) is not None and peek(2).kind == "]":
                parts = []
                while peek() is not None and peek().kind == "[" and peek(1) is not None and \
                        peek(2) is not None and peek(2).kind == "]":
                    take()
                    parts.append(take().value)
                    take()
                ref = "".join(f"[{p}]" for p in parts)
                if parts == ["tags"]:
                    return (lambda doc, tags: tags), "field"
                return (lambda doc, tags: fieldref.get(doc, ref, _MISSING)), "field"
            take()
            items: list = []
            while peek() is not None and peek().kind != "]":
                item = take()
                if item.kind == "str":
                    items.append(item.value)
                elif item.kind == "num":
                    items.append(_number(item.value))
                elif item.kind == "word":
                    items.append(item.value)
                elif item.kind != ",":
                    fail(f"cannot read {item.value!r} in a list")
            if peek() is None:
                fail("a list is not closed with ']'")
            take()
            constant = tuple(items)
            return (lambda doc, tags: list(constant)), "list"
        if tok.kind == "str":
            take()
            s = tok.value
            return (lambda doc, tags: s), "str"
        if tok.kind == "num":
            take()
            number = _number(tok.value)
            return (lambda doc, tags: number), "num"
        fail(f"cannot read {tok.value!r}")

    def test() -> Test:
        left, kind = value()
        op = peek()
        if op is not None and op.kind in ("=~", "!~"):
            take()
            rx_tok = peek()
            if rx_tok is None or rx_tok.kind not in ("regex", "str"):
                fail(f"{op.kind} needs a /regex/ or a string on its right")
            take()
            rx = _regex(rx_tok.value, text, path, line)
            positive = op.kind == "=~"

            def regex_test(doc, tags):
                got = left(doc, tags)
                if not isinstance(got, str):
                    return not positive
                try:
                    found = rx.search(got, timeout=timeout) is not None
                except TimeoutError:
                    raise ConditionTimeout(
                        f"condition {text!r} ({where}): the regular expression /{rx_tok.value}/ "
                        f"ran out of its {timeout:g} s on this event") from None
                return found if positive else not found
            return regex_test
        if op is not None and op.kind in ("==", "!=", "<", ">", "<=", ">="):
            take()
            right, _ = value()
            compare = _COMPARE[op.kind]
            return lambda doc, tags: compare(left(doc, tags), right(doc, tags))
        if op is not None and op.kind == "word" and op.value in ("in", "not"):
            take()
            negate = op.value == "not"
            if negate:
                if peek() is None or peek().value != "in":
                    fail("expected 'in' after 'not'")
                take()
            right, _ = value()
            if negate:
                return lambda doc, tags: not _in(left(doc, tags), right(doc, tags))
            return lambda doc, tags: _in(left(doc, tags), right(doc, tags))
        return lambda doc, tags: _truthy(left(doc, tags))

    def unary() -> Test:
        tok = peek()
        if tok is not None and (tok.kind == "!" or (tok.kind == "word" and tok.value == "not"
                                                    and (peek(1) is None or
                                                         peek(1).value != "in"))):
            take()
            inner = unary()
            return lambda doc, tags: not inner(doc, tags)
        if tok is not None and tok.kind == "(":
            take()
            inner = expr()
            if peek() is None or peek().kind != ")":
                fail("')' missing")
            take()
            return inner
        return test()

    def chain() -> Test:
        """Operands joined by boolean operators, combined as Logstash's compiler combines them
        (logstash-core/lib/logstash/compiler/lscl.rb, ``Condition#join_conditions``): its
        shunting yard, with ``and`` above ``or``; ``xor`` and ``nand`` have no precedence there,
        so Logstash refuses a chain mixing them with another operator (write parentheses)."""
        operands = [unary()]
        ops: list[str] = []
        while peek() is not None and peek().kind == "word" and \
                peek().value in ("and", "or", "xor", "nand"):
            ops.append(take().value)
            operands.append(unary())
        if not ops:
            return operands[0]
        if len(ops) > 1 and any(op in ("xor", "nand") for op in ops):
            fail(f"Logstash cannot order {' / '.join(dict.fromkeys(ops))} without parentheses "
                 f"('xor' and 'nand' have no precedence in its compiler, which refuses the "
                 f"pipeline): write ( ) around each part")
        # the shunting yard as Logstash runs it: an operator pops at most one operator, and
        # only one of strictly higher precedence, before it is pushed
        precedence = {"and": 2, "or": 1, "xor": 1, "nand": 2}
        out: list = [operands[0]]
        stack: list[str] = []
        for op, operand in zip(ops, operands[1:]):
            if stack and precedence[stack[-1]] > precedence[op]:
                out.append(stack.pop())
            stack.append(op)
            out.append(operand)
        out.extend(reversed(stack))
        values: list = []
        for item in out:
            if isinstance(item, str):
                b, a = values.pop(), values.pop()
                values.append(_combine(item, a, b))
            else:
                values.append(item)
        return values[0]

    expr = chain

    if not tokens:
        fail("it is empty")
    result = expr()
    if pos != len(tokens):
        fail(f"cannot read {tokens[pos].value!r}")
    return result


def _combine(op: str, a: Test, b: Test) -> Test:
    if op == "and":
        return lambda doc, tags: a(doc, tags) and b(doc, tags)
    if op == "or":
        return lambda doc, tags: a(doc, tags) or b(doc, tags)
    if op == "nand":
        return lambda doc, tags: not (a(doc, tags) and b(doc, tags))
    return lambda doc, tags: a(doc, tags) != b(doc, tags)


def _number(text: str):
    return float(text) if "." in text else int(text)


def _truthy(v) -> bool:
    return v is not _MISSING and v is not None and v is not False


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a, b) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _order(op):
    def compare(a, b) -> bool:
        if _is_number(a) and _is_number(b) or isinstance(a, str) and isinstance(b, str):
            return op(a, b)
        return False
    return compare


_COMPARE = {
    "==": _eq,
    "!=": lambda a, b: not _eq(a, b),
    "<": _order(lambda a, b: a < b), ">": _order(lambda a, b: a > b),
    "<=": _order(lambda a, b: a <= b), ">=": _order(lambda a, b: a >= b),
}


def _in(needle, haystack) -> bool:
    if needle is _MISSING:
        return False
    if isinstance(haystack, list):
        return any(_eq(needle, item) for item in haystack)
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, dict):
        return isinstance(needle, str) and needle in haystack
    return False
