"""The client side of one ADS conversation, sans-IO: `SessionBase` (what both protocols
share) and `AdsSession` (state of the world; `_delta.DeltaAdsSession` is incremental).

It keeps, per resource type, what is subscribed and what was last accepted (resources,
version), across streams; per stream, the last nonce. Responses become `Candidate`s:
the accepted resources with the response applied. The caller translates a candidate, then
`accept`s (ACK) or `reject`s it (NACK, with the reason in `error_detail`; the accepted
state stays as it was).

LDS and CDS are wildcard subscriptions; EDS, RDS and SDS name their resources, and what is
no longer named is forgotten. In state of the world a wildcard response holds all of its
type, a named one may hold only some (the rest are kept).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from fastmesh._grpc import Status
from fastmesh.config._xds import DynamicResources

from ._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_ORDER, decode

__all__ = [
    "ADS_PATH",
    "AdsSession",
    "Candidate",
    "SessionBase",
    "Subscription",
    "kept",
    "node_message",
    "subscribed",
]

ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


@dataclass
class Subscription:
    """One resource type: the names asked for (None: all) and what was last accepted."""

    type_url: str
    names: frozenset[str] | None = None
    version: str = ""
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Delta only: each accepted resource's version (`initial_resource_versions`).
    resource_versions: dict[str, str] = field(default_factory=dict)
    #: Nonce of the last response on the current stream ("" before one).
    nonce: str = ""


@dataclass(frozen=True)
class Candidate:
    """A response applied to the accepted resources of its type, not yet accepted."""

    type_url: str
    version: str
    nonce: str
    resources: dict[str, dict[str, Any]]
    #: Delta only: the per-resource versions that go with `resources`.
    resource_versions: dict[str, str] = field(default_factory=dict)
    #: The subscribed names the response set (or, delta, removed): the resources whose
    #: watches Envoy calls, so whose update stats count it.
    updated: frozenset[str] = frozenset()


def node_message(node_id: str, cluster: str, metadata: Mapping[str, Any]) -> Any:
    """The bootstrap's `node` as an `envoy.config.core.v3.Node`."""
    node = base_pb2.Node(id=node_id, cluster=cluster, user_agent_name="fastmesh")
    if metadata:
        meta = struct_pb2.Struct()
        meta.update(dict(metadata))
        node.metadata.CopyFrom(meta)
    return node


