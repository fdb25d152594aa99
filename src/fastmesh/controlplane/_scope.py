"""A proxy's Sidecar and what it imports (Istio's `SidecarScope`): the services whose
clusters, endpoints, virtual hosts and outbound listeners it is sent.

Proxies whose effective Sidecar is the same share one scope (and so one snapshot); no
Sidecar at all is no scope (None): every service, as before any Sidecar existed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ._index import MeshIndex
from ._model import Protocol, ServicePort, VirtualService
from ._model_security import ROOT_NAMESPACE
from ._model_sidecar import ANY_NAMESPACE, EgressHost, EgressListener, Sidecar
from ._proxy import ProxyInfo
from ._resources import CLUSTER, ENDPOINT, Resource, Snapshot

__all__ = [
    "Scope",
    "ScopeKey",
    "listener_protocol",
    "proxy_sidecar",
    "scope_filter",
    "scope_for",
    "scoped_clusters",
]

#: (Sidecar namespace, Sidecar name, the namespace `.` stands for or "" when unused).
ScopeKey = tuple[str, str, str]

#: A Sidecar without egress imports everything, as a proxy without one (Istio's default).
_EVERYTHING = (EgressListener((EgressHost(ANY_NAMESPACE, "*"),)),)


@dataclass(frozen=True, slots=True)
class Scope:
    key: ScopeKey
    #: Per egress listener, in order (the catch-all, port 0, last): its port and the
    #: hostnames it imports (on a port-specific listener, those with that port).
    listeners: tuple[tuple[int, frozenset[str]], ...]
    #: Hostname -> the ports whose clusters are sent (None: every port).
    clusters: Mapping[str, frozenset[int] | None]
    #: Every hostname some listener imports, sorted (what outbound translation looks at).
    hostnames: tuple[str, ...] = ()
    #: Port -> the protocol its egress listener names (`port.protocol`).
    protocols: Mapping[int, Protocol] = field(default_factory=dict)

    def visible(self, port: int, hostname: str) -> bool:
        """Whether `hostname` gets a virtual host (or TCP listener) on outbound `port`: the
        listener for that port decides, else the catch-all (Istio's
        `GetEgressListenerForRDS`)."""
        for number, hosts in self.listeners:
            if number in (0, port):
                return hostname in hosts
        return False

    def has_cluster(self, name: str) -> bool:
        """Whether cluster (or assignment) `outbound|port|subset|host` is sent."""
        _, port, _, hostname = name.split("|", 3)
        if hostname not in self.clusters:
            return False
        ports = self.clusters[hostname]
        return ports is None or int(port) in ports


def listener_protocol(scope: Scope | None, port: ServicePort) -> Protocol:
    """The protocol of the outbound listener on a service port: the one the egress listener
    of that port names (Istio's), else the port's own."""
    return port.protocol if scope is None else scope.protocols.get(port.number, port.protocol)


def proxy_sidecar(index: MeshIndex, proxy: ProxyInfo) -> Sidecar | None:
    """Istio's precedence: a Sidecar of the proxy's namespace whose `workloadSelector`
    matches its labels, else its namespace's Sidecar without selector, else the root
    namespace's without selector; among several, the first by name."""
    if not index.sidecars:
        return None
    own = index.sidecars.get(proxy.namespace, ())
    if any(s.selector for s in own):
        labels = index.proxy_labels(proxy)
        for sidecar in own:
            if sidecar.selector and all(labels.get(k) == v for k, v in sidecar.selector.items()):
                return sidecar
    for candidates in (own, index.sidecars.get(ROOT_NAMESPACE, ())):
        for sidecar in candidates:
            if sidecar.selector is None:
                return sidecar
    return None


def scope_for(index: MeshIndex, proxy: ProxyInfo) -> Scope | None:
    """The proxy's scope (built once per config and Sidecar), None without a Sidecar."""
    sidecar = proxy_sidecar(index, proxy)
    if sidecar is None:
        return None
    own = proxy.namespace if sidecar.uses_own_namespace else ""
    key = (sidecar.namespace, sidecar.name, own)
    scope = index.scopes.get(key)
    if scope is None:
        scope = index.scopes[key] = _build(index, sidecar, key)
    assert isinstance(scope, Scope)
    return scope


def _build(index: MeshIndex, sidecar: Sidecar, key: ScopeKey) -> Scope:
    """Each listener's services; clusters for them (a port-specific listener's: that port
    only) and for every destination of their VirtualServices (Istio's inference, so the
    routes they get never point at a cluster they lack)."""
    own = key[2]
    listeners: list[tuple[int, frozenset[str]]] = []
    clusters: dict[str, set[int] | None] = {}
    for egress in sidecar.egress or _EVERYTHING:
        hosts = frozenset(
            hostname
            for hostname, svc in index.services.items()
            if (not egress.port or svc.port(egress.port) is not None)
            and any(h.matches(svc.namespace, hostname, own) for h in egress.hosts)
        )
        listeners.append((egress.port, hosts))
        for hostname in hosts:
            _add(clusters, hostname, egress.port)
            for dest in _destinations(index.routes.get(hostname)):
                if dest in index.services:
                    _add(clusters, dest, 0)
    frozen = {h: None if p is None else frozenset(p) for h, p in clusters.items()}
    hostnames = tuple(sorted(set().union(*(hosts for _, hosts in listeners))))
    protocols = {e.port: e.protocol for e in sidecar.egress if e.port and e.protocol}
    return Scope(key, tuple(listeners), frozen, hostnames, protocols)


def _add(clusters: dict[str, set[int] | None], hostname: str, port: int) -> None:
    """`port` 0: every port of the service."""
    ports = clusters.get(hostname, set())
    if ports is None or not port:
        clusters[hostname] = None
    else:
        clusters[hostname] = ports | {port}


def _destinations(vs: VirtualService | None) -> Iterator[str]:
    """The hostnames a VirtualService routes or mirrors to."""
    if vs is None:
        return
    for http in vs.http:
        yield from (vs.resolve(rd.destination.host) for rd in http.route)
        yield from (vs.resolve(m.destination.host) for m in http.mirrors)
    for tcp in vs.tcp:
        yield from (vs.resolve(rd.destination.host) for rd in tcp.route)
    for tls in vs.tls:
        yield from (vs.resolve(rd.destination.host) for rd in tls.route)


def scoped_clusters(shared: Snapshot, scope: Scope) -> Snapshot:
    """The clusters and assignments of `shared` (every proxy's) that `scope` imports."""
    return Snapshot.of(scope_filter(shared.resources, scope))


def scope_filter(
    resources: Mapping[str, Mapping[str, Resource]], scope: Scope
) -> dict[str, dict[str, Resource]]:
    """The clusters and assignments among `resources` that `scope` imports."""
    return {
        t: {n: r for n, r in resources.get(t, {}).items() if scope.has_cluster(n)}
        for t in (CLUSTER, ENDPOINT)
    }
