"""Istio's `Sidecar` as the control plane sees it: which services a proxy is sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # _model imports this module
    from ._model import Protocol

__all__ = ["EgressHost", "EgressListener", "Sidecar"]

#: `egress[].hosts` namespace parts with a meaning of their own (Istio's).
ANY_NAMESPACE = "*"
OWN_NAMESPACE = "."
NO_NAMESPACE = "~"


@dataclass(frozen=True, slots=True)
class EgressHost:
    """One `namespace/dnsName` entry of `egress[].hosts`."""

    namespace: str
    dns_name: str

    def matches(self, namespace: str, hostname: str, own: str) -> bool:
        """Whether a service of `namespace` named `hostname` is imported, `.` being `own`
        (the proxy's namespace). Istio's host match: `*`, a `*.suffix` wildcard, or equal."""
        ns = own if self.namespace == OWN_NAMESPACE else self.namespace
        if ns == NO_NAMESPACE or ns not in (ANY_NAMESPACE, namespace):
            return False
        if self.dns_name == "*":
            return True
        if self.dns_name.startswith("*."):
            return hostname.endswith(self.dns_name[1:])
        return hostname == self.dns_name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.dns_name}"


@dataclass(frozen=True, slots=True)
class EgressListener:
    """`egress[]`: the services of `hosts`; on `port` only, or (0) on every port no other
    listener of the Sidecar names (the catch-all)."""

    hosts: tuple[EgressHost, ...]
    port: int = 0
    #: `port.protocol`: the outbound listener's on `port` (None: its services' own).
    protocol: Protocol | None = None


@dataclass(frozen=True, slots=True)
class Sidecar:
    name: str
    namespace: str
    #: `workloadSelector.labels`; None: the whole namespace (the mesh, in the root namespace).
    selector: Mapping[str, str] | None
    #: In order, the catch-all (if any) last; empty: every service (Istio's default).
    egress: tuple[EgressListener, ...]
    source: str = ""

    @property
    def uses_own_namespace(self) -> bool:
        """Whether a host names `.`: its scope then depends on the proxy's namespace."""
        return any(h.namespace == OWN_NAMESPACE for e in self.egress for h in e.hosts)
