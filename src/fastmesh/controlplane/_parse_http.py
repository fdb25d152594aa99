"""Parse the per-route HTTP actions of a VirtualService: rewrite, redirect, headers, fault."""

from __future__ import annotations

from typing import Any

from ._fields import Fields
from ._model import Fault, HeaderOps, Redirect, Rewrite

__all__ = ["REDIRECT_CODES", "parse_fault", "parse_headers", "parse_redirect", "parse_rewrite"]

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
    entry = f.mapping(obj, path)
    if not entry:
        return 100.0
    f.only(entry, path, {"value"})
    value = entry.get("value")
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
