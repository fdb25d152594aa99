"""Per-route HTTP actions -> Envoy: rewrite, redirect, header operations, fault injection,
mirroring, CORS."""

from __future__ import annotations

from typing import Any

from ._model import CorsPolicy, Fault, HeaderOps, Redirect, Rewrite, StringMatch
from ._resources import CORS_POLICY, FAULT

__all__ = [
    "CORS_FILTER_NAME",
    "FAULT_FILTER_NAME",
    "cors_config",
    "fault_config",
    "header_fields",
    "mirror_policy",
    "redirect_action",
    "rewrite_fields",
    "string_matcher",
]

Json = dict[str, Any]

FAULT_FILTER_NAME = "envoy.filters.http.fault"
CORS_FILTER_NAME = "envoy.filters.http.cors"

_REDIRECT_CODES = {
    301: "MOVED_PERMANENTLY",
    302: "FOUND",
    303: "SEE_OTHER",
    307: "TEMPORARY_REDIRECT",
    308: "PERMANENT_REDIRECT",
}


def rewrite_fields(rewrite: Rewrite | None) -> Json:
    """Fields of the RouteAction: the matched prefix and/or the authority replaced."""
    out: Json = {}
    if rewrite is not None and rewrite.uri:
        out["prefix_rewrite"] = rewrite.uri
    if rewrite is not None and rewrite.authority:
        out["host_rewrite_literal"] = rewrite.authority
    return out


def redirect_action(redirect: Redirect) -> Json:
    out: Json = {"response_code": _REDIRECT_CODES[redirect.code]}
    if redirect.uri:
        out["path_redirect"] = redirect.uri
    if redirect.authority:
        out["host_redirect"] = redirect.authority
    return out


def _ops(ops: HeaderOps | None, direction: str) -> Json:
    if ops is None:
        return {}
    add = [
        {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for k, v in ops.set.items()
    ] + [
        {"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
        for k, v in ops.add.items()
    ]
    out: Json = {}
    if add:
        out[f"{direction}_headers_to_add"] = add
    if ops.remove:
        out[f"{direction}_headers_to_remove"] = list(ops.remove)
    return out


def header_fields(request: HeaderOps | None, response: HeaderOps | None) -> Json:
    """Fields of the Route: `request_headers_to_add/remove`, `response_headers_to_add/remove`."""
    return {**_ops(request, "request"), **_ops(response, "response")}


def _percentage(percent: float) -> Json:
    return {"numerator": round(percent * 10_000), "denominator": "MILLION"}


def fault_config(fault: Fault | None) -> Json:
    """The Route's `typed_per_filter_config` entry for the fault filter (empty without one)."""
    if fault is None:
        return {}
    config: Json = {"@type": FAULT}
    if fault.delay is not None:
        config["delay"] = {
            "fixed_delay": f"{fault.delay:.3f}s",
            "percentage": _percentage(fault.delay_percent),
        }
    if fault.abort_status is not None:
        config["abort"] = {
            "http_status": fault.abort_status,
            "percentage": _percentage(fault.abort_percent),
        }
    return {FAULT_FILTER_NAME: config}


def mirror_policy(cluster: str, percent: float) -> Json:
    """A `request_mirror_policies` entry, as Istio writes it (no trace sampling)."""
    return {
        "cluster": cluster,
        "runtime_fraction": {"default_value": _percentage(percent)},
        "trace_sampled": False,
    }


def string_matcher(sm: StringMatch) -> Json:
    """Istio `StringMatch` -> Envoy `StringMatcher`."""
    if sm.kind == "regex":
        return {"safe_regex": {"regex": sm.value}}
    return {sm.kind: sm.value}


def cors_config(cors: CorsPolicy | None) -> Json:
    """The Route's `typed_per_filter_config` entry for the CORS filter, as Istio's
    `TranslateCORSPolicy` builds it (empty without a policy)."""
    if cors is None:
        return {}
    config: Json = {
        "@type": CORS_POLICY,
        "forward_not_matching_preflights": cors.forward_unmatched_preflights,
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
    }
    if cors.allow_origins:
        config["allow_origin_string_match"] = [string_matcher(m) for m in cors.allow_origins]
    for key, values in (
        ("allow_methods", cors.allow_methods),
        ("allow_headers", cors.allow_headers),
        ("expose_headers", cors.expose_headers),
    ):
        if values:
            config[key] = ",".join(values)
    if cors.max_age is not None:
        config["max_age"] = str(cors.max_age)
    if cors.allow_credentials is not None:
        config["allow_credentials"] = cors.allow_credentials
    return {CORS_FILTER_NAME: config}
