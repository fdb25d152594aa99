"""xDS resource types, and per-proxy snapshots of packed, digested resources."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, json_format

__all__ = [
    "CLUSTER",
    "CORS",
    "CORS_POLICY",
    "ENDPOINT",
    "FAULT",
    "HCM",
    "HTTP_PROTOCOL_OPTIONS",
    "LISTENER",
    "ROUTE",
    "ROUTER",
    "SECRET",
    "TCP_PROXY",
    "TYPE_ORDER",
    "PackCache",
    "Resource",
    "Snapshot",
    "build_snapshot",
    "pack",
    "short_type",
]

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
#: SDS: served by `_sds.SecretIssuer`, merged into each proxy's snapshot by the hub.
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
HCM = _PREFIX + http_connection_manager_pb2.HttpConnectionManager.DESCRIPTOR.full_name
ROUTER = _PREFIX + router_pb2.Router.DESCRIPTOR.full_name
FAULT = _PREFIX + fault_pb2.HTTPFault.DESCRIPTOR.full_name
CORS = _PREFIX + cors_pb2.Cors.DESCRIPTOR.full_name
CORS_POLICY = _PREFIX + cors_pb2.CorsPolicy.DESCRIPTOR.full_name
TCP_PROXY = _PREFIX + tcp_proxy_pb2.TcpProxy.DESCRIPTOR.full_name
HTTP_PROTOCOL_OPTIONS = _PREFIX + http_protocol_options_pb2.HttpProtocolOptions.DESCRIPTOR.full_name

#: The order Envoy wants them (clusters before their endpoints, listeners before routes).
TYPE_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)

_MESSAGES: dict[str, Any] = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}
_SHORT = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS", SECRET: "SDS"}
_NAME_FIELD = {CLUSTER: "name", ENDPOINT: "cluster_name", LISTENER: "name", ROUTE: "name"}


def short_type(type_url: str) -> str:
    """`CDS`, `EDS`, `LDS`, `RDS`, `SDS`, or the type URL itself."""
    return _SHORT.get(type_url, type_url)


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    packed: any_pb2.Any
    #: sha256 of the deterministic serialization: equal digests, equal resources.
    digest: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One proxy's complete config at one version."""

    version: str
    resources: Mapping[str, Mapping[str, Resource]] = field(default_factory=dict)

    def of_type(self, type_url: str) -> Mapping[str, Resource]:
        return self.resources.get(type_url, {})

    def merged(self, other: Snapshot) -> Snapshot:
        """This snapshot plus every resource of `other` (same names: `other`'s win)."""
        out = self
        for type_url, resources in sorted(other.resources.items()):
            if resources:
                out = out.with_type(type_url, {**out.of_type(type_url), **resources})
        return out

    def with_type(self, type_url: str, resources: Mapping[str, Resource]) -> Snapshot:
        """This snapshot plus (or with replaced) `type_url`; the version covers both."""
        h = hashlib.sha256(self.version.encode())
        for name, resource in sorted(resources.items()):
            h.update(f"{type_url}\0{name}\0{resource.digest}\n".encode())
        return Snapshot(h.hexdigest()[:16], {**self.resources, type_url: resources})


def pack(name: str, message: Any) -> Resource:
    """One protobuf message as a snapshot resource."""
    packed = any_pb2.Any()
    packed.Pack(message)
    blob = message.SerializeToString(deterministic=True)
    return Resource(name, packed, hashlib.sha256(blob).hexdigest())


class PackCache:
    """Packed resources by their Envoy-JSON document, kept for two config generations.

    Proxies of different translation keys share most resources, and one config change
    alters few; `json_format.ParseDict` is the cost of a build (most of it, profiled at 10k
    services), while serialising a document to JSON for the key is an order cheaper.
    """

    def __init__(self) -> None:
        self._now: dict[tuple[str, str], Resource] = {}
        self._before: dict[tuple[str, str], Resource] = {}

    def next_generation(self) -> None:
        """A new config: what the last two did not use is forgotten (memory stays bounded)."""
        self._before, self._now = self._now, {}

    def resource(self, type_url: str, doc: dict[str, Any]) -> Resource:
        key = (type_url, json.dumps(doc, sort_keys=True, separators=(",", ":")))
        hit = self._now.get(key) or self._before.get(key)
        if hit is None:
            hit = _pack_document(type_url, doc)
        self._now[key] = hit
        return hit


def _pack_document(type_url: str, doc: dict[str, Any]) -> Resource:
    return pack(str(doc[_NAME_FIELD[type_url]]), json_format.ParseDict(doc, _MESSAGES[type_url]()))


def build_snapshot(
    documents: Mapping[str, list[dict[str, Any]]], cache: PackCache | None = None
) -> Snapshot:
    """Envoy-JSON documents per type URL -> typed protobuf messages, packed and digested
    (through `cache` when given: equal documents are parsed once).

    The version is a digest of the content: equal config, equal version (on every replica).
    Raises `google.protobuf.json_format.ParseError` naming the bad field: a translator bug.
    """
    out: dict[str, dict[str, Resource]] = {}
    for type_url, docs in documents.items():
        by_name: dict[str, Resource] = {}
        for doc in docs:
            r = _pack_document(type_url, doc) if cache is None else cache.resource(type_url, doc)
            by_name[r.name] = r
        out[type_url] = by_name
    h = hashlib.sha256()
    for type_url, by_name in sorted(out.items()):
        for name, resource in sorted(by_name.items()):
            h.update(f"{type_url}\0{name}\0{resource.digest}\n".encode())
    return Snapshot(h.hexdigest()[:16], out)
