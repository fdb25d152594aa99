"""Strict readers for one field of an Envoy document: type, range and unknown-key checks.

Every reader records a `Problem` (path + expectation) in `Issues` and returns None
instead of raising, so one pass finds every error of a file.
"""

from __future__ import annotations

import difflib
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Final

from ._errors import Issues

__all__ = [
    "NOT_SUPPORTED",
    "TYPE_PREFIX",
    "Doc",
    "at",
    "get_bool",
    "get_duration_ms",
    "get_enum",
    "get_fraction",
    "get_int",
    "get_list",
    "get_map",
    "get_percent",
    "get_runtime_fraction",
    "get_str",
    "is_ip",
    "item",
    "kind_of",
    "obj",
    "one_of",
    "parse_duration_ms",
    "typed_config",
]

#: A decoded YAML/JSON mapping.
Doc = Mapping[str, object]

NOT_SUPPORTED: Final = "not supported by fastmesh yet (see docs/envoy-subset.md)"
TYPE_PREFIX: Final = "type.googleapis.com/"

_DURATION = re.compile(r"(\d+)(?:\.(\d{1,9}))?s")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def is_ip(text: str) -> bool:
    """True for an IPv4 or IPv6 literal (inet_pton: fast and strict, no zone ids)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except OSError:
            continue
        return True
    return False


def at(path: str, key: str) -> str:
    """The path of field `key` below `path`."""
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    """The path of list element `index` below `path`."""
    return f"{path}[{index}]"


def kind_of(value: object) -> str:
    """A YAML-ish name of a value's type for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


def _unknown_field(key: str, allowed: frozenset[str]) -> str:
    snake = _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)
    if snake != key and snake in allowed:
        return f"unknown field; use the proto field name {snake!r} (snake_case)"
    msg = NOT_SUPPORTED
    near = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    if near:
        msg += f"; did you mean {near[0]!r}?"
    elif allowed:
        msg += f"; supported here: {', '.join(sorted(allowed))}"
    return msg


def obj(issues: Issues, value: object, path: str, allowed: frozenset[str]) -> Doc | None:
    """`value` as a mapping whose keys are all in `allowed`; unknown keys are problems.

    Returns the mapping even when it has unknown keys (so its known fields are still
    checked), None when it is not a mapping at all.
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        issues.add(path, f"expected a mapping, got {kind_of(value)}")
        return None
    if not allowed.issuperset(value):
        for key in value:
            if key not in allowed:
                issues.add(at(path, str(key)), _unknown_field(str(key), allowed))
    return value


def one_of(issues: Issues, doc: Doc, path: str, keys: Sequence[str]) -> str | None:
    """The one key of `keys` set in `doc` (a proto `oneof`); a problem (and None) unless
    exactly one is."""
    present = [k for k in keys if k in doc]
    if len(present) == 1:
        return present[0]
    issues.add(
        path,
        f"expected exactly one of {', '.join(keys)}"
        + (f", got {', '.join(present)}" if present else ""),
    )
    return None


def get_map(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    allowed: frozenset[str],
    *,
    required: bool = False,
) -> Doc | None:
    """Field `key` of `doc` as a strictly checked mapping (see `obj`)."""
    value = doc.get(key)
    if value is None:
        if required:
            issues.add(at(path, key), "required field is missing")
        return None
    return obj(issues, value, at(path, key), allowed)


def get_str(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    *,
    required: bool = False,
    non_empty: bool = False,
) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            issues.add(at(path, key), "required field is missing (expected a string)")
        return None
    if type(value) is not str:
        issues.add(at(path, key), f"expected a string, got {kind_of(value)}")
        return None
    if non_empty and not value:
        issues.add(at(path, key), "expected a non-empty string")
        return None
    return value


def get_int(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    lo: int,
    hi: int,
    *,
    required: bool = False,
) -> int | None:
    """An integer in [lo, hi]. Decimal strings are accepted too (proto3 JSON allows them)."""
    value = doc.get(key)
    if value is None:
        if required:
            issues.add(at(path, key), f"required field is missing (expected an integer {lo}..{hi})")
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        issues.add(at(path, key), f"expected an integer {lo}..{hi}, got {kind_of(value)}")
        return None
    if not lo <= value <= hi:
        issues.add(at(path, key), f"expected an integer {lo}..{hi}, got {value}")
        return None
    return value


def get_bool(issues: Issues, doc: Doc, key: str, path: str) -> bool | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        issues.add(at(path, key), f"expected true or false, got {kind_of(value)}")
        return None
    return value


def parse_duration_ms(text: str) -> int | None:
    """Milliseconds of a proto3 JSON duration ("15s", "0.25s"); None if malformed.

    Sub-millisecond remainders round up, so a non-zero duration never becomes 0
    (which means "disabled" in several Envoy fields).
    """
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    seconds, frac = m.groups()
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return int(seconds) * 1000 + -(-nanos // 1_000_000)


def get_duration_ms(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    *,
    positive: bool = False,
) -> int | None:
    """A duration field in ms. `positive`: 0 is rejected (Envoy's `gt: {}` rule)."""
    value = doc.get(key)
    if value is None:
        return None
    ms = parse_duration_ms(value) if isinstance(value, str) else None
    if ms is None:
        issues.add(
            at(path, key),
            f'expected a duration like "1.5s" (seconds with an "s" suffix), got {value!r}',
        )
        return None
    if positive and ms == 0:
        issues.add(at(path, key), f"expected a duration greater than 0s, got {value!r}")
        return None
    return ms


def get_enum(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    choices: Mapping[str, str],
    default: str,
    *,
    rejected: Mapping[str, str] | None = None,
) -> str:
    """An Envoy enum name mapped to its native spelling via `choices`.

    `rejected` names valid Envoy values fastmesh refuses, with the reason.
    """
    value = doc.get(key)
    if value is None:
        return default
    if isinstance(value, str) and value in choices:
        return choices[value]
    if rejected and isinstance(value, str) and value in rejected:
        issues.add(at(path, key), f"{value} is {rejected[value]}")
    else:
        issues.add(
            at(path, key),
            f"expected one of {', '.join(choices)}, got {value!r}",
        )
    return default


def get_list(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    *,
    required: bool = False,
) -> Sequence[object]:
    """A list field; missing is empty (or a problem when `required`)."""
    value = doc.get(key)
    if value is None:
        if required:
            issues.add(at(path, key), "required field is missing (expected a list)")
        return ()
    if type(value) is list:
        return value
    if isinstance(value, str) or not isinstance(value, Sequence):
        issues.add(at(path, key), f"expected a list, got {kind_of(value)}")
        return ()
    return value


def typed_config(
    issues: Issues,
    doc: Doc,
    key: str,
    path: str,
    type_name: str,
    allowed: frozenset[str],
    *,
    required: bool = True,
) -> Doc | None:
    """An `Any` field (`typed_config`): its `@type` must be `type.googleapis.com/<type_name>`."""
    cfg = get_map(issues, doc, key, path, allowed | {"@type"}, required=required)
    if cfg is None:
        return None
    url = cfg.get("@type")
    want = TYPE_PREFIX + type_name
    if url != want:
        got = "missing" if url is None else repr(url)
        issues.add(at(at(path, key), "@type"), f'expected "{want}", got {got}')
        return None
    return cfg


_DENOMINATORS: Final = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}
_FRACTION: Final = frozenset({"numerator", "denominator"})
_RUNTIME_FRACTION: Final = frozenset({"default_value", "runtime_key"})
_PERCENT: Final = frozenset({"value"})


