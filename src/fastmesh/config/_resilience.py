"""Envoy cluster resilience settings: circuit breakers, outlier detection, health checks."""

from __future__ import annotations

from typing import Any, Final

from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    Doc,
    at,
    get_bool,
    get_duration_ms,
    get_enum,
    get_int,
    get_list,
    get_map,
    get_percent,
    get_str,
    item,
    obj,
)

__all__ = ["circuit_breakers", "health_checks", "outlier_detection"]

_U32_MAX: Final = 2**32 - 1

_BREAKERS: Final = frozenset({"thresholds"})
_LIMITS: Final = ("max_connections", "max_pending_requests", "max_requests", "max_retries")
_THRESHOLDS: Final = frozenset({"priority", "retry_budget", "track_remaining", *_LIMITS})
_BUDGET: Final = frozenset({"budget_percent", "min_retry_concurrency"})

# Integer fields of `OutlierDetection` (all UInt32Value): name -> largest value.
_OUTLIER_INTS: Final = {
    "consecutive_5xx": _U32_MAX,
    "consecutive_gateway_failure": _U32_MAX,
    "max_ejection_percent": 100,
    "enforcing_consecutive_5xx": 100,
    "enforcing_consecutive_gateway_failure": 100,
    "enforcing_success_rate": 100,
    "success_rate_minimum_hosts": _U32_MAX,
    "success_rate_request_volume": _U32_MAX,
    "success_rate_stdev_factor": _U32_MAX,
}
_OUTLIER_DURATIONS: Final = ("interval", "base_ejection_time", "max_ejection_time")
_OUTLIER: Final = frozenset(_OUTLIER_INTS) | frozenset(_OUTLIER_DURATIONS)
# Envoy's defaults, to check base <= max when only one is set.
_BASE_EJECTION_MS: Final = 30_000
# Envoy checks a cluster that has never sent a request this rarely.
_NO_TRAFFIC_INTERVAL_MS: Final = 60_000
_MAX_EJECTION_MS: Final = 300_000

_HEALTH_CHECK: Final = frozenset(
    {
        "timeout",
        "interval",
        "interval_jitter",
        "no_traffic_interval",
        "unhealthy_threshold",
        "healthy_threshold",
        "http_health_check",
        "tcp_health_check",
    }
)
_HTTP_CHECK: Final = frozenset({"path", "host", "expected_statuses", "codec_client_type"})
_RANGE: Final = frozenset({"start", "end"})
_TCP_CHECK: Final = frozenset({"send", "receive"})
_PAYLOAD: Final = frozenset({"text"})
_CODECS: Final = {"HTTP1": "http1", "HTTP2": "http2"}


def _retry_budget(issues: Issues, t: Doc, path: str) -> dict[str, Any] | None:
    rb = get_map(issues, t, "retry_budget", path, _BUDGET)
    if rb is None:
        return None
    p = at(path, "retry_budget")
    out: dict[str, Any] = {}
    percent = get_percent(issues, rb, "budget_percent", p)
    if percent is not None:
        out["budget_percent"] = percent
    least = get_int(issues, rb, "min_retry_concurrency", p, 0, _U32_MAX)
    if least is not None:
        out["min_retry_concurrency"] = least
    return out


def circuit_breakers(issues: Issues, c: Doc, path: str) -> dict[str, Any] | None:
    """`circuit_breakers` -> native `CircuitBreakers` (the DEFAULT priority's thresholds).

    fastmesh has no request priorities, so a HIGH threshold would never apply: an error.
    """
    cb = get_map(issues, c, "circuit_breakers", path, _BREAKERS)
    if cb is None:
        return None
    p = at(path, "circuit_breakers")
    base = at(p, "thresholds")
    out: dict[str, Any] = {}
    seen_default = False
    for i, raw in enumerate(get_list(issues, cb, "thresholds", p)):
        tp = item(base, i)
        t = obj(issues, raw, tp, _THRESHOLDS)
        if t is None:
            continue
        get_enum(
            issues, t, "priority", tp, {"DEFAULT": "default"}, "default",
            rejected={"HIGH": f"{NOT_SUPPORTED}: fastmesh has no request priorities"},
        )  # fmt: skip
        if seen_default:
            issues.add(tp, "a second DEFAULT threshold (Envoy allows one per priority)")
            continue
        seen_default = True
        # track_remaining only publishes `remaining_*` gauges, which fastmesh does not have.
        if get_bool(issues, t, "track_remaining", tp):
            issues.add(at(tp, "track_remaining"), f"remaining_* gauges are {NOT_SUPPORTED}")
        for key in _LIMITS:
            limit = get_int(issues, t, key, tp, 0, _U32_MAX)
            if limit is not None:
                out[key] = limit
        budget = _retry_budget(issues, t, tp)
        if budget is not None:
            out["retry_budget"] = budget
    return out


