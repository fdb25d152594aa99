"""Envoy `Listener` (http_connection_manager or tcp_proxy, optionally behind network RBAC,
TLS or Istio's permissive TLS-or-plaintext chain pair, or TLS chains chosen by SNI)
-> native listener."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final, cast

from . import _speedups
from ._address import host_port, socket_address
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
    get_str,
    item,
    obj,
    one_of,
    typed_config,
)
from ._filters import http_filters
from ._http2 import connection_keepalive
from ._rbac import NETWORK_RBAC_FIELDS, NETWORK_RBAC_NAME, NETWORK_RBAC_TYPE, network_rbac
from ._routes import ClusterRefs
from ._sources import Sources
from ._tls import downstream_tls
from ._xds import XdsLookup, rds_route_config

__all__ = ["HCM_NAME", "TCP_PROXY_NAME", "translate_listener"]

HCM_NAME: Final = "envoy.filters.network.http_connection_manager"
HCM_TYPE: Final = (
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
TCP_PROXY_NAME: Final = "envoy.filters.network.tcp_proxy"
TCP_PROXY_TYPE: Final = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
LISTENER_TYPE: Final = "type.googleapis.com/envoy.config.listener.v3.Listener"

TLS_INSPECTOR_NAME: Final = "envoy.filters.listener.tls_inspector"
TLS_INSPECTOR_TYPE: Final = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"

_LISTENER: Final = frozenset(
    {
        "name",
        "address",
        "filter_chains",
        "listener_filters",
        "@type",
        "traffic_direction",
        "connection_balance_config",
    }
)
_BALANCERS: Final = ("exact_balance", "extend_balance")
# Informational in Envoy (stats and tracing); accepted and ignored.
_DIRECTIONS: Final = {"UNSPECIFIED": "", "INBOUND": "", "OUTBOUND": ""}
_LISTENER_FILTER: Final = frozenset({"name", "typed_config"})
_CHAIN: Final = frozenset({"filters", "name", "transport_socket", "filter_chain_match"})
_CHAIN_MATCH: Final = frozenset({"transport_protocol", "server_names"})
_TRANSPORT_PROTOCOLS: Final = ("tls", "raw_buffer")
_FILTER: Final = frozenset({"name", "typed_config"})
#: What every request reads from the current config (routes, HTTP filters): a change to
#: these alone reaches open connections, so it leaves them out of a chain's identity.
_PER_REQUEST_HCM: Final = frozenset({"route_config", "rds", "http_filters"})
_HCM: Final = frozenset(
    {
        "stat_prefix",
        "codec_type",
        "route_config",
        "rds",
        "http_filters",
        "server_name",
        "common_http_protocol_options",
        "max_request_headers_kb",
        "request_headers_timeout",
        "http2_protocol_options",
        "use_remote_address",
        "stream_idle_timeout",
        "forward_client_cert_details",
        "set_current_client_cert_details",
    }
)
_XFCC: Final = {
    "SANITIZE": "sanitize",
    "FORWARD_ONLY": "forward_only",
    "APPEND_FORWARD": "append_forward",
    "SANITIZE_SET": "sanitize_set",
    "ALWAYS_FORWARD_ONLY": "always_forward_only",
}
_XFCC_DETAILS: Final = ("subject", "cert", "chain", "dns", "uri")
_HCM_COMMON: Final = frozenset({"idle_timeout", "max_headers_count", "max_connection_duration"})
_HCM_H2: Final = frozenset({"max_concurrent_streams", "connection_keepalive"})
_TCP: Final = frozenset({"stat_prefix", "cluster", "weighted_clusters", "idle_timeout"})
_TCP_WEIGHTED: Final = frozenset({"clusters"})
_TCP_CLUSTER_WEIGHT: Final = frozenset({"name", "weight"})
_CODECS: Final = {"AUTO": "auto", "HTTP1": "http1", "HTTP2": "http2"}
_U32_MAX: Final = 2**32 - 1


def _hcm(
    issues: Issues, cfg: Doc, path: str, refs: ClusterRefs, xds: XdsLookup | None
) -> dict[str, Any] | None:
    stat_prefix = get_str(issues, cfg, "stat_prefix", path, required=True, non_empty=True)
    out: dict[str, Any] = {
        "type": "http",
        "stat_prefix": stat_prefix,
        "codec_type": get_enum(
            issues, cfg, "codec_type", path, _CODECS, "auto", rejected={"HTTP3": NOT_SUPPORTED}
        ),
    }
    server_name = get_str(issues, cfg, "server_name", path)
    if server_name is not None:
        out["server_name"] = server_name
    if get_bool(issues, cfg, "use_remote_address", path):
        out["use_remote_address"] = True
    kb = get_int(issues, cfg, "max_request_headers_kb", path, 1, 8192)
    if kb is not None:
        out["max_request_headers_kb"] = kb
    rht = get_duration_ms(issues, cfg, "request_headers_timeout", path)
    if rht:  # Envoy: 0 disables, the native default
        out["request_headers_timeout_ms"] = rht
    common = get_map(issues, cfg, "common_http_protocol_options", path, _HCM_COMMON)
    if common is not None:
        cp = at(path, "common_http_protocol_options")
        idle = get_duration_ms(issues, common, "idle_timeout", cp)
        if idle is not None:
            out["idle_timeout_ms"] = idle  # 0 = disabled, as in Envoy
        duration = get_duration_ms(issues, common, "max_connection_duration", cp)
        if duration:  # 0 = unlimited, as in Envoy
            out["max_connection_duration_ms"] = duration
        count = get_int(issues, common, "max_headers_count", cp, 1, _U32_MAX)
        if count is not None:
            out["max_request_headers_count"] = count
    h2 = get_map(issues, cfg, "http2_protocol_options", path, _HCM_H2)
    if h2 is not None:
        streams = get_int(
            issues, h2, "max_concurrent_streams", at(path, "http2_protocol_options"), 1, 2**31 - 1
        )
        if streams is not None:
            out["max_concurrent_streams"] = streams
        keepalive = connection_keepalive(issues, h2, at(path, "http2_protocol_options"))
        if keepalive is not None:
            out["connection_keepalive"] = keepalive
    stream_idle = get_duration_ms(issues, cfg, "stream_idle_timeout", path)
    if stream_idle is not None:
        out["stream_idle_timeout_ms"] = stream_idle  # 0 = disabled, as in Envoy
    _xfcc(issues, cfg, path, out)
    chain, filter_kinds = http_filters(
        issues, list(get_list(issues, cfg, "http_filters", path)), at(path, "http_filters")
    )
    if chain:
        out["http_filters"] = chain
    if "route_config" in cfg:
        if "rds" in cfg:
            issues.add(at(path, "rds"), "set either route_config or rds, not both")
        raw_rc, rc_path = cast(Doc, cfg["route_config"]), at(path, "route_config")
    elif "rds" in cfg:
        found = rds_route_config(issues, cfg, path, xds, stat_prefix or "")
        if found is None:
            return None
        raw_rc, rc_path = found
    else:
        issues.add(at(path, "route_config"), "required field is missing (route_config or rds)")
        return None
    rc = _speedups.translate_route_config(issues, raw_rc, rc_path, refs, filter_kinds)
    if rc is None or stat_prefix is None:
        return None
    rbac = next((f for f in chain if f["type"] == "rbac"), None)
    if rbac is not None:
        _route_rbac_stats(rc, rbac["stat_prefix"])
    out["route_config"] = rc
    return out


def _xfcc(issues: Issues, cfg: Doc, path: str, out: dict[str, Any]) -> None:
    """`forward_client_cert_details` and `set_current_client_cert_details` -> `out`."""
    mode = get_enum(issues, cfg, "forward_client_cert_details", path, _XFCC, "sanitize")
    if mode != "sanitize":
        out["forward_client_cert"] = mode
    details = get_map(
        issues, cfg, "set_current_client_cert_details", path, frozenset(_XFCC_DETAILS)
    )
    if details is not None:
        p = at(path, "set_current_client_cert_details")
        chosen = {k: True for k in _XFCC_DETAILS if get_bool(issues, details, k, p)}
        if chosen:
            out["client_cert_details"] = chosen


def _route_rbac_stats(rc: dict[str, Any], stat_prefix: str) -> None:
    """Per-route RBAC configs count under the filter's own prefix, as in Envoy."""
    for vh in rc["virtual_hosts"]:
        for level in (vh, *vh["routes"]):
            rbac = level.get("filter_overrides", {}).get("rbac")
            if rbac is not None:
                rbac["stat_prefix"] = stat_prefix


