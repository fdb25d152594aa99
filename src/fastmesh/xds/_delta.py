"""The client side of one incremental (delta) ADS conversation, sans-IO.

The same subscriptions and accepted state as the state-of-the-world session, with delta's
wire rules (Envoy's): a request per type subscribes or unsubscribes names (`*` or no name:
the wildcard of CDS and LDS); the first request of a type on a new stream carries
`initial_resource_versions` for what is held, so the server sends only what differs; a
response carries the changed resources (each with its version) and `removed_resources`,
applied to the accepted state as a `Candidate`; an ACK is the response's nonce alone, a
NACK adds `error_detail`, and a rejected response leaves the accepted state as it was.
"""

from __future__ import annotations

from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from ._resources import decode
from ._session import Candidate, SessionBase, Subscription, kept, subscribed

__all__ = ["DELTA_ADS_PATH", "DeltaAdsSession"]

DELTA_ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"


class DeltaAdsSession(SessionBase):
    """Incremental xDS: requests say what changed, responses what changed."""

    path = DELTA_ADS_PATH
    api_type = "DELTA_GRPC"

    def parse(self, raw: bytes) -> Any:
        return discovery_pb2.DeltaDiscoveryResponse.FromString(raw)

    @staticmethod
    def version_of(response: Any) -> str:
        return str(response.system_version_info)

    def _resume(self, sub: Subscription) -> Any:
        request = self._request(sub)
        request.resource_names_subscribe.extend(sorted(sub.names or ()))
        for name, version in sorted(sub.resource_versions.items()):
            request.initial_resource_versions[name] = version
        return request

    def _changed(self, sub: Subscription, before: frozenset[str] | None) -> Any:
        now, was = sub.names or frozenset(), before or frozenset()
        request = self._request(sub)
        request.resource_names_subscribe.extend(sorted(now - was))
        request.resource_names_unsubscribe.extend(sorted(was - now))
        return request

    def _received(self, sub: Subscription, response: Any) -> Candidate:
        received: dict[str, dict[str, Any]] = {}
        versions = dict(sub.resource_versions)
        for resource in response.resources:
            name, doc = decode(sub.type_url, resource.resource)
            if resource.name and resource.name != name:
                raise ValueError(f"a resource sent as {resource.name!r} is named {name!r}")
            received[name] = doc
            versions[name] = str(resource.version)
        removed = {str(n) for n in response.removed_resources}
        resources = {n: r for n, r in kept(sub, received).items() if n not in removed}
        versions = {n: v for n, v in versions.items() if n in resources}
        updated = subscribed(sub, received.keys() | removed)
        version = self.version_of(response)
        return Candidate(sub.type_url, version, sub.nonce, resources, versions, updated)

    def _answer(self, sub: Subscription) -> Any:
        request = self._request(sub)
        request.response_nonce = sub.nonce
        return request

    def _request(self, sub: Subscription) -> Any:
        return self._with_node(discovery_pb2.DeltaDiscoveryRequest(type_url=sub.type_url))
