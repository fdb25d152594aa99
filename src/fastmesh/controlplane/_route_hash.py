"""A route's `hash_policy`: the `consistentHash` of its destinations' DestinationRules, found
as Istio's route.go finds it (`hashForService`, `hashForHTTPDestination`). Not the cluster's
policy (`MeshIndex.policy`): the hash falls back field by field where the cluster's
port-level settings replace the rule's whole."""

from __future__ import annotations

from typing import Any

from ._index import MeshIndex
from ._model import ConsistentHash, Destination, TrafficPolicy

__all__ = ["destination_hash", "hash_policy", "service_hash"]

Json = dict[str, Any]


def _hash(policy: TrafficPolicy | None) -> ConsistentHash | None:
    lb = policy.load_balancer if policy is not None else None
    return lb.consistent_hash if lb is not None else None


def _port_hash(policy: TrafficPolicy | None, port: int) -> ConsistentHash | None:
    """The hash of `policy`'s `portLevelSettings` entry for `port` (0: none is looked at)."""
    if policy is None or not port:
        return None
    return _hash(policy.port_settings.get(port))


def service_hash(index: MeshIndex, hostname: str, port: int) -> ConsistentHash | None:
    """The hash of a service's default route on `port` (no VirtualService): the rule's
    port-level one for the port, else the rule's."""
    rule = index.rules.get(hostname)
    if rule is None:
        return None
    return _port_hash(rule.policy, port) or _hash(rule.policy)


def destination_hash(index: MeshIndex, hostname: str, dest: Destination) -> ConsistentHash | None:
    """The hash of a route destination (`hostname` its resolved host): the first set of the
    subset's port-level one, the subset's, the rule's port-level one, the rule's. Port-level
    settings count only when the destination names its `port` (Istio's
    `portLevelSettingsConsistentHash`)."""
    rule = index.rules.get(hostname)
    if rule is None:
        return None
    subset = index.subset(hostname, dest.subset) if dest.subset else None
    own = subset.policy if subset is not None else None
    return (
        _port_hash(own, dest.port)
        or _hash(own)
        or _port_hash(rule.policy, dest.port)
        or _hash(rule.policy)
    )


def hash_policy(ch: ConsistentHash | None) -> list[Json]:
    """Envoy's `hash_policy` entries for a consistent hash (none for None)."""
    if ch is None:
        return []
    if ch.kind == "header":
        return [{"header": {"header_name": ch.name}}]
    if ch.kind == "query":
        return [{"query_parameter": {"name": ch.name}}]
    if ch.kind == "source_ip":
        return [{"connection_properties": {"source_ip": True}}]
    cookie: Json = {"name": ch.name}
    if ch.ttl is not None:
        cookie["ttl"] = f"{ch.ttl:.3f}s"
    return [{"cookie": cookie}]