def _tcp_split(
    issues: Issues, cfg: Doc, path: str, refs: ClusterRefs
) -> list[dict[str, Any]] | None:
    """`weighted_clusters.clusters[]` -> native `weighted_clusters` (None when broken)."""
    wc = get_map(issues, cfg, "weighted_clusters", path, _TCP_WEIGHTED)
    if wc is None:
        return None
    wpath = at(path, "weighted_clusters")
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(get_list(issues, wc, "clusters", wpath, required=True)):
        p = item(at(wpath, "clusters"), i)
        c = obj(issues, raw, p, _TCP_CLUSTER_WEIGHT)
        if c is None:
            return None
        name = get_str(issues, c, "name", p, required=True, non_empty=True)
        weight = get_int(issues, c, "weight", p, lo=0, hi=2**32 - 1, required=True)
        if name is None or weight is None:
            return None
        refs.append((at(p, "name"), name))
        out.append({"name": name, "weight": weight})
    if not any(c["weight"] for c in out):
        issues.add(at(wpath, "clusters"), "needs a cluster with a weight above 0")
        return None
    return out


def _tcp(issues: Issues, cfg: Doc, path: str, refs: ClusterRefs) -> dict[str, Any] | None:
    stat_prefix = get_str(issues, cfg, "stat_prefix", path, required=True, non_empty=True)
    out: dict[str, Any] = {"type": "tcp", "stat_prefix": stat_prefix}
    if ("cluster" in cfg) == ("weighted_clusters" in cfg):
        issues.add(path, "set exactly one of cluster and weighted_clusters")
        return None
    if "cluster" in cfg:
        cluster = get_str(issues, cfg, "cluster", path, required=True, non_empty=True)
        if cluster is None:
            return None
        refs.append((at(path, "cluster"), cluster))
        out["cluster"] = cluster
    else:
        split = _tcp_split(issues, cfg, path, refs)
        if split is None:
            return None
        out["weighted_clusters"] = split
    idle = get_duration_ms(issues, cfg, "idle_timeout", path)
    if idle is not None:
        out["idle_timeout_ms"] = idle  # 0 = disabled, as in Envoy
    return None if stat_prefix is None else out


