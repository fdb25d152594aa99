"""`dynamic_resources` over ADS: the bootstrap's xDS source, and the EDS and RDS resources
that `type: EDS` clusters and HCM `rds` name.

The ADS client hands the translator what it received as proto3 JSON dicts
(`MessageToDict(msg, preserving_proto_field_name=True)`); the same strict rules apply to
them as to YAML. A cluster or listener whose EDS or RDS resource has not arrived yet is
translated with no endpoints / no routes, and its name is recorded in `XdsLookup`, so the
proxy knows both what to subscribe to and whether the snapshot is complete (warm).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._errors import Issues
from ._fields import Doc, at, get_bool, get_list, get_map, get_str, item, obj

__all__ = [
    "AdsSource",
    "DynamicResources",
    "XdsLookup",
    "ads_source",
    "config_source",
    "eds_assignment",
    "rds_route_config",
]

_DYNAMIC: Final = frozenset({"ads_config", "cds_config", "lds_config"})
_ADS_CONFIG: Final = frozenset(
    {"api_type", "transport_api_version", "grpc_services", "set_node_on_first_message_only"}
)
#: State of the world, incremental.
_API_TYPES: Final = ("GRPC", "DELTA_GRPC")
_GRPC_SERVICE: Final = frozenset({"envoy_grpc"})
_ENVOY_GRPC: Final = frozenset({"cluster_name"})
_CONFIG_SOURCE: Final = frozenset({"ads", "resource_api_version"})
_EDS_CLUSTER: Final = frozenset({"eds_config", "service_name"})
_RDS: Final = frozenset({"config_source", "route_config_name"})
_ASSIGNMENT: Final = frozenset({"cluster_name", "endpoints"})
#: Envoy's default for RDS is false: an unknown cluster answers 503. fastmesh's engine
#: refuses a route to an unknown cluster either way (the update is NACKed), so both values
#: are accepted and the field is dropped before the route table is translated.
_VALIDATE_CLUSTERS: Final = "validate_clusters"


@dataclass(frozen=True, slots=True)
class AdsSource:
    """Where the proxy gets `dynamic_resources` from: one ADS stream to a static cluster."""

    #: The static (HTTP/2) cluster of the management server.
    cluster: str
    #: Its endpoints (ip, port), in order: the ADS client connects to the first, and moves
    #: to the next when a stream breaks (a control-plane replica gone).
    addresses: tuple[tuple[str, int], ...]
    #: `api_type: DELTA_GRPC`: incremental xDS (else `GRPC`, state of the world).
    delta: bool = False


@dataclass(frozen=True, slots=True)
class DynamicResources:
    """What ADS delivered, as proto3 JSON dicts by resource name."""

    clusters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    listeners: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: `ClusterLoadAssignment`s by `cluster_name`.
    assignments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: `RouteConfiguration`s by `name`.
    route_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: SDS `Secret`s by `name`.
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class XdsLookup:
    """Looks EDS and RDS resources up by name for the clusters and listeners that name
    them, noting every name asked for."""

    received: DynamicResources = field(default_factory=DynamicResources)
    #: EDS names the clusters use (the EDS subscription).
    endpoint_names: set[str] = field(default_factory=set)
    #: RDS names the listeners use (the RDS subscription), each with the `stat_prefix` of
    #: the first HTTP connection manager naming it (Envoy's RDS stats are under it).
    route_names: dict[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Resources named but not received: the snapshot is still warming while non-empty."""
        endpoints = sorted(self.endpoint_names.difference(self.received.assignments))
        routes = sorted(self.route_names.keys() - self.received.route_configs.keys())
        return [
            *(f"ClusterLoadAssignment {n}" for n in endpoints),
            *(f"RouteConfiguration {n}" for n in routes),
        ]


def config_source(issues: Issues, doc: Doc, key: str, path: str) -> None:
    """A `ConfigSource` that must be `{ads: {}}` (optionally `resource_api_version: V3`)."""
    src = get_map(issues, doc, key, path, _CONFIG_SOURCE, required=True)
    if src is None:
        return
    p = at(path, key)
    if "ads" not in src:
        issues.add(p, "expected {ads: {}}: fastmesh takes xDS resources over ADS only")
    else:
        get_map(issues, src, "ads", p, frozenset())
    version = src.get("resource_api_version", "V3")
    if version != "V3":
        issues.add(at(p, "resource_api_version"), f"expected V3, got {version!r}")


