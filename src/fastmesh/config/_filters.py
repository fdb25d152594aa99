"""Envoy HTTP filters (fault, local rate limit, CORS, RBAC, router) and their per-route configs.

The connection manager's `http_filters` chain becomes the native `http_filters` list
plus a map of filter name -> kind; routes and virtual hosts use that map to translate
`typed_per_filter_config` (keyed by filter name) into native `filter_overrides`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    TYPE_PREFIX,
    Doc,
    at,
    get_bool,
    get_duration_ms,
    get_enum,
    get_fraction,
    get_int,
    get_list,
    get_map,
    get_runtime_fraction,
    get_str,
    item,
    obj,
    one_of,
)
from ._headers import headers_to_add
from ._match import header_matcher, string_matcher
from ._rbac import (
    HTTP_RBAC_FIELDS,
    HTTP_RBAC_TYPE,
    PER_ROUTE_FIELDS,
    RBAC_PER_ROUTE_TYPE,
    http_rbac,
    per_route_rbac,
)

__all__ = ["FilterKinds", "filter_overrides", "http_filters"]

#: Filter name (as in `http_filters[].name`) -> native kind ("fault", "local_rate_limit",
#: "cors", "rbac").
FilterKinds = Mapping[str, str]

ROUTER_NAME: Final = "envoy.filters.http.router"
CORS_NAME: Final = "envoy.filters.http.cors"
ROUTER_TYPE: Final = "envoy.extensions.filters.http.router.v3.Router"
FAULT_TYPE: Final = "envoy.extensions.filters.http.fault.v3.HTTPFault"
LOCAL_RATE_LIMIT_TYPE: Final = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
CORS_TYPE: Final = "envoy.extensions.filters.http.cors.v3.Cors"
CORS_POLICY_TYPE: Final = "envoy.extensions.filters.http.cors.v3.CorsPolicy"

# Envoy finds a filter's implementation by the `@type` of its `typed_config`; the name is
# only a label (and the key of per-route configs). Type -> native kind.
_KINDS: Final = {
    TYPE_PREFIX + FAULT_TYPE: "fault",
    TYPE_PREFIX + LOCAL_RATE_LIMIT_TYPE: "local_rate_limit",
    TYPE_PREFIX + CORS_TYPE: "cors",
    TYPE_PREFIX + HTTP_RBAC_TYPE: "rbac",
    TYPE_PREFIX + ROUTER_TYPE: "router",
}
# The canonical names, for a clearer message when their `@type` is wrong.
_WELL_KNOWN: Final = {
    ROUTER_NAME: ROUTER_TYPE,
    "envoy.filters.http.fault": FAULT_TYPE,
    "envoy.filters.http.local_ratelimit": LOCAL_RATE_LIMIT_TYPE,
    CORS_NAME: CORS_TYPE,
    "envoy.filters.http.rbac": HTTP_RBAC_TYPE,
}

_HTTP_FILTER: Final = frozenset({"name", "typed_config"})
_FAULT: Final = frozenset({"@type", "delay", "abort", "headers", "max_active_faults"})
_DELAY: Final = frozenset({"fixed_delay", "header_delay", "percentage"})
_ABORT: Final = frozenset({"http_status", "grpc_status", "header_abort", "percentage"})
_LOCAL_RATE_LIMIT: Final = frozenset(
    {
        "@type",
        "stat_prefix",
        "token_bucket",
        "filter_enabled",
        "filter_enforced",
        "status",
        "response_headers_to_add",
        "enable_x_ratelimit_headers",
    }
)
_TOKEN_BUCKET: Final = frozenset({"max_tokens", "tokens_per_fill", "fill_interval"})
_STATUS: Final = frozenset({"code"})
_CORS_POLICY: Final = frozenset(
    {
        "allow_origin_string_match",
        "allow_methods",
        "allow_headers",
        "expose_headers",
        "max_age",
        "allow_credentials",
        "allow_private_network_access",
        "filter_enabled",
        "forward_not_matching_preflights",
    }
)
# Fields of each kind's `typed_config` in the chain (router and CORS take none).
_CHAIN_FIELDS: Final = {
    "router": frozenset({"@type"}),
    "cors": frozenset({"@type"}),
    "fault": _FAULT,
    "local_rate_limit": _LOCAL_RATE_LIMIT,
    "rbac": HTTP_RBAC_FIELDS,
}
_X_RATELIMIT: Final = {"OFF": "", "DRAFT_VERSION_03": "draft_version_03"}
_U32_MAX: Final = 2**32 - 1
# Envoy's default `FractionalPercent` (an unset `percentage`): 0 %.
_NONE: Final = {"numerator": 0, "denominator": 100}

# Envoy's `envoy.type.v3.StatusCode` names, for `status.code` (numbers work too).
_STATUS_CODES: Final = {
    "BadRequest": 400, "Unauthorized": 401, "PaymentRequired": 402, "Forbidden": 403,
    "NotFound": 404, "MethodNotAllowed": 405, "NotAcceptable": 406,
    "ProxyAuthenticationRequired": 407, "RequestTimeout": 408, "Conflict": 409, "Gone": 410,
    "LengthRequired": 411, "PreconditionFailed": 412, "PayloadTooLarge": 413,
    "URITooLong": 414, "UnsupportedMediaType": 415, "RangeNotSatisfiable": 416,
    "ExpectationFailed": 417, "MisdirectedRequest": 421, "UnprocessableEntity": 422,
    "Locked": 423, "FailedDependency": 424, "UpgradeRequired": 426,
    "PreconditionRequired": 428, "TooManyRequests": 429, "RequestHeaderFieldsTooLarge": 431,
    "InternalServerError": 500, "NotImplemented": 501, "BadGateway": 502,
    "ServiceUnavailable": 503, "GatewayTimeout": 504, "HTTPVersionNotSupported": 505,
    "VariantAlsoNegotiates": 506, "InsufficientStorage": 507, "LoopDetected": 508,
    "NotExtended": 510, "NetworkAuthenticationRequired": 511,
}  # fmt: skip


def _header_controlled(issues: Issues, doc: Doc, key: str, path: str) -> None:
    """`header_delay: {}` / `header_abort: {}`: empty messages, the value is in the request."""
    get_map(issues, doc, key, path, frozenset())


def _fault_delay(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    d = obj(issues, raw, path, _DELAY)
    if d is None:
        return None
    out: dict[str, Any] = {"percent": get_fraction(issues, d, "percentage", path) or dict(_NONE)}
    kind = one_of(issues, d, path, ("fixed_delay", "header_delay"))
    if kind == "fixed_delay":
        fixed = get_duration_ms(issues, d, "fixed_delay", path)
        if fixed is None:
            return None
        out["fixed_ms"] = fixed
    elif kind == "header_delay":
        _header_controlled(issues, d, kind, path)
        out["header_controlled"] = True
    return out if kind is not None else None


def _fault_abort(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    a = obj(issues, raw, path, _ABORT)
    if a is None:
        return None
    out: dict[str, Any] = {"percent": get_fraction(issues, a, "percentage", path) or dict(_NONE)}
    kind = one_of(issues, a, path, ("http_status", "grpc_status", "header_abort"))
    if kind == "http_status":
        status = get_int(issues, a, kind, path, 200, 599)
        if status is None:
            return None
        out["http_status"] = status
    elif kind == "grpc_status":
        grpc = get_int(issues, a, kind, path, 0, _U32_MAX)
        if grpc is None:
            return None
        out["grpc_status"] = grpc
    elif kind == "header_abort":
        _header_controlled(issues, a, kind, path)
        out["header_controlled"] = True
    return out if kind is not None else None


def _fault(issues: Issues, f: Doc, path: str) -> dict[str, Any]:
    """An `HTTPFault` (already checked for its `@type`) -> native `FaultConfig`."""
    out: dict[str, Any] = {}
    if "delay" in f:
        out["delay"] = _fault_delay(issues, f["delay"], at(path, "delay"))
    if "abort" in f:
        out["abort"] = _fault_abort(issues, f["abort"], at(path, "abort"))
    if "headers" in f:
        base = at(path, "headers")
        out["headers"] = [
            header_matcher(issues, h, item(base, i))
            for i, h in enumerate(get_list(issues, f, "headers", path))
        ]
    active = get_int(issues, f, "max_active_faults", path, 0, _U32_MAX)
    if active is not None:
        out["max_active_faults"] = active
    return out


def _status(issues: Issues, doc: Doc, path: str) -> int | None:
    """An `HttpStatus` {code}: a `StatusCode` name or number, 400..599."""
    s = get_map(issues, doc, "status", path, _STATUS)
    if s is None:
        return None
    p = at(path, "status")
    code = s.get("code")
    if isinstance(code, str) and code in _STATUS_CODES:
        return _STATUS_CODES[code]
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        return code
    # Envoy replaces codes below 400 with 429; refusing them is clearer.
    issues.add(
        at(p, "code"),
        f"expected an error status (a StatusCode name like TooManyRequests, or 400..599), "
        f"got {code!r}",
    )
    return None


def _token_bucket(issues: Issues, doc: Doc, path: str) -> dict[str, Any] | None:
    tb = get_map(issues, doc, "token_bucket", path, _TOKEN_BUCKET)
    if tb is None:
        return None
    p = at(path, "token_bucket")
    max_tokens = get_int(issues, tb, "max_tokens", p, 1, _U32_MAX, required=True)
    per_fill = get_int(issues, tb, "tokens_per_fill", p, 1, _U32_MAX)
    interval = get_duration_ms(issues, tb, "fill_interval", p, positive=True)
    if "fill_interval" not in tb:
        issues.add(at(p, "fill_interval"), "required field is missing")
    if max_tokens is None or interval is None:
        return None
    out: dict[str, Any] = {"max_tokens": max_tokens, "fill_interval_ms": interval}
    if per_fill is not None:
        out["tokens_per_fill"] = per_fill
    return out


def _local_rate_limit(issues: Issues, f: Doc, path: str) -> dict[str, Any]:
    """A `LocalRateLimit` (already checked for its `@type`) -> native `LocalRateLimitConfig`."""
    out: dict[str, Any] = {
        "stat_prefix": get_str(issues, f, "stat_prefix", path, required=True, non_empty=True)
    }
    bucket = _token_bucket(issues, f, path)
    if bucket is not None:
        out["token_bucket"] = bucket
    for envoy_key, key in (("filter_enabled", "enabled"), ("filter_enforced", "enforced")):
        share = get_runtime_fraction(issues, f, envoy_key, path)
        if share is not None:
            out[key] = share
    status = _status(issues, f, path)
    if status is not None:
        out["status"] = status
    if "response_headers_to_add" in f:
        out["response_headers_to_add"] = headers_to_add(issues, f, "response_headers_to_add", path)
    if get_enum(issues, f, "enable_x_ratelimit_headers", path, _X_RATELIMIT, ""):
        out["x_ratelimit_headers"] = True
    return out


def cors_policy(issues: Issues, c: Doc, path: str) -> dict[str, Any]:
    """A checked `CorsPolicy` (the filter's per-route message, or the deprecated inline
    one) -> native `CorsPolicy`."""
    out: dict[str, Any] = {}
    if "allow_origin_string_match" in c:
        base = at(path, "allow_origin_string_match")
        out["allow_origin"] = [
            string_matcher(issues, m, item(base, i))
            for i, m in enumerate(get_list(issues, c, "allow_origin_string_match", path))
        ]
    for key in ("allow_methods", "allow_headers", "expose_headers", "max_age"):
        text = get_str(issues, c, key, path)
        if text is not None:
            out[key] = text
    for key in ("allow_credentials", "allow_private_network_access"):
        if get_bool(issues, c, key, path):
            out[key] = True
    if get_bool(issues, c, "forward_not_matching_preflights", path) is False:
        out["forward_not_matching_preflights"] = False
    enabled = get_runtime_fraction(issues, c, "filter_enabled", path)
    if enabled is not None:
        out["enabled"] = enabled
    return out


def _typed(
    issues: Issues, raw: object, path: str, type_name: str, allowed: frozenset[str]
) -> Doc | None:
    """An `Any` value (a map value, not a field) whose `@type` must be `type_name`."""
    cfg = obj(issues, raw, path, allowed)
    if cfg is None:
        return None
    want = TYPE_PREFIX + type_name
    url = cfg.get("@type")
    if url != want:
        got = "missing" if url is None else repr(url)
        issues.add(at(path, "@type"), f'expected "{want}", got {got}')
        return None
    return cfg


def _per_route_config(issues: Issues, kind: str, raw: object, path: str) -> dict[str, Any] | None:
    """A `typed_per_filter_config` value for a filter of `kind` -> its native config."""
    if kind == "fault":
        f = _typed(issues, raw, path, FAULT_TYPE, _FAULT)
        return None if f is None else _fault(issues, f, path)
    if kind == "local_rate_limit":
        f = _typed(issues, raw, path, LOCAL_RATE_LIMIT_TYPE, _LOCAL_RATE_LIMIT)
        return None if f is None else _local_rate_limit(issues, f, path)
    if kind == "rbac":
        f = _typed(issues, raw, path, RBAC_PER_ROUTE_TYPE, PER_ROUTE_FIELDS)
        return None if f is None else per_route_rbac(issues, f, path)
    c = _typed(issues, raw, path, CORS_POLICY_TYPE, _CORS_POLICY | {"@type"})
    return None if c is None else cors_policy(issues, c, path)


def filter_overrides(
    issues: Issues, doc: Doc, path: str, kinds: FilterKinds, inline_cors: tuple[object, str] | None
) -> dict[str, Any]:
    """A route's or virtual host's `typed_per_filter_config`, and its deprecated inline
    `cors` policy (value, path), -> native `FilterOverrides` ({} when there are none).

    A config for a filter the listener's chain does not have is an error: in Envoy it
    would do nothing.
    """
    out: dict[str, Any] = {}
    tp = at(path, "typed_per_filter_config")
    per = get_map(issues, doc, "typed_per_filter_config", path, frozenset(kinds))
    for name, raw in (per or {}).items():
        kind = kinds.get(name)
        if kind is None:
            continue  # `get_map` reported the name as unknown
        if kind == "rbac" and list(kinds.values()).count("rbac") > 1:
            issues.add(
                at(tp, name),
                f"a per-route RBAC config with several RBAC filters is {NOT_SUPPORTED} "
                "(fastmesh's per-route override would replace the rules of each)",
            )
            continue
        config = _per_route_config(issues, kind, raw, at(tp, name))
        if config is not None:
            out[kind] = config
    if inline_cors is not None:
        raw, cpath = inline_cors
        if "cors" not in kinds.values():
            issues.add(
                cpath,
                f"a CORS policy needs the {CORS_NAME} filter in http_filters "
                "(without it the policy does nothing)",
            )
        elif "cors" in out:
            issues.add(
                cpath, f"set either this or typed_per_filter_config for {CORS_NAME}, not both"
            )
        else:
            policy = obj(issues, raw, cpath, _CORS_POLICY)
            if policy is not None:
                out["cors"] = cors_policy(issues, policy, cpath)
    return out


def _chain_entry(issues: Issues, f: Doc, path: str, name: str | None) -> tuple[str, Doc] | None:
    """One `http_filters` entry -> (kind, its checked `typed_config`).

    Envoy picks a filter's implementation by the `@type` of its `typed_config`.
    """
    tp = at(path, "typed_config")
    raw = f.get("typed_config")
    if raw is None:
        issues.add(tp, "required field is missing")
        return None
    url = raw.get("@type") if isinstance(raw, Mapping) else None
    kind = _KINDS.get(url) if isinstance(url, str) else None
    if kind is None:
        if not isinstance(raw, Mapping):
            obj(issues, raw, tp, frozenset())
        elif name in _WELL_KNOWN:
            got = "missing" if url is None else repr(url)
            issues.add(at(tp, "@type"), f'expected "{TYPE_PREFIX}{_WELL_KNOWN[name]}", got {got}')
        else:
            issues.add(
                at(tp, "@type"),
                f"HTTP filter {name!r} of type {url!r} is {NOT_SUPPORTED}; supported: "
                + ", ".join(_WELL_KNOWN),
            )
        return None
    cfg = obj(issues, raw, tp, _CHAIN_FIELDS[kind])
    return None if cfg is None else (kind, cfg)


def http_filters(
    issues: Issues, filters: list[object], path: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """`http_filters` -> (native `http_filters`, filter name -> kind of each non-router filter).

    The router must come last (an empty list means the router alone, as in Envoy); at
    most one filter of each kind, as native per-route overrides have one slot per kind.
    RBAC filters may repeat (a DENY filter, then an ALLOW filter, as Istio's authorization
    compiles); a per-route RBAC override then cannot say which one it replaces and is
    refused (`filter_overrides`).
    """
    chain: list[dict[str, Any]] = []
    kinds: dict[str, str] = {}
    first_of_kind: dict[str, str] = {}
    for i, raw in enumerate(filters):
        p = item(path, i)
        f = obj(issues, raw, p, _HTTP_FILTER)
        if f is None:
            continue
        name = get_str(issues, f, "name", p, required=True, non_empty=True)
        entry = _chain_entry(issues, f, p, name)
        last = i == len(filters) - 1
        if entry is None:
            continue
        kind, cfg = entry
        if kind == "router":
            if not last:
                issues.add(p, f"{ROUTER_NAME} must be the last HTTP filter")
            continue
        if last:
            issues.add(p, f"the last HTTP filter must be the router ({ROUTER_NAME})")
        first = first_of_kind.setdefault(kind, p)
        if first != p and kind != "rbac":
            issues.add(p, f"a second filter of the same type as {first} is {NOT_SUPPORTED}")
        if name is None:
            continue
        if name in kinds:  # Envoy would run only one of them
            issues.add(at(p, "name"), f"duplicate HTTP filter name {name!r}")
        kinds[name] = kind
        tp = at(p, "typed_config")
        if kind == "fault":
            chain.append({"type": "fault", **_fault(issues, cfg, tp)})
        elif kind == "local_rate_limit":
            chain.append({"type": "local_rate_limit", **_local_rate_limit(issues, cfg, tp)})
        elif kind == "rbac":
            rbac = http_rbac(issues, cfg, tp)
            if rbac is not None:
                chain.append({"type": "rbac", **rbac})
        else:
            chain.append({"type": "cors"})
    return chain, kinds