def _terminal_filter(
    issues: Issues, f: Doc, name: str | None, path: str, refs: ClusterRefs, xds: XdsLookup | None
) -> dict[str, Any] | None:
    """The chain's last filter: the connection manager or the TCP proxy."""
    if name == HCM_NAME:
        cfg = typed_config(issues, f, "typed_config", path, HCM_TYPE, _HCM)
        return None if cfg is None else _hcm(issues, cfg, at(path, "typed_config"), refs, xds)
    if name == TCP_PROXY_NAME:
        cfg = typed_config(issues, f, "typed_config", path, TCP_PROXY_TYPE, _TCP)
        return None if cfg is None else _tcp(issues, cfg, at(path, "typed_config"), refs)
    if name == NETWORK_RBAC_NAME:
        issues.add(path, f"{NETWORK_RBAC_NAME} must come before {HCM_NAME} or {TCP_PROXY_NAME}")
    elif name is not None:
        issues.add(
            at(path, "name"),
            f"network filter {name!r} is {NOT_SUPPORTED}; expected {HCM_NAME} or {TCP_PROXY_NAME}",
        )
    return None


def _network_filters(
    issues: Issues, chain: Doc, path: str, refs: ClusterRefs, xds: XdsLookup | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A chain's `filters`: any number of network RBAC filters (Istio puts a DENY one
    before an ALLOW one), then the terminal filter -> (native `filter`, native
    `network_rbac`: the RBAC filters in order)."""
    filters = get_list(issues, chain, "filters", path, required=True)
    fpath = at(path, "filters")
    if not filters:
        if isinstance(chain.get("filters"), list):
            issues.add(
                fpath, f"expected one network filter, optionally after {NETWORK_RBAC_NAME}, got 0"
            )
        return None, []
    docs = [obj(issues, raw, item(fpath, i), _FILTER) for i, raw in enumerate(filters)]
    names = [
        None if d is None else get_str(issues, d, "name", item(fpath, i), required=True)
        for i, d in enumerate(docs)
    ]
    rbac = []
    for i, (doc, name) in enumerate(zip(docs[:-1], names[:-1], strict=True)):
        p = item(fpath, i)
        if doc is None:
            continue
        if name == NETWORK_RBAC_NAME:
            cfg = typed_config(
                issues, doc, "typed_config", p, NETWORK_RBAC_TYPE, NETWORK_RBAC_FIELDS
            )
            native = None if cfg is None else network_rbac(issues, cfg, at(p, "typed_config"))
            if native is not None:
                rbac.append(native)
        elif name is not None:
            issues.add(
                at(p, "name"),
                f"only {NETWORK_RBAC_NAME} may come before the last network filter, got {name!r}",
            )
    last = docs[-1]
    p = item(fpath, len(docs) - 1)
    filter_ = None if last is None else _terminal_filter(issues, last, names[-1], p, refs, xds)
    return filter_, rbac


def _has_tls_inspector(issues: Issues, lst: Doc, path: str) -> bool:
    """`listener_filters`: only the TLS inspector, which the permissive chain pair needs."""
    found = False
    base = at(path, "listener_filters")
    for i, raw in enumerate(get_list(issues, lst, "listener_filters", path)):
        p = item(base, i)
        f = obj(issues, raw, p, _LISTENER_FILTER)
        if f is None:
            continue
        name = get_str(issues, f, "name", p, required=True)
        if name != TLS_INSPECTOR_NAME:
            if name is not None:
                issues.add(
                    at(p, "name"),
                    f"listener filter {name!r} is {NOT_SUPPORTED}; expected {TLS_INSPECTOR_NAME}",
                )
            continue
        if "typed_config" in f:
            typed_config(issues, f, "typed_config", p, TLS_INSPECTOR_TYPE, frozenset())
        found = True
    return found


def _transport_protocol(issues: Issues, chain: Doc, path: str) -> str | None:
    """`filter_chain_match.transport_protocol` ("tls", "raw_buffer"; None when unset)."""
    m = get_map(issues, chain, "filter_chain_match", path, _CHAIN_MATCH)
    if m is None:
        return None
    p = at(path, "filter_chain_match")
    proto = get_str(issues, m, "transport_protocol", p)
    if proto is not None and proto not in _TRANSPORT_PROTOCOLS:
        issues.add(
            at(p, "transport_protocol"),
            f"expected one of {', '.join(_TRANSPORT_PROTOCOLS)}, got {proto!r}",
        )
        return None
    return proto


def _server_names(issues: Issues, chain: Doc, path: str) -> list[str]:
    """`filter_chain_match.server_names`, lower-cased: exact names or `*.suffix` wildcards
    (Envoy rejects other wildcards, e.g. `*w.example.com`)."""
    m = chain.get("filter_chain_match")
    if not isinstance(m, dict):
        return []
    base = at(at(path, "filter_chain_match"), "server_names")
    out = []
    for i, name in enumerate(get_list(issues, m, "server_names", at(path, "filter_chain_match"))):
        if isinstance(name, str) and name not in ("", "*.") and "*" not in name.removeprefix("*."):
            out.append(name.lower())
        else:
            issues.add(item(base, i), f"expected a name or a *.suffix wildcard, got {name!r}")
    return out


def _has_server_names(chain: Doc | None) -> bool:
    m = chain.get("filter_chain_match") if chain is not None else None
    return isinstance(m, dict) and bool(m.get("server_names"))


def _permissive_pair(
    issues: Issues, chains: list[Doc | None], path: str, inspector: bool
) -> int | None:
    """Istio's PERMISSIVE: a TLS chain and a plaintext chain with the same filters -> the
    index of the TLS one, or None (with the reason) for any other pair."""
    if None in chains:
        return None
    protos = [_transport_protocol(issues, c, item(path, i)) for i, c in enumerate(chains)]  # type: ignore[arg-type]
    sockets = ["transport_socket" in c for c in chains]  # type: ignore[operator]
    if sorted(p or "" for p in protos) != ["raw_buffer", "tls"]:
        why = "one chain must match transport_protocol tls and the other raw_buffer"
    elif sockets != [p == "tls" for p in protos]:
        why = "the tls chain must have the transport_socket and the raw_buffer chain none"
    elif chains[0].get("filters") != chains[1].get("filters"):  # type: ignore[union-attr]
        why = "both chains must have identical filters"
    elif not inspector:
        why = f"listener_filters must include {TLS_INSPECTOR_NAME} to tell them apart"
    else:
        return protos.index("tls")
    issues.add(
        path,
        "two filter chains are supported only as Istio's permissive TLS-or-plaintext pair: " + why,
    )
    return None


def _filter_chain(
    issues: Issues, lst: Doc, path: str, refs: ClusterRefs, sources: Sources, xds: XdsLookup | None
) -> dict[str, Any] | None:
    """`filter_chains` (and `listener_filters`) -> the native listener's `filter`, `tls`,
    `network_rbac` and `server_name_chains` fields."""
    inspector = _has_tls_inspector(issues, lst, path)
    cpath = at(path, "filter_chains")
    raw_chains = get_list(issues, lst, "filter_chains", path, required=True)
    chains = [obj(issues, raw, item(cpath, i), _CHAIN) for i, raw in enumerate(raw_chains)]
    if any(_has_server_names(c) for c in chains):
        return _by_server_name(issues, chains, cpath, inspector, refs, sources, xds)
    if not 1 <= len(raw_chains) <= 2:
        if isinstance(lst.get("filter_chains"), list):
            issues.add(
                cpath,
                f"expected one filter chain (or Istio's permissive pair, or chains by "
                f"filter_chain_match.server_names), got {len(raw_chains)}",
            )
        return None
    if len(chains) == 2:
        index = _permissive_pair(issues, chains, cpath, inspector)
        if index is None:
            return None
    else:
        index = 0
        chain = chains[0]
        proto = None if chain is None else _transport_protocol(issues, chain, item(cpath, 0))
        if chain is not None and proto is not None:
            p = at(at(item(cpath, 0), "filter_chain_match"), "transport_protocol")
            if (proto == "tls") != ("transport_socket" in chain):
                issues.add(p, f"{proto} does not match the chain's transport_socket")
            elif not inspector:
                issues.add(p, f"needs {TLS_INSPECTOR_NAME} in listener_filters")
    chain = chains[index]
    if chain is None:
        return None
    out = _chain(issues, chain, item(cpath, index), refs, sources, xds)
    if out is None:
        return None
    out["chain_id"] = _chain_id(chain, [])
    if len(chains) == 2:
        out["tls"]["allow_plaintext"] = True
        plain = chains[1 - index]
        out["plaintext_chain_id"] = _chain_id(cast(Doc, plain), [])
    return out


def _chain_id(chain: Doc, server_names: list[str]) -> str:
    """The native `chain_id`: a digest of what binds a connection the chain accepts (its
    transport socket, server names and network filters, without the HCM's routes and
    HTTP filters, which each request reads anew). A live connection whose chain's id is
    missing from a new config is drained, as Envoy drains the connections of a filter
    chain that a listener update removes or changes. A secret named by SDS or a file
    stays the same id when its content rotates, as in Envoy; a permissive pair's
    plaintext chain has the id of a lone plaintext chain with the same filters."""
    filters = []
    raw = chain.get("filters")
    for f in raw if isinstance(raw, list) else []:
        config = f.get("typed_config") if isinstance(f, dict) else None
        if isinstance(config, dict) and f.get("name") == HCM_NAME:
            f = {
                **f,
                "typed_config": {k: v for k, v in config.items() if k not in _PER_REQUEST_HCM},
            }
        filters.append(f)
    identity = {
        "transport_socket": chain.get("transport_socket"),
        "server_names": sorted(server_names),
        "filters": filters,
    }
    canon = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def _chain(
    issues: Issues,
    chain: Doc,
    path: str,
    refs: ClusterRefs,
    sources: Sources,
    xds: XdsLookup | None,
) -> dict[str, Any] | None:
    """One filter chain -> native {filter, tls?, network_rbac?}."""
    out: dict[str, Any] = {}
    if "transport_socket" in chain:
        tls = downstream_tls(
            issues, chain["transport_socket"], at(path, "transport_socket"), sources
        )
        if tls is None:
            return None
        out["tls"] = tls
    filter_, rbac = _network_filters(issues, chain, path, refs, xds)
    if filter_ is None:
        return None
    if rbac:
        out["network_rbac"] = rbac
    out["filter"] = filter_
    return out


def _by_server_name(
    issues: Issues,
    chains: list[Doc | None],
    path: str,
    inspector: bool,
    refs: ClusterRefs,
    sources: Sources,
    xds: XdsLookup | None,
) -> dict[str, Any] | None:
    """Chains chosen by the ClientHello's SNI (`filter_chain_match.server_names`), and at
    most one without `server_names` for every other connection -> the native default
    chain (top-level fields) and `server_name_chains`. A chain without a transport_socket
    passes TLS through: a named one to its `tcp_proxy`; the default one gets plaintext
    and the unmatched names' TLS as they come, as in Envoy."""
    if not inspector:
        issues.add(path, f"server_names needs {TLS_INSPECTOR_NAME} in listener_filters")
    out: dict[str, Any] = {"server_name_chains": []}
    default_at = None
    ok = inspector
    for i, chain in enumerate(chains):
        p = item(path, i)
        if chain is None:
            ok = False
            continue
        proto = _transport_protocol(issues, chain, p)
        names = _server_names(issues, chain, p)
        terminates = "transport_socket" in chain
        if proto == "raw_buffer" or (proto == "tls" and not names and not terminates):
            issues.add(
                at(at(p, "filter_chain_match"), "transport_protocol"),
                f"{proto} on a chain without server_names beside server_names chains is "
                f"{NOT_SUPPORTED} (leave it out: that chain gets every other connection)",
            )
            ok = False
            continue
        if names and not terminates and _terminal_name(chain) != TCP_PROXY_NAME:
            issues.add(
                at(p, "filters"),
                f"a chain with server_names and no transport_socket passes TLS through: its "
                f"last filter must be {TCP_PROXY_NAME}",
            )
            ok = False
            continue
        if not names and default_at is not None:
            issues.add(p, f"a second chain without server_names (the first is {default_at})")
            ok = False
            continue
        body = _chain(issues, chain, p, refs, sources, xds)
        if body is None:
            ok = False
        elif not names:
            default_at = p
            out.update(body, chain_id=_chain_id(chain, []))
        else:
            out["server_name_chains"].append(
                {"server_names": names, **body, "chain_id": _chain_id(chain, names)}
            )
    seen: set[str] = set()
    for c in out["server_name_chains"]:
        for name in c["server_names"]:
            if name in seen:  # as Envoy: one chain per name
                issues.add(path, f"server name {name!r} is matched more than once")
                ok = False
            seen.add(name)
    return out if ok else None


