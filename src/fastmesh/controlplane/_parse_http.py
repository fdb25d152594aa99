"""Parse the per-route HTTP actions of a VirtualService: rewrite, redirect, headers, fault,
mirror, CORS."""

from __future__ import annotations

from typing import Any

from ._fields import Fields
from ._model import CorsPolicy, Fault, HeaderOps, Mirror, Redirect, Rewrite
from ._parse_route import parse_destination, parse_string_match

__all__ = [
    "REDIRECT_CODES",
    "parse_cors",
    "parse_fault",
    "parse_headers",
    "parse_mirrors",
    "parse_redirect",
    "parse_rewrite",
]

REDIRECT_CODES = (301, 302, 303, 307, 308)


def parse_rewrite(f: Fields, obj: Any, path: str) -> Rewrite | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"uri", "authority"})
    uri = f.string(entry.get("uri"), f"{path}.uri")
    authority = f.string(entry.get("authority"), f"{path}.authority")
    if not uri and not authority:
        f.problem(path, "needs uri or authority")
    return Rewrite(uri, authority)


def parse_redirect(f: Fields, obj: Any, path: str) -> Redirect | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"uri", "authority", "redirectCode"})
    code = f.integer(entry.get("redirectCode"), f"{path}.redirectCode", lo=300, hi=399, default=301)
    if code not in REDIRECT_CODES:
        f.problem(f"{path}.redirectCode", f"expected one of {', '.join(map(str, REDIRECT_CODES))}")
    uri = f.string(entry.get("uri"), f"{path}.uri")
    authority = f.string(entry.get("authority"), f"{path}.authority")
    if not uri and not authority:
        f.problem(path, "needs uri or authority")
    return Redirect(uri, authority, code)


def _header_ops(f: Fields, obj: Any, path: str) -> HeaderOps | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"set", "add", "remove"})
    remove = tuple(
        f.string(name, f"{path}.remove[{i}]", required=True).lower()
        for i, name in enumerate(f.seq(entry.get("remove"), f"{path}.remove"))
    )
    return HeaderOps(
        {k.lower(): v for k, v in f.labels(entry.get("set"), f"{path}.set").items()},
        {k.lower(): v for k, v in f.labels(entry.get("add"), f"{path}.add").items()},
        remove,
    )


def parse_headers(f: Fields, obj: Any, path: str) -> tuple[HeaderOps | None, HeaderOps | None]:
    """(request, response) header operations of Istio's `headers`."""
    entry = f.mapping(obj, path)
    f.only(entry, path, {"request", "response"})
    return (
        _header_ops(f, entry.get("request"), f"{path}.request"),
        _header_ops(f, entry.get("response"), f"{path}.response"),
    )


def _percent(f: Fields, obj: Any, path: str) -> float:
    """Istio `Percent`: absent is 100 %; present without `value` is 0 % (the proto's default),
    so `mirrorPercentage: {}` mirrors nothing."""
    if obj is None:
        return 100.0
    entry = f.mapping(obj, path)
    f.only(entry, path, {"value"})
    value = entry.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        f.problem(f"{path}.value", f"expected a number in [0, 100], got {value!r}")
        return 100.0
    return float(value)


def parse_fault(f: Fields, obj: Any, path: str) -> Fault | None:
    entry = f.mapping(obj, path)
    if not entry:
        return None
    f.only(entry, path, {"delay", "abort"})
    delay, delay_percent, status, abort_percent = None, 100.0, None, 100.0
    if "delay" in entry:
        d = f.mapping(entry["delay"], f"{path}.delay", required=True)
        f.only(d, f"{path}.delay", {"fixedDelay", "percentage"})
        delay = f.duration(d.get("fixedDelay"), f"{path}.delay.fixedDelay")
        if delay is None:
            f.problem(f"{path}.delay.fixedDelay", "is required")
        delay_percent = _percent(f, d.get("percentage"), f"{path}.delay.percentage")
    if "abort" in entry:
        a = f.mapping(entry["abort"], f"{path}.abort", required=True)
        f.only(a, f"{path}.abort", {"httpStatus", "percentage"})
        status = f.integer(
            a.get("httpStatus"), f"{path}.abort.httpStatus", lo=200, hi=599, required=True
        )
        abort_percent = _percent(f, a.get("percentage"), f"{path}.abort.percentage")
    if delay is None and status is None:
        f.problem(path, "needs delay or abort")
    return Fault(delay, delay_percent, status, abort_percent)


def parse_mirrors(f: Fields, route: dict[str, Any], path: str) -> tuple[Mirror, ...]:
    """`mirror` with `mirrorPercentage`, then each of `mirrors[]` (`destination`,
    `percentage`). A percentage of 0 mirrors nothing (as in Istio)."""
    out: list[Mirror] = []
    if "mirror" in route:
        dest = parse_destination(f, route["mirror"], f"{path}.mirror")
        percent = _percent(f, route.get("mirrorPercentage"), f"{path}.mirrorPercentage")
        out.append(Mirror(dest, percent))
    elif "mirrorPercentage" in route:
        f.problem(f"{path}.mirrorPercentage", "needs mirror")
    for i, raw in enumerate(f.seq(route.get("mirrors"), f"{path}.mirrors")):
        p = f"{path}.mirrors[{i}]"
        entry = f.mapping(raw, p, required=True)
        f.only(entry, p, {"destination", "percentage"})
        dest = parse_destination(f, entry.get("destination"), f"{p}.destination")
        percent = _percent(f, entry.get("percentage"), f"{p}.percentage")
        out.append(Mirror(dest, percent, f"mirrors[{i}].destination"))
    return tuple(m for m in out if m.percent > 0)


#: Istio's `unmatchedPreflights` -> whether such preflights are forwarded upstream.
_UNMATCHED_PREFLIGHTS = {"UNSPECIFIED": True, "FORWARD": True, "IGNORE": False}


def parse_cors(f: Fields, obj: Any, path: str) -> CorsPolicy | None:
    entry = f.mapping(obj, path)
    if obj is None:
        return None
    f.only(
        entry,
        path,
        {
            "allowOrigins",
            "allowMethods",
            "allowHeaders",
            "exposeHeaders",
            "maxAge",
            "allowCredentials",
            "unmatchedPreflights",
        },
    )
    origins = [
        parse_string_match(f, m, f"{path}.allowOrigins[{i}]")
        for i, m in enumerate(f.seq(entry.get("allowOrigins"), f"{path}.allowOrigins"))
    ]
    max_age = f.duration(entry.get("maxAge"), f"{path}.maxAge")
    unmatched = f.string(
        entry.get("unmatchedPreflights"), f"{path}.unmatchedPreflights", default="UNSPECIFIED"
    )
    if unmatched not in _UNMATCHED_PREFLIGHTS:
        f.problem(
            f"{path}.unmatchedPreflights",
            f"expected one of {', '.join(_UNMATCHED_PREFLIGHTS)}, got {unmatched!r}",
        )
    return CorsPolicy(
        allow_origins=tuple(m for m in origins if m is not None),
        allow_methods=f.strings(entry.get("allowMethods"), f"{path}.allowMethods"),
        allow_headers=f.strings(entry.get("allowHeaders"), f"{path}.allowHeaders"),
        expose_headers=f.strings(entry.get("exposeHeaders"), f"{path}.exposeHeaders"),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=f.boolean(entry.get("allowCredentials"), f"{path}.allowCredentials"),
        forward_unmatched_preflights=_UNMATCHED_PREFLIGHTS.get(unmatched, True),
    )
