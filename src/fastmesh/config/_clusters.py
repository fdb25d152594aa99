"""Envoy `Cluster` (static or DNS endpoints, load balancing, resilience, TLS) -> native cluster."""

from __future__ import annotations

from typing import Any, Final

from . import _speedups
from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    TYPE_PREFIX,
    Doc,
    at,
    get_duration_ms,
    get_enum,
    get_int,
    get_map,
    get_percent,
    get_str,
    obj,
)
from ._http2 import connection_keepalive
from ._resilience import circuit_breakers, health_checks, outlier_detection
from ._sources import Sources
from ._tls import upstream_tls
from ._xds import XdsLookup, eds_assignment

__all__ = ["translate_cluster"]

CLUSTER_TYPE: Final = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HTTP_OPTIONS_KEY: Final = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

_CLUSTER: Final = frozenset(
    {
        "@type",
        "name",
        "type",
        "connect_timeout",
        "lb_policy",
        "load_assignment",
        "eds_cluster_config",
        "dns_refresh_rate",
        "dns_lookup_family",
        "typed_extension_protocol_options",
        "http2_protocol_options",
        "ring_hash_lb_config",
        "maglev_lb_config",
        "common_lb_config",
        "circuit_breakers",
        "outlier_detection",
        "health_checks",
        "transport_socket",
    }
)
_LOAD_ASSIGNMENT: Final = frozenset({"cluster_name", "endpoints"})
_HTTP_OPTIONS: Final = frozenset({"@type", "explicit_http_config", "common_http_protocol_options"})
_EXPLICIT: Final = frozenset({"http_protocol_options", "http2_protocol_options"})
_COMMON: Final = frozenset({"idle_timeout"})
_H2_OPTIONS: Final = frozenset({"connection_keepalive"})

_TYPES: Final = {
    "STATIC": "static",
    "STRICT_DNS": "strict_dns",
    "LOGICAL_DNS": "logical_dns",
    "EDS": "eds",  # endpoints from a ClusterLoadAssignment; static to the engine
}
_LB_REJECTED: Final = dict.fromkeys(
    ("CLUSTER_PROVIDED", "LOAD_BALANCING_POLICY_CONFIG"), NOT_SUPPORTED
)
_LB: Final = {
    "ROUND_ROBIN": "round_robin",
    "LEAST_REQUEST": "least_request",
    "RANDOM": "random",
    "RING_HASH": "ring_hash",
    "MAGLEV": "maglev",
}
_RING_HASH: Final = frozenset({"minimum_ring_size", "maximum_ring_size", "hash_function"})
_MAGLEV: Final = frozenset({"table_size"})
_COMMON_LB: Final = frozenset({"healthy_panic_threshold"})
# Envoy's ring size bound (both sizes) and Maglev's largest table size.
_MAX_RING: Final = 8 * 1024 * 1024
_MAX_MAGLEV: Final = 5_000_011
# Accepted lookup families: fastmesh resolves A records (IPv4); see docs/envoy-subset.md.
_FAMILIES: Final = {"V4_ONLY": "v4", "AUTO": "v4", "V4_PREFERRED": "v4"}
_U32_MAX: Final = 2**32 - 1


def _protocol(issues: Issues, raw: object, path: str, kind: str, out: dict[str, Any]) -> None:
    """One of `http_protocol_options` / `http2_protocol_options` -> `http2` (and its keepalive)."""
    h2 = kind == "http2_protocol_options"
    opts = obj(issues, raw, path, _H2_OPTIONS if h2 else frozenset())
    out["http2"] = h2
    if h2 and opts is not None:
        keepalive = connection_keepalive(issues, opts, path)
        if keepalive is not None:
            out["http2_keepalive"] = keepalive


