"""The client side of one ADS conversation (state of the world), sans-IO.

It keeps, per resource type, what is subscribed and what was last accepted (resources,
version), across streams; per stream, the last nonce. Responses become `Candidate`s:
the accepted resources with the response applied. The caller translates a candidate, then
`accept`s (ACK: the response's version and nonce) or `reject`s it (NACK: the previous
version, the nonce, and the reason in `error_detail`).

LDS and CDS are wildcard subscriptions: a response holds all of the type. EDS, RDS and SDS
name their resources; a response may hold only some, the rest are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from fastmesh._grpc import Status
from fastmesh.config._xds import DynamicResources

from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER, decode

__all__ = ["AdsSession", "Candidate", "Subscription", "node_message"]


@dataclass
class Subscription:
    """One resource type: the names asked for (None: all) and what was last accepted."""

    type_url: str
    names: frozenset[str] | None = None
    version: str = ""
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Nonce of the last response on the current stream ("" before one).
    nonce: str = ""


@dataclass(frozen=True)
class Candidate:
    """A response applied to the accepted resources of its type, not yet accepted."""

    type_url: str
    version: str
    nonce: str
    resources: dict[str, dict[str, Any]]


def node_message(node_id: str, cluster: str, metadata: Mapping[str, Any]) -> Any:
    """The bootstrap's `node` as an `envoy.config.core.v3.Node`."""
    node = base_pb2.Node(id=node_id, cluster=cluster, user_agent_name="fastmesh")
    if metadata:
        meta = struct_pb2.Struct()
        meta.update(dict(metadata))
        node.metadata.CopyFrom(meta)
    return node


class AdsSession:
    """Subscriptions and accepted resources; builds every DiscoveryRequest to send."""

    def __init__(self, node: Any) -> None:
        self.node = node
        # CDS first; LDS joins once clusters are known (`subscribe_all`), as in Envoy.
        self.subscriptions: dict[str, Subscription] = {CLUSTER: Subscription(CLUSTER)}
        self._node_sent = False

    def open_stream(self) -> list[Any]:
        """A new stream: one request per subscribed type, in Envoy's order, each with the
        version and names already held."""
        self._node_sent = False
        out = []
        for type_url in TYPE_ORDER:
            sub = self.subscriptions.get(type_url)
            if sub is not None:
                sub.nonce = ""
                out.append(self._request(sub, sub.version))
        return out

    def candidate(self, response: Any) -> Candidate:
        """Decode a DiscoveryResponse; raises ValueError (a NACK reason) if it is unusable.

        The nonce is recorded first: even a response that cannot be decoded is answered."""
        type_url = str(response.type_url)
        sub = self.subscriptions.get(type_url)
        if sub is None:
            raise ValueError(f"a response for {type_url!r}, which was not asked for")
        sub.nonce = str(response.nonce)
        received = dict(decode(type_url, packed) for packed in response.resources)
        if sub.names is None:
            resources = received
        else:
            resources = {n: r for n, r in {**sub.resources, **received}.items() if n in sub.names}
        return Candidate(type_url, str(response.version_info), sub.nonce, resources)

    def accept(self, candidate: Candidate) -> Any:
        """The candidate becomes the accepted state of its type; returns the ACK."""
        sub = self.subscriptions[candidate.type_url]
        sub.version = candidate.version
        sub.resources = candidate.resources
        return self._request(sub, sub.version)

    def reject(self, type_url: str, reason: str) -> Any:
        """The NACK of the last response of `type_url`: the previous version stays."""
        sub = self.subscriptions[type_url]
        request = self._request(sub, sub.version)
        request.error_detail.code = Status.INVALID_ARGUMENT  # as Envoy's NACKs
        request.error_detail.message = reason
        return request

    def subscribe_all(self, type_url: str) -> Any | None:
        """A wildcard subscription to `type_url` (LDS); the request, or None if there is one."""
        if type_url in self.subscriptions:
            return None
        sub = self.subscriptions[type_url] = Subscription(type_url)
        return self._request(sub, "")

    def subscribe(self, type_url: str, names: Iterable[str]) -> Any | None:
        """Ask for exactly `names` of an EDS/RDS/SDS type; the request, or None if unchanged.

        Accepted resources no longer named are forgotten."""
        wanted = frozenset(names)
        sub = self.subscriptions.get(type_url)
        if sub is None:
            if not wanted:
                return None
            sub = self.subscriptions[type_url] = Subscription(type_url, wanted)
        elif sub.names == wanted:
            return None
        sub.names = wanted
        sub.resources = {n: r for n, r in sub.resources.items() if n in wanted}
        return self._request(sub, sub.version)

    def dynamic(self, candidate: Candidate | None = None) -> DynamicResources:
        """The accepted resources of every type, with `candidate` in place of its type's."""

        def of(type_url: str) -> dict[str, dict[str, Any]]:
            if candidate is not None and candidate.type_url == type_url:
                return candidate.resources
            sub = self.subscriptions.get(type_url)
            return sub.resources if sub is not None else {}

        return DynamicResources(of(CLUSTER), of(LISTENER), of(ENDPOINT), of(ROUTE), of(SECRET))

    def _request(self, sub: Subscription, version: str) -> Any:
        request = discovery_pb2.DiscoveryRequest(
            version_info=version,
            type_url=sub.type_url,
            response_nonce=sub.nonce,
            resource_names=sorted(sub.names or ()),
        )
        if not self._node_sent:
            request.node.CopyFrom(self.node)
            self._node_sent = True
        return request
