"""Istio's scan of a VirtualService's rule list, the same for `http` and `tcp` rules
(`analyzeUnreachableHTTPRules`, `analyzeUnreachableTCPRules` in istio/istio
pkg/config/validation/validation.go): the rules no request reaches (IST0130) and the
matches an earlier match already has (IST0131)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Repeated", "RuleScan", "Unused", "scan_rules"]


@dataclass(frozen=True, slots=True)
class Unused:
    """IST0130: rule `rule` is never used, for `reason` (Istio's words)."""

    rule: int
    reason: str


@dataclass(frozen=True, slots=True)
class Repeated:
    """IST0131: match `match` of rule `rule` is one rule `first` has (maybe `rule` itself)."""

    rule: int
    match: int
    first: int


@dataclass(slots=True)
class RuleScan:
    unused: list[Unused] = field(default_factory=list)
    repeated: list[Repeated] = field(default_factory=list)
    #: `(rule, match)` of each match met for the first time, in order (Istio checks only
    #: these for http prefix coverage).
    first_seen: list[tuple[int, int]] = field(default_factory=list)


def scan_rules(rules: Sequence[Sequence[object]]) -> RuleScan:
    """`rules[i]` is rule i's matches. Matches compare by value (`==`), as Istio compares
    their JSON. After a rule without matches, later rules are only reported unused: their
    matches are not looked at (Istio skips them too)."""
    out = RuleScan()
    seen: list[tuple[object, int]] = []  # each distinct match, with the rule it is first in
    matchless = False
    for i, matches in enumerate(rules):
        if not matches:
            if matchless:
                out.unused.append(Unused(i, "only the last rule can have no matches"))
            matchless = True
        elif matchless:
            out.unused.append(Unused(i, "route without matches defined before"))
        else:
            repeats = 0
            for j, match in enumerate(matches):
                first = next((rule for m, rule in seen if m == match), None)
                if first is None:
                    seen.append((match, i))
                    out.first_seen.append((i, j))
                else:
                    out.repeated.append(Repeated(i, j, first))
                    repeats += 1
            if repeats == len(matches):
                out.unused.append(Unused(i, "all matches used by prior rules"))
    return out