def _http_options(issues: Issues, raw: object, path: str, out: dict[str, Any]) -> None:
    """`typed_extension_protocol_options` -> `http2` and `idle_timeout_ms` of `out`."""
    teo = obj(issues, raw, path, frozenset({HTTP_OPTIONS_KEY}))
    if teo is None or HTTP_OPTIONS_KEY not in teo:
        return
    p = at(path, HTTP_OPTIONS_KEY)
    opts = obj(issues, teo[HTTP_OPTIONS_KEY], p, _HTTP_OPTIONS)
    if opts is None:
        return
    want = TYPE_PREFIX + HTTP_OPTIONS_KEY
    if opts.get("@type") != want:
        got = opts.get("@type")
        issues.add(
            at(p, "@type"), f'expected "{want}", got {"missing" if got is None else repr(got)}'
        )
    explicit = get_map(issues, opts, "explicit_http_config", p, _EXPLICIT)
    if explicit is None:
        if "explicit_http_config" not in opts:
            issues.add(
                at(p, "explicit_http_config"),
                "required field is missing (auto_config and use_downstream_protocol_config "
                f"are {NOT_SUPPORTED})",
            )
    else:
        ep = at(p, "explicit_http_config")
        kinds = [k for k in ("http_protocol_options", "http2_protocol_options") if k in explicit]
        if len(kinds) != 1:
            issues.add(ep, "expected exactly one of http_protocol_options, http2_protocol_options")
        else:
            _protocol(issues, explicit[kinds[0]], at(ep, kinds[0]), kinds[0], out)
    common = get_map(issues, opts, "common_http_protocol_options", p, _COMMON)
    if common is not None:
        idle = get_duration_ms(
            issues, common, "idle_timeout", at(p, "common_http_protocol_options")
        )
        if idle is not None:
            out["idle_timeout_ms"] = idle  # 0 = disabled, as in Envoy


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def _lb_configs(issues: Issues, c: Doc, path: str, lb_policy: str, out: dict[str, Any]) -> None:
    """`ring_hash_lb_config`, `maglev_lb_config`, `common_lb_config` -> `out`."""
    rh = get_map(issues, c, "ring_hash_lb_config", path, _RING_HASH)
    if rh is not None:
        p = at(path, "ring_hash_lb_config")
        if lb_policy != "ring_hash":
            issues.add(p, "only applies with lb_policy: RING_HASH")
        get_enum(
            issues, rh, "hash_function", p, {"XX_HASH": "xx_hash"}, "xx_hash",
            rejected={"MURMUR_HASH_2": NOT_SUPPORTED},
        )  # fmt: skip
        low = get_int(issues, rh, "minimum_ring_size", p, 1, _MAX_RING)
        high = get_int(issues, rh, "maximum_ring_size", p, 1, _MAX_RING)
        ring: dict[str, int] = {}
        if low is not None:
            ring["min_ring_size"] = low
        if high is not None:
            ring["max_ring_size"] = high
        if ring.get("min_ring_size", 1024) > ring.get("max_ring_size", _MAX_RING):
            issues.add(at(p, "maximum_ring_size"), "expected at least minimum_ring_size")
        out["ring_hash"] = ring
    mg = get_map(issues, c, "maglev_lb_config", path, _MAGLEV)
    if mg is not None:
        p = at(path, "maglev_lb_config")
        if lb_policy != "maglev":
            issues.add(p, "only applies with lb_policy: MAGLEV")
        size = get_int(issues, mg, "table_size", p, 2, _MAX_MAGLEV)
        if size is not None and not _is_prime(size):
            issues.add(at(p, "table_size"), f"expected a prime number, got {size}")
        elif size is not None:
            out["maglev_table_size"] = size
    common = get_map(issues, c, "common_lb_config", path, _COMMON_LB)
    if common is not None:
        panic = get_percent(issues, common, "healthy_panic_threshold", at(path, "common_lb_config"))
        if panic is not None:
            out["healthy_panic_threshold"] = panic


