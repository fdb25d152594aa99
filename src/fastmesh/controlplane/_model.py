"""The mesh as the control plane sees it: services, workloads and Istio routing resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from ._model_security import AuthorizationPolicy, PeerAuthentication
from ._model_sidecar import Sidecar

__all__ = [
    "DOMAIN_SUFFIX",
    "MESH_GATEWAY",
    "ConnectionPool",
    "ConsistentHash",
    "CorsPolicy",
    "Destination",
    "DestinationRule",
    "Fault",
    "HeaderOps",
    "HttpMatch",
    "HttpRoute",
    "L4Match",
    "LoadBalancer",
    "MeshConfig",
    "Mirror",
    "OutlierDetection",
    "Protocol",
    "Redirect",
    "Resolution",
    "Retries",
    "Rewrite",
    "RouteDestination",
    "Service",
    "ServiceEntry",
    "ServicePort",
    "StringMatch",
    "Subset",
    "TcpRoute",
    "TlsMatch",
    "TlsRoute",
    "TrafficPolicy",
    "VirtualService",
    "Workload",
]

#: The cluster domain of service hostnames: `reviews.default.svc.cluster.local`.
DOMAIN_SUFFIX = "svc.cluster.local"


class Protocol(Enum):
    """Application protocol of a service port (Istio's naming: `appProtocol` or name prefix)."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    TCP = "TCP"
    #: TLS the sidecar passes through, routed by the ClientHello's SNI (Istio's HTTPS and
    #: TLS: both are TLS to a sidecar that does not terminate them).
    TLS = "TLS"

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC)


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    #: The port clients address (`reviews:9080`).
    number: int
    protocol: Protocol
    #: The workload port when a workload does not name this port in its `ports` map.
    target_port: int


class Resolution(Enum):
    """How a service's endpoints are found. A `v1 Service` is STATIC (EDS, its selector);
    a ServiceEntry says (Istio's `ServiceEntry.Resolution`)."""

    #: Endpoints known to the control plane: an EDS cluster.
    STATIC = "STATIC"
    #: Every address of every endpoint hostname (Envoy STRICT_DNS).
    DNS = "DNS"
    #: One endpoint hostname, the first address of each resolution (Envoy LOGICAL_DNS).
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    #: The connection's original destination (Envoy ORIGINAL_DST).
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Service:
    """A Kubernetes-style `v1 Service` (a name, ports, and a label selector for workloads),
    or one host of a ServiceEntry (`entry` set: its hostname is the host as written)."""

    name: str
    namespace: str
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str]
    source: str = ""
    #: The ServiceEntry this host comes from (None: a `v1 Service`).
    entry: ServiceEntry | None = None
    #: A ServiceEntry host (`api.example.com`); "" for a `v1 Service`.
    host: str = ""
    #: The host, else `name.namespace.svc.cluster.local`; stored, as translation reads it
    #: for every service once per kind of proxy.
    hostname: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hostname = self.host or f"{self.name}.{self.namespace}.{DOMAIN_SUFFIX}"
        object.__setattr__(self, "hostname", hostname)

    @property
    def resource(self) -> str:
        """`Service ns/name` or `ServiceEntry ns/name`, for messages."""
        kind = "Service" if self.entry is None else "ServiceEntry"
        return f"{kind} {self.namespace}/{self.name}"

    @property
    def resolution(self) -> Resolution:
        return Resolution.STATIC if self.entry is None else self.entry.resolution

    @property
    def external(self) -> bool:
        """MESH_EXTERNAL: no sidecar at the other end (never auto mTLS)."""
        return self.entry is not None and self.entry.external

    def port(self, number: int) -> ServicePort | None:
        for p in self.ports:  # a loop, not next(genexpr): called per service per proxy kind
            if p.number == number:
                return p
        return None


