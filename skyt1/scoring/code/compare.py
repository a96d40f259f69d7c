"""Comparing a program's output with the expected output, outside the sandbox.

stdin/stdout tests (APPS, TACO, LiveCodeBench):
  1. Exact match after normalising line endings, stripping each line, and dropping blank lines at the end.
  2. Otherwise the outputs are split into whitespace-separated tokens (so line breaks and runs of spaces do
     not matter, as in the APPS checker); they match when there are as many tokens and every pair is
     equal as text, or the expected token is a NON-INTEGER number, i.e. written with a decimal point or
     exponent (e.g. "0.333333"), and the actual token is a number within 1e-6 (absolute below 1, else
     relative). Integers always compare exactly: the APPS checker's
     numpy.allclose fallback accepted answers off by one on large integers, and that is not repeated.

call-based tests: the returned value arrives as data (`wire.py`), decoded here into builtin values only, so
only data is compared, never objects the program created (whose __eq__ could lie). Tuples compare as lists
and sets as sorted lists (JSON, in which expected values are written, has neither). It matches when it
equals the expected value (same recursive rules: non-integer floats within 1e-6, every other value
exactly, bool is not int), or, as in APPS, when the expected value is a one-element wrapper list around the
returned value.
"""

from __future__ import annotations

import re

from skyt1.scoring.code import wire

FLOAT_TOL = 1e-6
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _lines(text: str) -> list[str]:
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _is_float_literal(token: str) -> bool:
    """A number written with a decimal point or exponent ("0.5", "2.000", "1e-3"); integers are not."""
    return bool(_NUMBER.match(token)) and not _INTEGER.match(token)


def _close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= FLOAT_TOL * max(1.0, abs(expected))


def _token_match(actual: str, expected: str) -> bool:
    if actual == expected:
        return True
    if not _is_float_literal(expected) or not _NUMBER.match(actual):
        return False
    return _close(float(actual), float(expected))


def stdout_matches(actual: str, expected: str) -> bool:
    if _lines(actual) == _lines(expected):
        return True
    got, want = actual.split(), expected.split()
    return len(got) == len(want) and all(_token_match(a, e) for a, e in zip(got, want, strict=True))


def _value_match(actual, expected) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, float) and not expected.is_integer():
        return isinstance(actual, int | float) and _close(float(actual), expected)
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and actual == expected
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            _value_match(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            _value_match(actual[k], expected[k]) for k in expected)
    return actual == expected


def _as_json_value(value):
    if isinstance(value, list | tuple):
        return [_as_json_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_as_json_value(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: _as_json_value(v) for k, v in value.items()}
    return value


def result_matches(result: str, expected) -> bool:
    """`result`: the returned value as the harness sent it (`wire.dumps` text)."""
    try:
        actual = _as_json_value(wire.loads(result))
    except wire.WireError:
        return False
    if _value_match(actual, expected):
        return True
    return isinstance(expected, list) and len(expected) == 1 and _value_match(actual, expected[0])
