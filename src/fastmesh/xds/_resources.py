"""The five xDS resource types fastmesh-proxy subscribes to, and their protobuf -> dict
decoding (proto3 JSON with field names as in YAML: what the translator reads)."""

from __future__ import annotations

from typing import Any, Final

# Imported for their side effect too: each registers its message types in the default
# descriptor pool, so `Any` fields (typed_config, typed_per_filter_config) can be decoded.
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2  # noqa: F401
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2  # noqa: F401
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format
from google.protobuf.message import DecodeError

__all__ = [
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "ROUTE",
    "SECRET",
    "TYPE_ORDER",
    "decode",
    "short_type",
]

_PREFIX: Final = "type.googleapis.com/"
CLUSTER: Final = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT: Final = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER: Final = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE: Final = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET: Final = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
#: Envoy's order: clusters, their endpoints, listeners, their routes; then the secrets
#: their TLS contexts name.
TYPE_ORDER: Final = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)

_MESSAGES: Final[dict[str, Any]] = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
    SECRET: secret_pb2.Secret,
}
_NAME_FIELD: Final = {
    CLUSTER: "name",
    ENDPOINT: "cluster_name",
    LISTENER: "name",
    ROUTE: "name",
    SECRET: "name",
}
_SHORT: Final = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS", SECRET: "SDS"}


def short_type(type_url: str) -> str:
    """`CDS`, `EDS`, `LDS`, `RDS`, `SDS`, or the type URL itself."""
    return _SHORT.get(type_url, type_url)


def decode(type_url: str, packed: Any) -> tuple[str, dict[str, Any]]:
    """One `google.protobuf.Any` of a response for `type_url` -> (resource name, dict).

    Raises ValueError saying what is wrong (a wrong type, bytes that do not parse, an
    `Any` inside of a type fastmesh does not know): the response is NACKed with it.
    """
    if packed.type_url != type_url:
        raise ValueError(f"a {packed.type_url} resource in a {type_url} response")
    message = _MESSAGES[type_url]()
    try:
        message.ParseFromString(packed.value)
        doc = json_format.MessageToDict(message, preserving_proto_field_name=True)
    except (DecodeError, TypeError, json_format.Error) as exc:
        raise ValueError(f"cannot decode a {short_type(type_url)} resource: {exc}") from None
    name = str(doc.get(_NAME_FIELD[type_url], ""))
    if not name:
        raise ValueError(f"a {short_type(type_url)} resource without {_NAME_FIELD[type_url]}")
    return name, doc
