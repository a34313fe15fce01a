"""The gaps issue 22's chain left, closed against what Logstash does: boolean operators mixed
without parentheses as Logstash's compiler combines them, the date filter on a list value,
date locales, the importer's first grok (its common options on success only), routes as a
leading conditional, and a condition that runs out of time through the real worker path."""

from __future__ import annotations

import itertools

import pytest

from logpipe.common.errors import ConfigError
from logpipe.indexer.conditions import compile_condition

BOOLS = (False, True)


def _doc(**values):
    return {k: 1 for k, v in values.items() if v}


# --- boolean operators without parentheses ---------------------------------------------------
# Logstash (logstash-core/lib/logstash/compiler/lscl.rb, Condition#join_conditions) combines a
# chain of operators with a shunting yard: "and" has precedence 2, "or" 1; "xor" and "nand"
# have none (its precedence() raises), so a chain mixing them with another operator is refused.

@pytest.mark.parametrize("a,b,c", list(itertools.product(BOOLS, repeat=3)))
def test_and_binds_tighter_than_or(a, b, c):
    doc = _doc(a=a, b=b, c=c)
    assert compile_condition("[a] or [b] and [c]")(doc, []) is (a or (b and c))
    assert compile_condition("[a] and [b] or [c]")(doc, []) is ((a and b) or c)


@pytest.mark.parametrize("a,b", list(itertools.product(BOOLS, repeat=2)))
def test_negation_takes_only_its_operand(a, b):
    assert compile_condition("![a] and [b]")(_doc(a=a, b=b), []) is ((not a) and b)
    assert compile_condition("!([a] and [b])")(_doc(a=a, b=b), []) is (not (a and b))


def test_the_shunting_yard_pops_one_operator_at_a_time_as_logstash_does():
    # a or b and c and d or e: Logstash builds a or (b and ((c and d) or e)), so with only e
    # true the condition is false (a textbook parser would say true)
    test = compile_condition("[a] or [b] and [c] and [d] or [e]")
    assert test({"e": 1}, []) is False
    assert test({"b": 1, "e": 1}, []) is True
    assert test({"c": 1, "d": 1}, []) is False
    assert test({"a": 1}, []) is True


@pytest.mark.parametrize("condition", ["[a] xor [b] or [c]", "[a] or [b] xor [c]",
                                       "[a] nand [b] and [c]", "[a] xor [b] xor [c]"])
def test_xor_and_nand_in_a_chain_are_refused_as_logstash_refuses_them(condition):
    with pytest.raises(ConfigError, match=r"x\.conf:4: condition .*without parentheses"):
        compile_condition(condition, "x.conf", 4)


@pytest.mark.parametrize("a,b,c", list(itertools.product(BOOLS, repeat=3)))
def test_xor_with_parentheses(a, b, c):
    doc = _doc(a=a, b=b, c=c)
    assert compile_condition("([a] xor [b]) or [c]")(doc, []) is ((a != b) or c)
    assert compile_condition("[a] xor ([b] or [c])")(doc, []) is (a != (b or c))
    assert compile_condition("[a] nand [b]")(doc, []) is (not (a and b))