@dataclass(frozen=True, slots=True)
class Workload:
    """An Istio `WorkloadEntry`: one instance of a service, at an address, with labels."""

    name: str
    namespace: str
    address: str
    labels: Mapping[str, str]
    #: Port name -> port number on this workload (Istio's `WorkloadEntry.ports`).
    ports: Mapping[str, int]
    service_account: str = "default"
    source: str = ""
    #: Relative load balancing weight (Istio's `weight`; 0: unset, Envoy's 1).
    weight: int = 0

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """Istio `ServiceEntry`: hosts added to the registry, each a service with these ports."""

    name: str
    namespace: str
    hosts: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    resolution: Resolution
    #: `location: MESH_EXTERNAL` (the default is MESH_EXTERNAL, as in Istio).
    external: bool = True
    #: `addresses`: VIPs or CIDRs clients may use (routes answer for them too).
    addresses: tuple[str, ...] = ()
    #: Inline `endpoints` (as WorkloadEntries of the entry's namespace).
    endpoints: tuple[Workload, ...] = ()
    #: `workloadSelector.labels`: WorkloadEntries of its namespace (None: `endpoints`).
    selector: Mapping[str, str] | None = None
    source: str = ""

    def host_endpoints(self, host: str) -> tuple[Workload, ...]:
        """The inline endpoints; for DNS resolution without any, the host itself (Istio's)."""
        if self.endpoints or self.resolution not in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
            return self.endpoints
        return (Workload(host, self.namespace, host, {}, {}, source=self.source),)

    def services(self) -> tuple[Service, ...]:
        """One service per host: what routes, rules and clusters refer to."""
        selector = self.selector or {}
        return tuple(
            Service(self.name, self.namespace, self.ports, selector, self.source, self, host)
            for host in self.hosts
        )


@dataclass(frozen=True, slots=True)
class StringMatch:
    """Istio `StringMatch`: exactly one of exact, prefix, regex."""

    kind: str  # "exact" | "prefix" | "regex"
    value: str


#: The gateway name of sidecars (Istio's `mesh`): what a match's `gateways` must name.
MESH_GATEWAY = "mesh"