def fraction(issues: Issues, value: object, path: str) -> dict[str, int] | None:
    """A `FractionalPercent` at `path` -> native `Fraction` {numerator, denominator}.

    A numerator above the denominator is clamped to it: Envoy treats it as 100 %.
    """
    f = obj(issues, value, path, _FRACTION)
    if f is None:
        return None
    numerator = get_int(issues, f, "numerator", path, 0, 2**32 - 1)
    denominator = _DENOMINATORS[
        get_enum(issues, f, "denominator", path, {k: k for k in _DENOMINATORS}, "HUNDRED")
    ]
    if numerator is None and "numerator" in f:
        return None
    return {"numerator": min(numerator or 0, denominator), "denominator": denominator}


def get_fraction(issues: Issues, doc: Doc, key: str, path: str) -> dict[str, int] | None:
    """Field `key` as a `FractionalPercent` (see `fraction`); None when absent."""
    value = doc.get(key)
    return None if value is None else fraction(issues, value, at(path, key))


def get_runtime_fraction(issues: Issues, doc: Doc, key: str, path: str) -> dict[str, int] | None:
    """Field `key` as a `RuntimeFractionalPercent` -> its `default_value` as a native `Fraction`.

    The `runtime_key` is accepted and ignored: fastmesh has no runtime keys (the
    bootstrap's `layered_runtime` may only hold empty layers), so in Envoy too the
    default value would apply.
    """
    rf = get_map(issues, doc, key, path, _RUNTIME_FRACTION)
    if rf is None:
        return None
    p = at(path, key)
    get_str(issues, rf, "runtime_key", p)
    if "default_value" not in rf:
        issues.add(at(p, "default_value"), "required field is missing")
        return None
    return fraction(issues, rf["default_value"], at(p, "default_value"))


def get_percent(issues: Issues, doc: Doc, key: str, path: str) -> float | None:
    """Field `key` as an Envoy `Percent` message `{value: 0..100}`."""
    pct = get_map(issues, doc, key, path, _PERCENT)
    if pct is None:
        return None
    p = at(path, key)
    value = pct.get("value", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        issues.add(at(p, "value"), f"expected a number 0..100, got {kind_of(value)}")
        return None
    if not 0 <= value <= 100:
        issues.add(at(p, "value"), f"expected a number 0..100, got {value}")
        return None
    return float(value)
