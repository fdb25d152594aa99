"""Envoy matchers: `RegexMatcher`, `StringMatcher`, `HeaderMatcher`, and header names."""

from __future__ import annotations

import re
from typing import Any, Final

from ._errors import Issues
from ._fields import Doc, at, get_bool, get_str, obj

__all__ = ["check_regex", "header_matcher", "header_name", "string_matcher"]

_REGEX: Final = frozenset({"regex", "google_re2"})
_HEADER_MATCHER: Final = frozenset({"name", "string_match", "present_match", "invert_match"})
_STRING_MATCH: Final = frozenset(
    {"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"}
)
_STRING_KINDS: Final = ("exact", "prefix", "suffix", "contains", "safe_regex")

# Envoy: pseudo-headers and `host` cannot be added or removed by header mutations.
_PROTECTED: Final = "pseudo-headers (':...') and 'host' cannot be modified"
# Python `re` accepts these, RE2 (Envoy's engine) does not.
_NOT_RE2: Final = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=|\(\?>|[*+?}]\+")
_ESCAPED: Final = re.compile(r"\\[^1-9]")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")


def check_regex(issues: Issues, doc: object, path: str) -> str | None:
    """A `RegexMatcher` ({regex, google_re2: {}}) -> the pattern.

    Python's `re` is a close first check of RE2 syntax; the constructs where the two
    differ in *acceptance* (lookaround, backreferences, possessive/atomic groups) are
    refused explicitly because Envoy's RE2 rejects them.
    """
    m = obj(issues, doc, path, _REGEX)
    if m is None:
        return None
    google = m.get("google_re2")
    if google is not None and google != {}:
        issues.add(at(path, "google_re2"), "only an empty google_re2 {} is supported")
    pattern = get_str(issues, m, "regex", path, required=True)
    if pattern is None:
        return None
    if _NOT_RE2.search(_ESCAPED.sub("x", pattern)):
        issues.add(
            at(path, "regex"),
            f"RE2 does not support lookaround, backreferences or possessive/atomic groups: "
            f"{pattern!r}",
        )
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        issues.add(at(path, "regex"), f"invalid regular expression {pattern!r}: {exc}")
        return None
    return pattern


def header_name(issues: Issues, name: str, path: str, *, mutation: bool) -> str | None:
    """A header name, lower-cased. Matchers may name pseudo-headers; mutations may not."""
    lower = name.lower()
    body = lower[1:] if lower.startswith(":") and not mutation else lower
    if not _HEADER_NAME.fullmatch(body):
        issues.add(path, f"expected a valid HTTP header name, got {name!r}")
        return None
    if mutation and (lower.startswith(":") or lower == "host"):
        issues.add(path, f"{_PROTECTED}, got {name!r}")
        return None
    return lower


def _string_kind(issues: Issues, sm: Doc, path: str) -> dict[str, Any] | None:
    """The one match specifier of a `StringMatcher` -> native `{kind: value}`."""
    kinds = [k for k in _STRING_KINDS if k in sm]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of exact, prefix, suffix, contains, safe_regex"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        return None
    kind = kinds[0]
    if kind == "safe_regex":
        pattern = check_regex(issues, sm["safe_regex"], at(path, "safe_regex"))
        return None if pattern is None else {"regex": pattern}
    value = get_str(issues, sm, kind, path)
    return None if value is None else {kind: value}


def string_match(issues: Issues, doc: object, path: str) -> dict[str, Any] | None:
    """A header matcher's `StringMatcher` -> native `HeaderMatchKind` (case-sensitive only)."""
    sm = obj(issues, doc, path, _STRING_MATCH)
    if sm is None:
        return None
    if get_bool(issues, sm, "ignore_case", path):
        issues.add(at(path, "ignore_case"), "only ignore_case: false is supported")
    return _string_kind(issues, sm, path)


def string_matcher(issues: Issues, doc: object, path: str) -> dict[str, Any] | None:
    """A `StringMatcher` -> native `StringMatcher` {kind, ignore_case}.

    Envoy ignores `ignore_case` for `safe_regex`, so it is dropped there (write `(?i)`).
    """
    sm = obj(issues, doc, path, _STRING_MATCH)
    if sm is None:
        return None
    ignore_case = get_bool(issues, sm, "ignore_case", path) or False
    kind = _string_kind(issues, sm, path)
    if kind is None:
        return None
    return {"kind": kind, "ignore_case": ignore_case and "regex" not in kind}


def header_matcher(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    """A `HeaderMatcher` -> native `HeaderMatcher`."""
    hm = obj(issues, raw, path, _HEADER_MATCHER)
    if hm is None:
        return None
    name = get_str(issues, hm, "name", path, required=True, non_empty=True)
    invert = get_bool(issues, hm, "invert_match", path) or False
    present = get_bool(issues, hm, "present_match", path)
    kind: dict[str, Any] | None
    if "string_match" in hm:
        if present is not None:
            issues.add(path, "expected only one of string_match, present_match")
        kind = string_match(issues, hm["string_match"], at(path, "string_match"))
    else:
        # Envoy: no match specifier means "the header is present".
        kind = {"present": True if present is None else present}
    if name is None or kind is None:
        return None
    lower = header_name(issues, name, at(path, "name"), mutation=False)
    if lower is None:
        return None
    out: dict[str, Any] = {"name": lower, "match": kind}
    if invert:
        out["invert"] = True
    return out