@dataclass(frozen=True, slots=True)
class HttpMatch:
    uri: StringMatch | None = None
    headers: Mapping[str, StringMatch] = field(default_factory=dict)
    method: StringMatch | None = None
    query_params: Mapping[str, StringMatch] = field(default_factory=dict)
    #: The outbound port whose route config has this match (0: every port).
    port: int = 0
    #: Labels the client proxy's workload must carry (empty: any).
    source_labels: Mapping[str, str] = field(default_factory=dict)
    #: The client proxy's namespace ("": any).
    source_namespace: str = ""
    #: Gateways this match is for (empty: the VirtualService's).
    gateways: tuple[str, ...] = ()
    #: Its `name`, for messages only: matches that differ only in name are equal (Istio
    #: compares them without it, `asJSON`).
    name: str = field(default="", compare=False)

    @property
    def selective(self) -> bool:
        """Whether some route configs have this match and others not (by port or proxy)."""
        return bool(self.port or self.source_labels or self.source_namespace or self.gateways)

    @property
    def catch_all(self) -> bool:
        """Whether the Envoy route of this match takes every request (Istio's
        `IsCatchAllRoute`): any path (no `uri`, prefix `/` or regex `.*`) and no header,
        method or query parameter condition. `port` and the source fields do not count: they
        decide which route configs have the match, not what it matches there."""
        uri = self.uri
        any_path = (
            uri is None
            or (uri.kind == "prefix" and uri.value == "/")
            or (uri.kind == "regex" and uri.value == ".*")
        )
        return any_path and not (self.headers or self.method or self.query_params)

    def applies(self, port: int, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether the route config of a sidecar (of `namespace`, with `labels`) for outbound
        `port` has this match. Istio's `sourceMatchHTTP`: a match naming gateways is for
        sidecars when one is `mesh`, whatever its source labels and namespace."""
        if self.port and self.port != port:
            return False
        if self.gateways:
            return MESH_GATEWAY in self.gateways
        return self.source_namespace in ("", namespace) and all(
            labels.get(k) == v for k, v in self.source_labels.items()
        )


@dataclass(frozen=True, slots=True)
class Destination:
    #: As written (maybe short: `reviews`); resolve with `VirtualService.resolve`.
    host: str
    subset: str = ""
    port: int = 0


@dataclass(frozen=True, slots=True)
class RouteDestination:
    destination: Destination
    weight: int = 0


@dataclass(frozen=True, slots=True)
class Retries:
    attempts: int
    per_try_timeout: float | None = None
    retry_on: str = ""


@dataclass(frozen=True, slots=True)
class Rewrite:
    #: Replaces the matched path prefix ("" = keep the path).
    uri: str = ""
    #: Replaces the Host/:authority ("" = keep it).
    authority: str = ""


@dataclass(frozen=True, slots=True)
class Redirect:
    uri: str = ""
    authority: str = ""
    #: 301 (Istio's default), 302, 303, 307 or 308.
    code: int = 301


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Istio `Headers.HeaderOperations`: set (overwrite), add (append), remove."""

    set: Mapping[str, str] = field(default_factory=dict)
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fault:
    """Istio `HTTPFaultInjection`: a fixed delay and/or an abort, each for a percentage."""

    delay: float | None = None
    delay_percent: float = 100.0
    abort_status: int | None = None
    abort_percent: float = 100.0


@dataclass(frozen=True, slots=True)
class Mirror:
    """Istio `mirror` + `mirrorPercentage` (or one `mirrors[]` entry): a shadow copy."""

    destination: Destination
    #: Percent of requests mirrored (Istio's default: all).
    percent: float = 100.0
    #: Where the destination is written in its route (`mirror`, `mirrors[1].destination`).
    field: str = "mirror"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Istio `corsPolicy`."""

    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    #: Seconds a preflight answer may be cached; None: not sent.
    max_age: int | None = None
    #: None: not sent (the browser's default, no credentials).
    allow_credentials: bool | None = None
    #: `unmatchedPreflights`: FORWARD (True, the default) or IGNORE (answered by the sidecar).
    forward_unmatched_preflights: bool = True


@dataclass(frozen=True, slots=True)
class HttpRoute:
    name: str
    matches: tuple[HttpMatch, ...]
    #: Empty when `redirect` is set (Istio: one or the other).
    route: tuple[RouteDestination, ...]
    #: Seconds; None means no timeout (Istio's default).
    timeout: float | None = None
    retries: Retries | None = None
    rewrite: Rewrite | None = None
    redirect: Redirect | None = None
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None
    fault: Fault | None = None
    mirrors: tuple[Mirror, ...] = ()
    cors: CorsPolicy | None = None


@dataclass(frozen=True, slots=True)
class L4Match:
    """Istio `L4MatchAttributes` (the part fastmesh evaluates; see docs/controlplane.md)."""

    #: The listener port (0: any).
    port: int = 0
    #: CIDRs the connection's destination address must be in (empty: any).
    destination_subnets: tuple[str, ...] = ()
    #: The client proxy's namespace ("": any).
    source_namespace: str = ""
    gateways: tuple[str, ...] = ()
    #: Labels the client proxy's workload must carry (empty: any).
    source_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TcpRoute:
    """Istio `TCPRoute`: the first one whose match applies routes the connection."""

    matches: tuple[L4Match, ...]
    route: tuple[RouteDestination, ...]


@dataclass(frozen=True, slots=True)
class TlsMatch(L4Match):
    """Istio `TLSMatchAttributes`: where it applies (as an L4 match), and the SNI names its
    filter chain matches."""

    #: As written: exact names or `*.suffix` wildcards (Envoy's `server_names`).
    sni_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsRoute:
    """Istio `TLSRoute`: on a TLS port, each match that applies is a filter chain for its
    SNI names, passing the connection through to `route`."""

    matches: tuple[TlsMatch, ...]
    route: tuple[RouteDestination, ...]


def resolve_host(host: str, namespace: str) -> str:
    """Istio's short-name rule: `reviews` in namespace `default` is the service's FQDN."""
    if "." not in host:
        return f"{host}.{namespace}.{DOMAIN_SUFFIX}"
    if host.count(".") == 1:  # reviews.default
        return f"{host}.{DOMAIN_SUFFIX}"
    if host.endswith(".svc"):
        return f"{host}.cluster.local"
    return host


@dataclass(frozen=True, slots=True)
class VirtualService:
    name: str
    namespace: str
    hosts: tuple[str, ...]
    gateways: tuple[str, ...]
    http: tuple[HttpRoute, ...]
    source: str = ""
    tcp: tuple[TcpRoute, ...] = ()
    tls: tuple[TlsRoute, ...] = ()

    def resolve(self, host: str) -> str:
        return resolve_host(host, self.namespace)

    @property
    def applies_to_sidecars(self) -> bool:
        return not self.gateways or MESH_GATEWAY in self.gateways


@dataclass(frozen=True, slots=True)
class ConsistentHash:
    """Istio `consistentHash`: what a request is hashed on."""

    kind: str  # "header" | "cookie" | "query" | "source_ip"
    name: str = ""
    #: Cookie lifetime in seconds (Envoy generates the cookie when it is missing).
    ttl: float | None = None


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """Istio `loadBalancer`: `simple` or `consistentHash`."""

    simple: str = ""
    consistent_hash: ConsistentHash | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPool:
    """Istio `connectionPool` (None = Envoy's default)."""

    max_connections: int | None = None
    connect_timeout: float | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Istio `outlierDetection` (None = Envoy's default)."""

    consecutive_5xx: int | None = None
    consecutive_gateway_errors: int | None = None
    interval: float | None = None
    base_ejection_time: float | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    load_balancer: LoadBalancer | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    #: `tls.mode`: "ISTIO_MUTUAL" or "DISABLE"; None: Istio's auto mTLS.
    tls_mode: str | None = None
    #: `portLevelSettings`: port number -> the policy for that port (instead of this one).
    port_settings: Mapping[int, TrafficPolicy] = field(default_factory=dict)

    def over(self, base: TrafficPolicy | None) -> TrafficPolicy:
        """This policy with each unset field taken from `base` (Istio's `mergeTrafficPolicy`
        of a subset's policy without settings for the port over the rule's), for one port:
        without `portLevelSettings`."""
        if base is None:
            return self
        return TrafficPolicy(
            self.load_balancer or base.load_balancer,
            self.connection_pool or base.connection_pool,
            self.outlier_detection or base.outlier_detection,
            self.tls_mode or base.tls_mode,
        )

    def at_port(self, port: int) -> TrafficPolicy:
        """This policy as it applies to `port`: its `portLevelSettings` entry for the port,
        whole, else itself. An entry inherits nothing: a field it leaves unset is Envoy's
        default, not this policy's (Istio's `GetPortLevelTrafficPolicy`, and the API's
        "settings specified at the destination-level will not be inherited when overridden
        by port-level settings")."""
        return self.port_settings.get(port, self)


@dataclass(frozen=True, slots=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    #: The subset's own `trafficPolicy` (see `MeshIndex.policy` for how it meets the rule's).
    policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True)
class DestinationRule:
    name: str
    namespace: str
    host: str
    subsets: tuple[Subset, ...]
    policy: TrafficPolicy | None = None
    source: str = ""

    @property
    def hostname(self) -> str:
        return resolve_host(self.host, self.namespace)


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """Everything one source knows at one moment, already validated."""

    services: tuple[Service, ...] = ()
    workloads: tuple[Workload, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    service_entries: tuple[ServiceEntry, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