def outlier_detection(issues: Issues, c: Doc, path: str) -> dict[str, Any] | None:
    """`outlier_detection` -> native `OutlierDetection` (unset fields keep Envoy's defaults)."""
    od = get_map(issues, c, "outlier_detection", path, _OUTLIER)
    if od is None:
        return None
    p = at(path, "outlier_detection")
    out: dict[str, Any] = {}
    for key, hi in _OUTLIER_INTS.items():
        value = get_int(issues, od, key, p, 0, hi)
        if value is not None:
            out[key] = value
    for key in _OUTLIER_DURATIONS:
        ms = get_duration_ms(issues, od, key, p, positive=True)
        if ms is not None:
            out[f"{key}_ms"] = ms
    base = out.get("base_ejection_time_ms", _BASE_EJECTION_MS)
    cap = out.get("max_ejection_time_ms", _MAX_EJECTION_MS)
    if base > cap:
        issues.add(
            at(p, "max_ejection_time"),
            f"expected at least base_ejection_time ({base} ms), got {cap} ms",
        )
    return out


def _hex_payload(issues: Issues, raw: object, path: str) -> list[int]:
    """A health-check `Payload` {text: hex} -> its bytes as a list of ints."""
    payload = obj(issues, raw, path, _PAYLOAD)
    text = None if payload is None else get_str(issues, payload, "text", path, required=True)
    if text is None:
        return []
    try:
        return list(bytes.fromhex(text))
    except ValueError:
        issues.add(at(path, "text"), f"expected hex digits (e.g. '50494e47'), got {text!r}")
        return []


def _http_check(issues: Issues, hc: Doc, path: str, out: dict[str, Any]) -> None:
    h = get_map(issues, hc, "http_health_check", path, _HTTP_CHECK)
    if h is None:
        return
    p = at(path, "http_health_check")
    check: dict[str, Any] = {"path": get_str(issues, h, "path", p, required=True, non_empty=True)}
    host = get_str(issues, h, "host", p, non_empty=True)
    if host is not None:
        check["host"] = host
    if "expected_statuses" in h:
        ranges: list[tuple[int, int]] = []
        base = at(p, "expected_statuses")
        for i, raw in enumerate(get_list(issues, h, "expected_statuses", p)):
            rp = item(base, i)
            r = obj(issues, raw, rp, _RANGE)
            if r is None:
                continue
            start = get_int(issues, r, "start", rp, 100, 599, required=True)
            end = get_int(issues, r, "end", rp, 101, 600, required=True)
            if start is not None and end is not None:
                if start < end:
                    ranges.append((start, end))
                else:
                    issues.add(rp, f"expected start < end (end is exclusive), got [{start}, {end})")
        check["expected_statuses"] = ranges
    if (
        get_enum(
            issues, h, "codec_client_type", p, _CODECS, "http1", rejected={"HTTP3": NOT_SUPPORTED}
        )
        == "http2"
    ):
        check["http2"] = True
    if check["path"] is not None:
        out["kind"] = {"http": check}


def _tcp_check(issues: Issues, hc: Doc, path: str, out: dict[str, Any]) -> None:
    t = get_map(issues, hc, "tcp_health_check", path, _TCP_CHECK)
    if t is None:
        return
    p = at(path, "tcp_health_check")
    check: dict[str, Any] = {}
    if "send" in t:
        check["send"] = _hex_payload(issues, t["send"], at(p, "send"))
    if "receive" in t:
        base = at(p, "receive")
        # Envoy waits for all receive payloads, in order, as one blob.
        check["receive"] = [
            byte
            for i, raw in enumerate(get_list(issues, t, "receive", p))
            for byte in _hex_payload(issues, raw, item(base, i))
        ]
    out["kind"] = {"tcp": check}


def _health_check(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    hc = obj(issues, raw, path, _HEALTH_CHECK)
    if hc is None:
        return None
    out: dict[str, Any] = {}
    for key in ("timeout", "interval"):
        if key not in hc:
            issues.add(at(path, key), "required field is missing")
        out[f"{key}_ms"] = get_duration_ms(issues, hc, key, path, positive=True)
    jitter = get_duration_ms(issues, hc, "interval_jitter", path)
    if jitter:
        out["interval_jitter_ms"] = jitter
    no_traffic = get_duration_ms(issues, hc, "no_traffic_interval", path, positive=True)
    out["no_traffic_interval_ms"] = (
        _NO_TRAFFIC_INTERVAL_MS if "no_traffic_interval" not in hc else no_traffic
    )
    for key in ("unhealthy_threshold", "healthy_threshold"):
        out[key] = get_int(issues, hc, key, path, 1, _U32_MAX, required=True)
    kinds = [k for k in ("http_health_check", "tcp_health_check") if k in hc]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of http_health_check, tcp_health_check"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
    elif kinds[0] == "http_health_check":
        _http_check(issues, hc, path, out)
    else:
        _tcp_check(issues, hc, path, out)
    return out if "kind" in out and None not in out.values() else None


def health_checks(issues: Issues, c: Doc, path: str) -> list[dict[str, Any]]:
    """`health_checks[]` -> native `HealthCheck`s (broken ones left out)."""
    base = at(path, "health_checks")
    checks = [
        _health_check(issues, raw, item(base, i))
        for i, raw in enumerate(get_list(issues, c, "health_checks", path))
    ]
    return [hc for hc in checks if hc is not None]
