"""Istio's check that an earlier http match covers a later one by uri prefix
(`genMatchHTTPRoutes`, `coveredValidation` in istio/istio
pkg/config/validation/validation.go), the overlapping half of IST0131.

The rule is Istio's as written, quirks included, so that fastmesh reports what
`istioctl analyze` reports: only matches with a `uri` prefix take part, pairs with the same
prefix are left to the duplicate check, and only `port`, `method`, `headers` and
`queryParams` are compared (not the source fields). Values compare as Istio's text,
`exact:v` or `prefix:v` (a regex is "", a missing method `exact:GET`): equal, or the
earlier's starting with the later's. (`authority` and `withoutHeaders`, which Istio compares
too, are refused when loading.)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from ._model import HttpMatch, HttpRoute, StringMatch

__all__ = ["Covered", "covered_matches"]


@dataclass(frozen=True, slots=True)
class _Prefixed:
    """Istio's `OverlappingMatchValidationForHTTPRoute`: one match with a uri prefix."""

    rule: int
    match: int
    prefix: str
    port: int
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Covered:
    """IST0131: match `match` (uri prefix `prefix`) of rule `rule` is covered by match
    `by_match` (prefix `by_prefix`) of the earlier rule `by_rule`."""

    rule: int
    match: int
    prefix: str
    by_rule: int
    by_match: int
    by_prefix: str


def _text(sm: StringMatch | None) -> str:
    """Istio's `assignExactOrPrefix`."""
    if sm is None or sm.kind == "regex" or not sm.value:
        return ""
    return f"{sm.kind}:{sm.value}"


def _prefixed(rule: int, j: int, m: HttpMatch) -> _Prefixed | None:
    if m.uri is None or m.uri.kind != "prefix" or not m.uri.value:
        return None
    return _Prefixed(
        rule,
        j,
        m.uri.value,
        m.port,
        _text(m.method) or "exact:GET",
        {k: _text(v) for k, v in m.headers.items()},
        {k: _text(v) for k, v in m.query_params.items()},
    )


def _value_covers(earlier: str, later: str) -> bool:
    return earlier.startswith(later)  # Istio: equal, or HasPrefix(earlier, later)


def _map_covers(earlier: Mapping[str, str], later: Mapping[str, str]) -> bool:
    return len(earlier) == len(later) and all(
        k in later and _value_covers(v, later[k]) for k, v in earlier.items()
    )


def _covers(a: _Prefixed, b: _Prefixed) -> bool:
    """Istio's `coveredValidation(a, b)`, `a` the earlier match."""
    return (
        b.prefix.startswith(a.prefix)
        and a.port == b.port
        and _value_covers(a.method, b.method)
        and _map_covers(a.headers, b.headers)
        and _map_covers(a.query, b.query)
    )


def covered_matches(
    http: Sequence[HttpRoute], candidates: Sequence[tuple[int, int]]
) -> Iterator[Covered]:
    """Each candidate `(rule, match)` (in order: Istio's matches met for the first time, so
    `RuleScan.first_seen`) that an earlier candidate with another prefix covers, once for
    each such earlier one."""
    found = [p for i, j in candidates if (p := _prefixed(i, j, http[i].matches[j])) is not None]
    for n, a in enumerate(found):
        for b in found[n + 1 :]:
            if b.prefix != a.prefix and _covers(a, b):
                yield Covered(b.rule, b.match, b.prefix, a.rule, a.match, a.prefix)