def _terminal_name(chain: Doc) -> object:
    """The `name` of a chain's last network filter, as written (None when there is none)."""
    filters = chain.get("filters")
    last = filters[-1] if isinstance(filters, list) and filters else None
    return last.get("name") if isinstance(last, dict) else None


def _exact_balance(issues: Issues, lst: Doc, path: str) -> bool:
    """`connection_balance_config`: whether it asks for `exact_balance` (Envoy's other
    balancer, `extend_balance`, loads a C++ extension)."""
    cfg = get_map(issues, lst, "connection_balance_config", path, frozenset(_BALANCERS))
    if cfg is None:
        return False
    path = at(path, "connection_balance_config")
    kind = one_of(issues, cfg, path, _BALANCERS)
    if kind == "extend_balance":
        issues.add(at(path, kind), NOT_SUPPORTED)
    elif kind == "exact_balance":
        obj(issues, cfg[kind], at(path, kind), frozenset())
    return kind == "exact_balance"


def translate_listener(
    issues: Issues,
    raw: object,
    path: str,
    index: int,
    refs: ClusterRefs,
    sources: Sources,
    xds: XdsLookup | None = None,
) -> dict[str, Any] | None:
    """An Envoy `Listener` at `path` -> native `Listener`; None if it has problems.

    `sources` reads the files and secrets a TLS context names; `xds` holds the RDS
    resources an HCM with `rds` takes its routes from.
    """
    lst = obj(issues, raw, path, _LISTENER)
    if lst is None:
        return None
    if "@type" in lst and lst["@type"] != LISTENER_TYPE:
        issues.add(at(path, "@type"), f'expected "{LISTENER_TYPE}", got {lst["@type"]!r}')
    # Envoy names unnamed static listeners with a UUID; a stable name keeps the socket on reload.
    name = get_str(issues, lst, "name", path, non_empty=True)
    if name is None and "name" not in lst:
        name = f"listener_{index}"
    address = None
    if "address" not in lst:
        issues.add(at(path, "address"), "required field is missing")
    else:
        address = socket_address(
            issues, lst["address"], at(path, "address"), ip_only=True, port_min=0
        )
    get_enum(issues, lst, "traffic_direction", path, _DIRECTIONS, "")
    exact_balance = _exact_balance(issues, lst, path)
    chain = _filter_chain(issues, lst, path, refs, sources, xds)
    if name is None or address is None or chain is None:
        return None
    out = {"name": name, "address": host_port(*address), **chain}
    if exact_balance:
        out["exact_balance"] = True
    return out
