"""Envoy `Http2ProtocolOptions`, shared by the HCM (downstream) and clusters (upstream)."""

from __future__ import annotations

from typing import Any, Final

from ._errors import Issues
from ._fields import NOT_SUPPORTED, Doc, at, get_duration_ms, get_map, get_percent

_KEEPALIVE: Final = frozenset(
    {"interval", "timeout", "interval_jitter", "connection_idle_interval"}
)


def connection_keepalive(issues: Issues, h2: Doc, path: str) -> dict[str, Any] | None:
    """`connection_keepalive` of `h2` (an `http2_protocol_options` at `path`) -> engine form."""
    ka = get_map(issues, h2, "connection_keepalive", path, _KEEPALIVE)
    if ka is None:
        return None
    p = at(path, "connection_keepalive")
    if "connection_idle_interval" in ka:
        issues.add(at(p, "connection_idle_interval"), NOT_SUPPORTED)
    interval = get_duration_ms(issues, ka, "interval", p)
    if "timeout" not in ka:
        issues.add(at(p, "timeout"), "required field is missing")
        return None
    timeout = get_duration_ms(issues, ka, "timeout", p, positive=True)
    if timeout is None:
        return None
    jitter = get_percent(issues, ka, "interval_jitter", p)
    return {
        "interval_ms": interval or 0,  # unset or 0: no interval PINGs, as in Envoy
        "timeout_ms": timeout,
        "interval_jitter_percent": 15.0 if jitter is None else jitter,
    }
