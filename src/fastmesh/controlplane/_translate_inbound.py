"""One proxy's inbound side: for each service port its workload serves, a listener on the
WorkloadEntry's address:port (what peers dial) in the mTLS mode PeerAuthentication gives it,
with the AuthorizationPolicy RBAC filters, forwarding to the application on 127.0.0.1.

Names follow Istio: cluster `inbound|9080||`; listener `inbound_<address>_<port>` (Istio
uses one `virtualInbound` listener behind iptables; without capture, each port binds)."""

from __future__ import annotations

from typing import Any

from ._model import MeshConfig, Protocol, Service, ServicePort, Workload
from ._model_security import MtlsMode
from ._mtls import downstream_tls, peer_mode
from ._proxy import ProxyInfo
from ._resources import HCM, HTTP_PROTOCOL_OPTIONS, ROUTER, TCP_PROXY
from ._translate_authz import authz_filters
from ._translate_tls import TLS_INSPECTOR_FILTER

__all__ = ["translate_inbound"]

Json = dict[str, Any]

_ROUTER: Json = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}


def _workload(config: MeshConfig, proxy: ProxyInfo) -> Workload | None:
    return next(
        (
            w
            for w in config.workloads
            if w.namespace == proxy.namespace and w.name == proxy.workload
        ),
        None,
    )


def _served_ports(config: MeshConfig, workload: Workload) -> dict[int, tuple[Service, ServicePort]]:
    """Workload port -> the (first, by hostname) service port it serves there: of the
    Services and the ServiceEntries whose workloadSelector selects it."""
    out: dict[int, tuple[Service, ServicePort]] = {}
    entries = (s for e in config.service_entries if e.selector for s in e.services())
    services = sorted(
        (
            s
            for s in (*config.services, *entries)
            if s.namespace == workload.namespace and s.selector
        ),
        key=lambda s: s.hostname,
    )
    for svc in services:
        if workload.matches(svc.selector):
            for port in svc.ports:
                out.setdefault(workload.ports.get(port.name, port.target_port), (svc, port))
    return out


def _cluster(name: str, port: ServicePort, app_port: int) -> Json:
    endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": app_port}}}
    cluster: Json = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
        },
    }
    if port.protocol in (Protocol.HTTP2, Protocol.GRPC):  # h2c to the app
        options = {
            "@type": HTTP_PROTOCOL_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": {}},
        }
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
        }
    return cluster


def _network_filters(
    config: MeshConfig, workload: Workload, port: ServicePort, number: int, cluster: str
) -> list[Json]:
    prefix = f"inbound_{number}"
    if not port.protocol.is_http:
        tcp = {"@type": TCP_PROXY, "stat_prefix": prefix, "cluster": cluster}
        rbac = authz_filters(
            config.authorization_policies, workload, http=False, stat_prefix=f"{prefix}."
        )
        return [*rbac, {"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]
    route = {"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "0s"}}
    hcm = {
        "@type": HCM,
        "stat_prefix": prefix,
        "route_config": {
            "name": f"inbound|{number}",
            "virtual_hosts": [{"name": f"inbound|{number}", "domains": ["*"], "routes": [route]}],
        },
        "http_filters": [
            *authz_filters(config.authorization_policies, workload, http=True, stat_prefix=""),
            _ROUTER,
        ],
        # the caller's verified SPIFFE ID for the app; a client's own header never passes
        "forward_client_cert_details": "SANITIZE_SET",
        "set_current_client_cert_details": {"uri": True},
    }
    return [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]


def _listener(
    workload: Workload,
    number: int,
    mode: MtlsMode,
    filters: list[Json],
    http: bool,
    exact_balance: bool,
) -> Json:
    listener: Json = {
        "name": f"inbound_{workload.address}_{number}",
        "address": {"socket_address": {"address": workload.address, "port_value": number}},
        "traffic_direction": "INBOUND",
    }
    if exact_balance:
        listener["connection_balance_config"] = {"exact_balance": {}}
    plain: Json = {"filters": filters}
    if mode is MtlsMode.DISABLE:
        listener["filter_chains"] = [plain]
        return listener
    tls = {
        "filters": filters,
        "transport_socket": downstream_tls(["h2", "http/1.1"] if http else []),
    }
    # As Istio's: the TLS chain is matched by the inspector in STRICT too, so a change
    # between STRICT and PERMISSIVE adds or removes only the plaintext chain. Envoy then
    # updates the filter chains alone and drains only the plaintext connections; a changed
    # listener filter would drain the listener's every connection, mTLS ones included.
    listener["listener_filters"] = [TLS_INSPECTOR_FILTER]
    tls["filter_chain_match"] = {"transport_protocol": "tls"}
    if mode is MtlsMode.STRICT:
        listener["filter_chains"] = [tls]
        return listener
    # PERMISSIVE: TLS or plaintext on one port, told apart by the first bytes
    plain["filter_chain_match"] = {"transport_protocol": "raw_buffer"}
    listener["filter_chains"] = [tls, plain]
    return listener


def translate_inbound(
    config: MeshConfig, proxy: ProxyInfo, *, mtls: bool
) -> tuple[list[Json], list[Json], list[str]]:
    """(listeners, clusters, warnings) of `proxy`'s workload; empty for an outbound-only
    proxy. Without `mtls` (no CA) every port is plaintext."""
    if not proxy.workload:
        return [], [], []
    workload = _workload(config, proxy)
    if workload is None:
        return (
            [],
            [],
            [
                f"proxy {proxy.id}: WORKLOAD_NAME {proxy.namespace}/{proxy.workload}: "
                "no such WorkloadEntry; no inbound listeners"
            ],
        )
    app_ports = dict(proxy.app_ports)
    listeners, clusters, warnings = [], [], []
    for number, (svc, port) in sorted(_served_ports(config, workload).items()):
        app_port = app_ports.get(port.name, port.target_port)
        if app_port == number and workload.address == "127.0.0.1":
            warnings.append(
                f"proxy {proxy.id}: port {port.name} ({svc.hostname}): the app's port {app_port} "
                f"is the inbound listener's; set {port.name} in FASTMESH_APP_PORTS"
            )
            continue
        name = f"inbound|{number}||"
        mode = peer_mode(config.peer_authentications, workload, number)
        if not mtls and mode is MtlsMode.STRICT:
            warnings.append(
                f"proxy {proxy.id}: port {number} is STRICT but the control plane has no CA "
                "(--ca-dir): served in plaintext"
            )
        if not mtls:
            mode = MtlsMode.DISABLE
        filters = _network_filters(config, workload, port, number, name)
        http = port.protocol.is_http
        balance = proxy.inbound_exact_balance
        listeners.append(_listener(workload, number, mode, filters, http, balance))
        clusters.append(_cluster(name, port, app_port))
    return listeners, clusters, warnings