def ads_source(
    issues: Issues, doc: Doc, static_clusters: Mapping[str, Mapping[str, Any]]
) -> AdsSource | None:
    """The bootstrap's `dynamic_resources` (ADS only; LDS and CDS over it), or None without one.

    `static_clusters` are the translated static clusters by name: the ADS cluster must be one
    of them, speak HTTP/2, and have an endpoint.
    """
    dyn = get_map(issues, doc, "dynamic_resources", "", _DYNAMIC)
    if dyn is None:
        return None
    path = "dynamic_resources"
    ads = get_map(issues, dyn, "ads_config", path, _ADS_CONFIG, required=True)
    for key in ("cds_config", "lds_config"):
        config_source(issues, dyn, key, path)
    if ads is None:
        return None
    p = at(path, "ads_config")
    get_bool(issues, ads, "set_node_on_first_message_only", p)  # what fastmesh does anyway
    api_type = ads.get("api_type")
    if api_type not in _API_TYPES:
        issues.add(at(p, "api_type"), f"expected GRPC or DELTA_GRPC, got {api_type!r}")
    if ads.get("transport_api_version") != "V3":
        got = ads.get("transport_api_version")
        issues.add(at(p, "transport_api_version"), f"expected V3, got {got!r}")
    services = get_list(issues, ads, "grpc_services", p, required=True)
    if len(services) != 1:
        issues.add(at(p, "grpc_services"), f"expected one gRPC service, got {len(services)}")
        return None
    sp = item(at(p, "grpc_services"), 0)
    service = obj(issues, services[0], sp, _GRPC_SERVICE)
    if service is None:
        return None
    grpc = get_map(issues, service, "envoy_grpc", sp, _ENVOY_GRPC, required=True)
    if grpc is None:
        return None
    gp = at(sp, "envoy_grpc")
    name = get_str(issues, grpc, "cluster_name", gp, required=True, non_empty=True)
    if name is None:
        return None
    cluster = static_clusters.get(name)
    where = at(gp, "cluster_name")
    if cluster is None:
        issues.add(where, f"unknown cluster {name!r} (the ADS cluster must be a static cluster)")
        return None
    if not cluster.get("http2"):
        issues.add(where, f"cluster {name!r} must speak HTTP/2 (gRPC): set http2_protocol_options")
        return None
    endpoints = cluster.get("endpoints") or []
    if cluster.get("discovery") != "static" or not endpoints:
        issues.add(where, f"cluster {name!r} must be a STATIC cluster with an endpoint")
        return None
    addresses = tuple((e["host"], int(e["port"])) for e in endpoints)
    return AdsSource(name, addresses, delta=api_type == "DELTA_GRPC")


def eds_assignment(
    issues: Issues, c: Doc, path: str, cluster_name: str | None, xds: XdsLookup | None
) -> tuple[Doc, str] | None:
    """A `type: EDS` cluster's `ClusterLoadAssignment` and the path its errors read at;
    None when it has not arrived (the cluster warms) or cannot be found."""
    if "load_assignment" in c:
        issues.add(at(path, "load_assignment"), "an EDS cluster takes its endpoints from EDS")
    cfg = get_map(issues, c, "eds_cluster_config", path, _EDS_CLUSTER, required=True)
    if cfg is None:
        return None
    p = at(path, "eds_cluster_config")
    config_source(issues, cfg, "eds_config", p)
    name = get_str(issues, cfg, "service_name", p, non_empty=True) or cluster_name
    if xds is None:
        issues.add(at(path, "type"), "EDS needs dynamic_resources.ads_config in the bootstrap")
        return None
    if name is None:
        return None
    xds.endpoint_names.add(name)
    cla = xds.received.assignments.get(name)
    if cla is None:
        return None
    cla_path = f"ClusterLoadAssignment[{name}]"
    checked = obj(issues, cla, cla_path, _ASSIGNMENT)
    return None if checked is None else (checked, cla_path)


def rds_route_config(
    issues: Issues, hcm: Doc, path: str, xds: XdsLookup | None, stat_prefix: str
) -> tuple[Mapping[str, Any], str] | None:
    """An HCM's `rds`: the named `RouteConfiguration` (an empty one while it has not
    arrived: the listener warms) and the path its errors read at."""
    rds = get_map(issues, hcm, "rds", path, _RDS)
    if rds is None:
        return None
    p = at(path, "rds")
    config_source(issues, rds, "config_source", p)
    name = get_str(issues, rds, "route_config_name", p, required=True, non_empty=True)
    if xds is None:
        issues.add(p, "rds needs dynamic_resources.ads_config in the bootstrap")
        return None
    if name is None:
        return None
    xds.route_names.setdefault(name, stat_prefix)
    rc = xds.received.route_configs.get(name)
    if rc is None:
        return {"name": name}, p
    return {k: v for k, v in rc.items() if k != _VALIDATE_CLUSTERS}, f"RouteConfiguration[{name}]"
