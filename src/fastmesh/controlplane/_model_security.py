"""Istio's security resources as the control plane sees them: PeerAuthentication (which mTLS
a workload's inbound ports accept) and AuthorizationPolicy (who may call it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "ROOT_NAMESPACE",
    "AuthorizationPolicy",
    "Condition",
    "MtlsMode",
    "Operation",
    "PeerAuthentication",
    "Rule",
    "Source",
]

#: Istio's root namespace: policies there apply to the whole mesh.
ROOT_NAMESPACE = "istio-system"


class MtlsMode(Enum):
    """`PeerAuthentication.mtls.mode`. UNSET inherits from the wider scope."""

    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


@dataclass(frozen=True, slots=True)
class PeerAuthentication:
    name: str
    namespace: str
    #: `selector.matchLabels`; None: the whole namespace (the mesh, in the root namespace).
    selector: Mapping[str, str] | None
    mode: MtlsMode = MtlsMode.UNSET
    #: `portLevelMtls`: workload port -> mode (only with a selector, as in Istio).
    port_modes: Mapping[int, MtlsMode] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True, slots=True)
class Source:
    """`rules[].from[].source`: every field set must match (lists: any value)."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """`rules[].to[].operation`: every field set must match (lists: any value)."""

    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    not_ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    """`rules[].when[]`: `key` (`request.headers[name]`, `source.ip`, `source.namespace`,
    `source.principal`, `destination.port`) matching any of `values`, none of `not_values`."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches when any `sources` (none: any), any `operations` (none: any) and every
    `conditions` match."""

    sources: tuple[Source, ...] = ()
    operations: tuple[Operation, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy:
    name: str
    namespace: str
    selector: Mapping[str, str] | None
    #: "ALLOW" or "DENY".
    action: str
    #: No rules: matches nothing (an ALLOW policy without rules denies everything).
    rules: tuple[Rule, ...] = ()
    source: str = ""

    def applies_to(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Istio's scope: the policy's namespace (the root namespace: every namespace), and
        the selector, if any, matching the workload's labels."""
        if self.namespace not in (namespace, ROOT_NAMESPACE):
            return False
        return self.selector is None or all(labels.get(k) == v for k, v in self.selector.items())