def translate_cluster(
    issues: Issues, raw: object, path: str, sources: Sources, xds: XdsLookup | None = None
) -> dict[str, Any] | None:
    """An Envoy `Cluster` at `path` -> native `Cluster`; None if it has problems.

    `sources` reads the certificate files and secrets a TLS context names; `xds` holds
    the EDS resources a `type: EDS` cluster takes its endpoints from.
    """
    c = obj(issues, raw, path, _CLUSTER)
    if c is None:
        return None
    if "@type" in c and c["@type"] != CLUSTER_TYPE:
        issues.add(at(path, "@type"), f'expected "{CLUSTER_TYPE}", got {c["@type"]!r}')
    name = get_str(issues, c, "name", path, required=True, non_empty=True)
    rejected = {"ORIGINAL_DST": NOT_SUPPORTED}
    discovery = get_enum(issues, c, "type", path, _TYPES, "static", rejected=rejected)
    if "eds_cluster_config" in c and discovery != "eds":
        issues.add(at(path, "eds_cluster_config"), "only applies with type: EDS")
    out: dict[str, Any] = {
        "name": name,
        "discovery": discovery,
        "lb_policy": get_enum(
            issues, c, "lb_policy", path, _LB, "round_robin", rejected=_LB_REJECTED
        ),
    }
    get_enum(
        issues,
        c,
        "dns_lookup_family",
        path,
        _FAMILIES,
        "v4",
        rejected={
            "V6_ONLY": NOT_SUPPORTED,
            "ALL": NOT_SUPPORTED,
        },
    )
    ct = get_duration_ms(issues, c, "connect_timeout", path, positive=True)
    if ct is not None:
        out["connect_timeout_ms"] = ct
    refresh = get_duration_ms(issues, c, "dns_refresh_rate", path, positive=True)
    if refresh is not None:
        out["dns_refresh_ms"] = refresh
    endpoints: list[dict[str, Any]] = []
    if discovery == "eds":
        discovery = out["discovery"] = "static"
        found = eds_assignment(issues, c, path, name, xds)
        la, lap = found if found is not None else (None, "")
    else:
        la = get_map(issues, c, "load_assignment", path, _LOAD_ASSIGNMENT)
        lap = at(path, "load_assignment")
    if la is not None:
        get_str(issues, la, "cluster_name", lap)
        endpoints = _speedups.translate_endpoints(issues, la, lap, discovery)
    if discovery == "logical_dns" and len(endpoints) != 1 and la is not None:
        issues.add(
            at(path, "load_assignment"),
            f"a LOGICAL_DNS cluster needs exactly one endpoint, got {len(endpoints)}",
        )
    out["endpoints"] = endpoints
    _lb_configs(issues, c, path, out["lb_policy"], out)
    breakers = circuit_breakers(issues, c, path)
    if breakers is not None:
        out["circuit_breakers"] = breakers
    outliers = outlier_detection(issues, c, path)
    if outliers is not None:
        out["outlier_detection"] = outliers
    if "health_checks" in c:
        out["health_checks"] = health_checks(issues, c, path)
    if "typed_extension_protocol_options" in c:
        _http_options(
            issues,
            c["typed_extension_protocol_options"],
            at(path, "typed_extension_protocol_options"),
            out,
        )
    if "http2_protocol_options" in c:
        if "http2" in out:
            issues.add(
                at(path, "http2_protocol_options"),
                "set either the deprecated http2_protocol_options or "
                f"typed_extension_protocol_options.{HTTP_OPTIONS_KEY}, not both",
            )
        _protocol(
            issues,
            c["http2_protocol_options"],
            at(path, "http2_protocol_options"),
            "http2_protocol_options",
            out,
        )
    if "transport_socket" in c:
        awaited = sources.awaited
        tls = upstream_tls(
            issues,
            c["transport_socket"],
            at(path, "transport_socket"),
            sources,
            http2=out.get("http2", False),
        )
        if tls is not None:
            out["tls"] = tls
        elif sources.awaited > awaited:
            # Its SDS secret has not arrived: no hosts until it does (Envoy's warming
            # cluster), never a plaintext connection meant to be TLS.
            out["discovery"], out["endpoints"] = "static", []
    return None if name is None else out
