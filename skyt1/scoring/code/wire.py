"""Values that cross a process boundary as data, never as objects (standard library only: the sandboxed
harness imports this file too).

    encode(value, register=None) -> a JSON-able tree;   decode(tree, resolve=None) -> the value
    dumps(value, register=None) -> str;                 loads(text, resolve=None) -> the value

The decoder builds nothing but builtin values, so a value decoded from an untrusted process has the
builtin `__eq__`, `__hash__` and `__bool__`: whatever the program's objects claimed, the side that judges
compares plain data. JSON's null, booleans, numbers, strings and lists stand for themselves; every other
value is a one-key object: {"t": [..]} tuple, {"s": [..]} set, {"f": [..]} frozenset, {"d": [[k, v], ..]}
dict, {"b": hex} bytes, {"c": [re, im]} complex, {"G": [module, name]} a class or builtin function and
{"M": name} a module, both from a short list of modules of data types and pure functions (the receiver
imports its own copy), and {"r": [id, type name]} an object that is not data (a reference only the sender
can resolve). Subclasses of builtin types travel as their base type (a Counter as a dict, a namedtuple as
a tuple, an int subclass as its int value).
"""

from __future__ import annotations

import builtins
import importlib
import json
import types
from decimal import Decimal

MAX_INT_DIGITS = 100_000  # integers longer than this are refused (their parsing is quadratic)
_SCALARS = (type(None), bool, int, float, str)
_TAGS = {"t", "s", "f", "d", "b", "c", "G", "M", "r"}
# Modules whose classes and builtin functions may travel by name: the receiver uses its own copy. Only
# modules of plain data types and pure functions (no class here has instances equal to everything).
_MODULES = frozenset({"builtins", "collections", "fractions", "decimal", "math", "cmath", "itertools",
                      "functools", "operator", "heapq", "bisect", "typing", "string", "re", "datetime", "array"})


class WireError(ValueError):
    """A value that cannot travel (encode) or a message that is not well-formed data (decode)."""


def _global_name(obj) -> list | None:
    """[module, qualname] for a class or builtin function of the modules above, else None."""
    if not _is_global_kind(obj):
        return None
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str) or module not in _MODULES:
        return None
    return [module, name]


def _is_global_kind(obj) -> bool:
    return isinstance(obj, type) or type(obj).__name__ == "builtin_function_or_method"


def encode(value, register=None, _depth: int = 0):
    """A JSON-able tree for `value`. Objects that are not data go through `register(obj) -> [id, type name]`
    (or raise WireError when there is none)."""
    if _depth > 200:
        raise WireError("value nested too deeply")
    kind = type(value)
    if kind in _SCALARS:
        return value
    d = _depth + 1
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return [encode(v, register, d) for v in list.__iter__(value)]
    if isinstance(value, tuple):
        return {"t": [encode(v, register, d) for v in tuple.__iter__(value)]}
    if isinstance(value, frozenset):
        return {"f": [encode(v, register, d) for v in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"s": [encode(v, register, d) for v in set.__iter__(value)]}
    if isinstance(value, dict):
        return {"d": [[encode(k, register, d), encode(v, register, d)] for k, v in dict.items(value)]}
    if isinstance(value, bytes | bytearray):
        return {"b": bytes(value).hex()}
    if isinstance(value, complex):
        return {"c": [value.real, value.imag]}
    name = _global_name(value)
    if name is not None:
        return {"G": name}
    if isinstance(value, types.ModuleType) and getattr(value, "__name__", None) in _MODULES:
        return {"M": value.__name__}
    if register is None:
        raise WireError(f"a {kind.__name__} is not plain data")
    return {"r": register(value)}


def _int(text: str) -> int:
    digits = len(text.lstrip("+-"))
    if digits > MAX_INT_DIGITS:
        raise WireError(f"an integer of {digits} digits")
    return int(text) if digits <= 4000 else int(Decimal(text))  # int(str) refuses > 4300 digits by default


def _stdlib_global(module: str, name: str):
    if not (isinstance(module, str) and isinstance(name, str)) or module not in _MODULES:
        raise WireError(f"not a standard-library name: {module!r}.{name!r}")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    if not _is_global_kind(obj):
        raise WireError(f"{module}.{name} is not a class or builtin function")
    return obj


def decode(tree, resolve=None):
    """The value of a tree made by `encode`, built from builtin types only. `resolve([id, type name])`
    turns a reference into an object; without it a reference is an error."""
    kind = type(tree)
    if kind in _SCALARS:
        return tree
    if kind is list:
        return [decode(v, resolve) for v in tree]
    if kind is not dict or len(tree) != 1:
        raise WireError("malformed value")
    (tag, body), = tree.items()
    if tag not in _TAGS:
        raise WireError(f"unknown tag {tag!r}")
    if tag == "b":
        if type(body) is not str:
            raise WireError("malformed bytes")
        return bytes.fromhex(body)
    if tag == "c":
        if type(body) is not list or len(body) != 2 or not all(type(x) in (int, float) for x in body):
            raise WireError("malformed complex")
        return complex(body[0], body[1])
    if tag == "G":
        if type(body) is not list or len(body) != 2:
            raise WireError("malformed global")
        try:
            return _stdlib_global(*body)
        except (ImportError, AttributeError) as e:
            raise WireError(f"unknown global {body!r}") from e
    if tag == "M":
        if body not in _MODULES:
            raise WireError(f"not a module that travels: {body!r}")
        return importlib.import_module(body)
    if tag == "r":
        if resolve is None or type(body) is not list or len(body) != 2 or type(body[0]) is not int:
            raise WireError("an object that is not plain data")
        return resolve(body)
    if type(body) is not list:
        raise WireError("malformed container")
    if tag == "d":
        if not all(type(p) is list and len(p) == 2 for p in body):
            raise WireError("malformed dict")
        return {decode(k, resolve): decode(v, resolve) for k, v in body}
    items = [decode(v, resolve) for v in body]
    return {"t": tuple, "s": set, "f": frozenset}[tag](items)


# Bound when this module loads, before a sandboxed program runs: a program that patches json (its dumps,
# its encoder class) afterwards does not change how the harness writes its result.
_str_json, _int_text, _float_text, _join = json.encoder.encode_basestring_ascii, int.__repr__, float.__repr__, str.join
_FLOAT_SPECIAL = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _json_text(tree) -> str:
    kind = type(tree)
    if tree is None:
        return "null"
    if kind is bool:
        return "true" if tree else "false"
    if kind is int:
        return _int_text(tree)
    if kind is float:
        text = _float_text(tree)
        return _FLOAT_SPECIAL.get(text, text)
    if kind is str:
        return _str_json(tree)
    if kind is list:
        return "[" + _join(",", [_json_text(v) for v in tree]) + "]"
    return "{" + _join(",", [_str_json(k) + ":" + _json_text(v) for k, v in dict.items(tree)]) + "}"


def dumps(value, register=None) -> str:
    return _json_text(encode(value, register))


def loads(text: str | bytes, resolve=None):
    """Decode one message; anything malformed (including unhashable set members or dict keys, and
    nesting too deep to parse) raises WireError."""
    try:
        return decode(json.loads(text, parse_int=_int), resolve)
    except WireError:
        raise
    except (ValueError, TypeError, RecursionError, MemoryError) as e:
        raise WireError(f"malformed message: {type(e).__name__}") from None


def is_builtin_name(name: str) -> bool:
    return hasattr(builtins, name)