class SessionBase(ABC):
    """Subscriptions and accepted resources, whatever the protocol; subclasses say what
    each request and response looks like on the wire."""

    #: The gRPC method of the ADS stream.
    path: str
    #: The protocol as Envoy's `api_type` names it.
    api_type: str

    def __init__(self, node: Any) -> None:
        self.node = node
        # CDS first; LDS joins once clusters are known (`subscribe_all`), as in Envoy.
        self.subscriptions: dict[str, Subscription] = {CLUSTER: Subscription(CLUSTER)}
        self._node_sent = False

    @abstractmethod
    def parse(self, raw: bytes) -> Any:
        """One response message from its bytes (raises DecodeError)."""

    @staticmethod
    @abstractmethod
    def version_of(response: Any) -> str:
        """A response's version (for logs)."""

    @abstractmethod
    def _resume(self, sub: Subscription) -> Any:
        """The first request of a type on a new stream, saying what is held."""

    @abstractmethod
    def _changed(self, sub: Subscription, before: frozenset[str] | None) -> Any:
        """The request announcing that `sub.names` is no longer `before`."""

    @abstractmethod
    def _received(self, sub: Subscription, response: Any) -> Candidate:
        """A response applied to `sub`'s accepted resources (`sub.nonce` is already set)."""

    @abstractmethod
    def _answer(self, sub: Subscription) -> Any:
        """The ACK of `sub.nonce` (after `accept`), or the base of its NACK."""

    def open_stream(self) -> list[Any]:
        """A new stream: one request per subscribed type, in Envoy's order, each saying
        what is already held."""
        self._node_sent = False
        out = []
        for type_url in TYPE_ORDER:
            sub = self.subscriptions.get(type_url)
            if sub is not None:
                sub.nonce = ""
                out.append(self._resume(sub))
        return out

    def candidate(self, response: Any) -> Candidate:
        """Decode a response; raises ValueError (a NACK reason) if it is unusable.

        The nonce is recorded first: even a response that cannot be decoded is answered."""
        type_url = str(response.type_url)
        sub = self.subscriptions.get(type_url)
        if sub is None:
            raise ValueError(f"a response for {type_url!r}, which was not asked for")
        sub.nonce = str(response.nonce)
        return self._received(sub, response)

    def accept(self, candidate: Candidate) -> Any:
        """The candidate becomes the accepted state of its type; returns the ACK."""
        sub = self.subscriptions[candidate.type_url]
        sub.version = candidate.version
        sub.resources = candidate.resources
        sub.resource_versions = candidate.resource_versions
        return self._answer(sub)

    def reject(self, type_url: str, reason: str) -> Any:
        """The NACK of the last response of `type_url`: the accepted state stays."""
        request = self._answer(self.subscriptions[type_url])
        request.error_detail.code = Status.INVALID_ARGUMENT  # as Envoy's NACKs
        request.error_detail.message = reason
        return request

    def subscribe_all(self, type_url: str) -> Any | None:
        """A wildcard subscription to `type_url` (LDS); the request, or None if there is one."""
        if type_url in self.subscriptions:
            return None
        sub = self.subscriptions[type_url] = Subscription(type_url)
        return self._resume(sub)

    def subscribe(self, type_url: str, names: Iterable[str]) -> Any | None:
        """Ask for exactly `names` of an EDS/RDS/SDS type; the request, or None if unchanged.

        Accepted resources no longer named are forgotten."""
        wanted = frozenset(names)
        sub = self.subscriptions.get(type_url)
        if sub is None:
            if not wanted:
                return None
            sub = self.subscriptions[type_url] = Subscription(type_url, frozenset())
        elif sub.names == wanted:
            return None
        before, sub.names = sub.names, wanted
        sub.resources = {n: r for n, r in sub.resources.items() if n in wanted}
        sub.resource_versions = {n: v for n, v in sub.resource_versions.items() if n in wanted}
        return self._changed(sub, before)

    def dynamic(self, candidate: Candidate | None = None) -> DynamicResources:
        """The accepted resources of every type, with `candidate` in place of its type's."""

        def of(type_url: str) -> dict[str, dict[str, Any]]:
            if candidate is not None and candidate.type_url == type_url:
                return candidate.resources
            sub = self.subscriptions.get(type_url)
            return sub.resources if sub is not None else {}

        return DynamicResources(of(CLUSTER), of(LISTENER), of(ENDPOINT), of(ROUTE), of(SECRET))

    def _with_node(self, request: Any) -> Any:
        """`request`, carrying the node if it is the stream's first."""
        if not self._node_sent:
            request.node.CopyFrom(self.node)
            self._node_sent = True
        return request


def kept(sub: Subscription, received: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The accepted resources with `received` over them, only those subscribed by name."""
    merged = {**sub.resources, **received}
    return merged if sub.names is None else {n: r for n, r in merged.items() if n in sub.names}


def subscribed(sub: Subscription, names: Iterable[str]) -> frozenset[str]:
    """Those of `names` that `sub` asks for (all, for a wildcard)."""
    return frozenset(names) if sub.names is None else sub.names.intersection(names)


class AdsSession(SessionBase):
    """State of the world: every request carries the names and the accepted version; a
    wildcard response holds all of its type."""

    path = ADS_PATH
    api_type = "GRPC"

    def parse(self, raw: bytes) -> Any:
        return discovery_pb2.DiscoveryResponse.FromString(raw)

    @staticmethod
    def version_of(response: Any) -> str:
        return str(response.version_info)

    def _resume(self, sub: Subscription) -> Any:
        return self._request(sub)

    def _changed(self, sub: Subscription, before: frozenset[str] | None) -> Any:
        return self._request(sub)

    def _received(self, sub: Subscription, response: Any) -> Candidate:
        received = dict(decode(sub.type_url, packed) for packed in response.resources)
        resources = received if sub.names is None else kept(sub, received)
        updated = subscribed(sub, received)
        return Candidate(
            sub.type_url, str(response.version_info), sub.nonce, resources, updated=updated
        )

    def _answer(self, sub: Subscription) -> Any:
        return self._request(sub)

    def _request(self, sub: Subscription) -> Any:
        return self._with_node(
            discovery_pb2.DiscoveryRequest(
                version_info=sub.version,
                type_url=sub.type_url,
                response_nonce=sub.nonce,
                resource_names=sorted(sub.names or ()),
            )
        )
