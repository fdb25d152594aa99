"""Services, ServiceEntries and DestinationRules -> Envoy clusters (EDS over ADS, or DNS, or
original destination, by resolution; mTLS where it applies) and their endpoints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._index import MeshIndex, cluster_name
from ._model import (
    ConnectionPool,
    OutlierDetection,
    Protocol,
    Resolution,
    Service,
    ServicePort,
    TrafficPolicy,
    Workload,
)
from ._mtls import SIDECARLESS_LABEL, spiffe_id, upstream_tls, wants_mtls
from ._resources import HTTP_PROTOCOL_OPTIONS

__all__ = ["ADS_SOURCE", "translate_clusters"]

Json = dict[str, Any]

ADS_SOURCE: Json = {"ads": {}, "resource_api_version": "V3"}
#: Istio's default load balancer.
DEFAULT_LB = "LEAST_REQUEST"


def _seconds(value: float) -> str:
    return f"{value:.3f}s"


def _circuit_breakers(pool: ConnectionPool) -> Json | None:
    limits = {
        "max_connections": pool.max_connections,
        "max_pending_requests": pool.max_pending_requests,
        "max_requests": pool.max_requests,
        "max_retries": pool.max_retries,
    }
    thresholds = {k: v for k, v in limits.items() if v is not None}
    return {"thresholds": [thresholds]} if thresholds else None


def _outlier_detection(od: OutlierDetection) -> Json:
    out: Json = {"enforcing_success_rate": 0}  # as Istio: only consecutive errors eject
    if od.consecutive_5xx is not None:
        out["consecutive_5xx"] = od.consecutive_5xx
        out["enforcing_consecutive_5xx"] = 100 if od.consecutive_5xx else 0
    if od.consecutive_gateway_errors is not None:
        out["consecutive_gateway_failure"] = od.consecutive_gateway_errors
        out["enforcing_consecutive_gateway_failure"] = 100 if od.consecutive_gateway_errors else 0
    if od.interval is not None:
        out["interval"] = _seconds(od.interval)
    if od.base_ejection_time is not None:
        out["base_ejection_time"] = _seconds(od.base_ejection_time)
    if od.max_ejection_percent is not None:
        out["max_ejection_percent"] = od.max_ejection_percent
    if od.min_health_percent is not None:
        out["common_config"] = {"healthy_panic_threshold": {"value": od.min_health_percent}}
    return out


def _protocol_options(port: ServicePort, pool: ConnectionPool | None) -> Json | None:
    options: Json = {"@type": HTTP_PROTOCOL_OPTIONS}
    if port.protocol in (Protocol.HTTP2, Protocol.GRPC):
        options["explicit_http_config"] = {"http2_protocol_options": {}}
    common: Json = {}
    if pool is not None and pool.max_requests_per_connection is not None:
        common["max_requests_per_connection"] = pool.max_requests_per_connection
    if pool is not None and pool.idle_timeout is not None:
        common["idle_timeout"] = _seconds(pool.idle_timeout)
    if common:
        options["common_http_protocol_options"] = common
    if len(options) == 1:
        return None
    options.setdefault("explicit_http_config", {"http_protocol_options": {}})
    return options


def _discovery(name: str, resolution: Resolution, endpoints: list[tuple[Workload, int]]) -> Json:
    """Where the cluster's hosts come from, as Istio's cluster builder decides by resolution."""
    if resolution is Resolution.STATIC:
        eds = {"eds_config": ADS_SOURCE, "service_name": name}
        return {"type": "EDS", "eds_cluster_config": eds}
    if resolution is Resolution.NONE:
        return {"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"}
    # LOGICAL_DNS takes exactly one endpoint (Envoy and fastmesh refuse the cluster, and so
    # the whole CDS update, otherwise): a subset selecting none is an empty STRICT_DNS one.
    kind = "LOGICAL_DNS" if resolution is Resolution.DNS_ROUND_ROBIN and endpoints else "STRICT_DNS"
    return {
        "type": kind,
        "dns_lookup_family": "V4_ONLY",
        "load_assignment": _load_assignment(name, endpoints),
    }


def _cluster(
    name: str,
    port: ServicePort,
    policy: TrafficPolicy | None,
    resolution: Resolution,
    endpoints: list[tuple[Workload, int]],
) -> Json:
    lb = policy.load_balancer if policy else None
    pool = policy.connection_pool if policy else None
    outlier = policy.outlier_detection if policy else None
    cluster: Json = {
        "name": name,
        "connect_timeout": _seconds(pool.connect_timeout)
        if pool is not None and pool.connect_timeout is not None
        else "10s",
        "lb_policy": "RING_HASH" if lb and lb.consistent_hash else (lb and lb.simple) or DEFAULT_LB,
        **_discovery(name, resolution, endpoints),
    }
    if port.protocol.is_http:
        options = _protocol_options(port, pool)
        if options is not None:
            cluster["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
            }
    breakers = _circuit_breakers(pool) if pool is not None else None
    if breakers is not None:
        cluster["circuit_breakers"] = breakers
    if outlier is not None:
        cluster["outlier_detection"] = _outlier_detection(outlier)
    return cluster


def _endpoints(
    index: MeshIndex, svc: Service, port: ServicePort, labels: dict[str, str]
) -> list[tuple[Workload, int]]:
    """The (workload, port) endpoints of a service port, narrowed by subset `labels`."""
    return [(w, w.ports.get(port.name, port.target_port)) for w in index.workloads(svc, labels)]


def _lb_endpoint(w: Workload, port: int) -> Json:
    address = {"socket_address": {"address": w.address, "port_value": port}}
    out: Json = {"endpoint": {"address": address}}
    if w.weight:
        out["load_balancing_weight"] = w.weight
    return out


def _load_assignment(name: str, endpoints: list[tuple[Workload, int]]) -> Json:
    lb_endpoints = [_lb_endpoint(w, n) for w, n in endpoints]
    return {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints}]}


def _may_auto_mtls(svc: Service, endpoints: list[tuple[Workload, int]]) -> bool:
    """Istio never auto-mTLSes to MESH_EXTERNAL; a ServiceEntry's own endpoints have a
    sidecar only when labelled `security.istio.io/tlsMode: istio` (workloads a Service or a
    workloadSelector selects have one unless labelled `disabled`)."""
    if svc.external:
        return False
    if svc.entry is not None and svc.entry.selector is None:
        key, _ = SIDECARLESS_LABEL
        return bool(endpoints) and all(w.labels.get(key) == "istio" for w, _ in endpoints)
    return True


def _mtls_socket(
    index: MeshIndex,
    trust_domain: str | None,
    name: str,
    svc: Service,
    port: ServicePort,
    policy: TrafficPolicy | None,
    endpoints: list[tuple[Workload, int]],
) -> Json | None:
    """ISTIO_MUTUAL to the endpoints when the DestinationRule asks for it, or by auto mTLS;
    never without a CA (`trust_domain` None)."""
    tls_mode = policy.tls_mode if policy else None
    if tls_mode is None and not _may_auto_mtls(svc, endpoints):
        return None
    if trust_domain is None or not wants_mtls(
        tls_mode, index.config.peer_authentications, endpoints
    ):
        return None
    _, number, subset, host = name.split("|")
    peers = sorted({spiffe_id(trust_domain, w.namespace, w.service_account) for w, _ in endpoints})
    alpn = ["h2"] if port.protocol in (Protocol.HTTP2, Protocol.GRPC) else []
    if port.protocol is Protocol.HTTP:
        alpn = ["http/1.1"]
    return upstream_tls(f"outbound_.{number}_.{subset}_.{host}", alpn, peers)


def translate_clusters(
    index: MeshIndex, trust_domain: str | None = None, hostnames: Iterable[str] | None = None
) -> tuple[list[Json], list[Json]]:
    """(clusters, load assignments): one `outbound|P||host` per service port, plus one
    `outbound|P|subset|host` per DestinationRule subset; with a `trust_domain` (the mesh
    CA's), mTLS to the destinations that take it. Only EDS clusters have a load assignment
    of their own (DNS clusters carry theirs inline, ORIGINAL_DST ones have none).
    `hostnames`: only those services'."""
    clusters: list[Json] = []
    assignments: list[Json] = []
    if hostnames is None:
        services = sorted(index.services.items())
    else:
        services = [(h, index.services[h]) for h in sorted(set(hostnames))]
    for hostname, svc in services:
        rule = index.rules.get(hostname)
        subsets: list[tuple[str, dict[str, str]]] = [("", {})]
        subsets += [(s.name, dict(s.labels)) for s in (rule.subsets if rule else ())]
        for port in svc.ports:
            for subset, labels in subsets:
                name = cluster_name(port.number, subset, hostname)
                policy = index.policy(hostname, subset, port.number)
                endpoints = _endpoints(index, svc, port, labels)
                cluster = _cluster(name, port, policy, svc.resolution, endpoints)
                socket = _mtls_socket(index, trust_domain, name, svc, port, policy, endpoints)
                if socket is not None:
                    cluster["transport_socket"] = socket
                clusters.append(cluster)
                if svc.resolution is Resolution.STATIC:
                    assignments.append(_load_assignment(name, endpoints))
    return clusters, assignments
