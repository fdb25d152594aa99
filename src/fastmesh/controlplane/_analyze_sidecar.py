"""`fastmesh analyze` findings about Sidecars: selectors that select nothing, workloads or
namespaces with more than one Sidecar, egress hosts that import no service, routes and rules
for hosts no Sidecar imports; and the kinds of proxy analysis translates for."""

from __future__ import annotations

from ._errors import Finding
from ._index import MeshIndex
from ._model_security import ROOT_NAMESPACE
from ._model_sidecar import NO_NAMESPACE, EgressHost, Sidecar
from ._proxy import ProxyInfo
from ._scope import scope_for

__all__ = ["analysis_proxies", "sidecar_findings"]


def analysis_proxies(index: MeshIndex) -> list[ProxyInfo]:
    """A proxy of each kind the mesh's namespaces may have: per namespace one without labels
    (its Sidecar without selector, else the mesh default, else none applies) and one with
    the labels of each selecting Sidecar there (that one, or an earlier one, applies)."""
    namespaces = {s.namespace for s in index.services.values()}
    namespaces |= {w.namespace for w in index.config.workloads} | set(index.sidecars)
    proxies: list[ProxyInfo] = []
    for ns in sorted(namespaces or {"default"}):
        own = index.sidecars.get(ns, ())
        selectors = {tuple(sorted(s.selector.items())) for s in own if s.selector}
        proxies += [ProxyInfo("analyze", ns, labels=labels) for labels in [(), *sorted(selectors)]]
    return proxies


def sidecar_findings(index: MeshIndex) -> list[Finding]:
    sidecars = sorted(index.config.sidecars, key=lambda s: (s.namespace, s.name))
    out = _unselecting(index, sidecars)
    out += _conflicts(index, sidecars)
    out += _dangling_hosts(index, sidecars)
    out += _unimported(index)
    return out


def _where(sidecar: Sidecar) -> str:
    return f"{sidecar.source}: Sidecar {sidecar.namespace}/{sidecar.name}"


def _unselecting(index: MeshIndex, sidecars: list[Sidecar]) -> list[Finding]:
    """FM0011 (Istio: IST0101 on the selector): a workloadSelector matching no WorkloadEntry
    of its namespace. A warning: a proxy's own `LABELS` may still match."""
    return [
        Finding(
            "Warning",
            "FM0011",
            f"{_where(s)}: spec.workloadSelector.labels: selects no WorkloadEntry of "
            f"namespace {s.namespace}",
        )
        for s in sidecars
        if s.selector
        and not any(w.matches(s.selector) for w in index.by_namespace.get(s.namespace, []))
    ]


def _conflicts(index: MeshIndex, sidecars: list[Sidecar]) -> list[Finding]:
    """IST0110: a workload several selecting Sidecars match; IST0111: a namespace with
    several Sidecars without selector. Istio leaves which applies undefined; fastmesh
    takes the first by name, so these are warnings."""
    out: list[Finding] = []
    namespaces = sorted({s.namespace for s in sidecars})
    for ns in namespaces:
        own = [s for s in sidecars if s.namespace == ns]
        plain = [s.name for s in own if s.selector is None]
        if len(plain) > 1:
            out += [
                Finding(
                    "Warning",
                    "IST0111",
                    f"{_where(s)}: spec.workloadSelector: the Sidecars {', '.join(plain)} "
                    f"of namespace {ns} have no workload selector; only {plain[0]} applies",
                )
                for s in own
                if s.selector is None
            ]
        selecting = [s for s in own if s.selector]
        for w in index.by_namespace.get(ns, []):
            names = [s.name for s in selecting if s.selector and w.matches(s.selector)]
            if len(names) > 1:
                first = next(s for s in selecting if s.name == names[1])
                out.append(
                    Finding(
                        "Warning",
                        "IST0110",
                        f"{_where(first)}: spec.workloadSelector: the Sidecars "
                        f"{', '.join(names)} select workload {ns}/{w.name}; only {names[0]} "
                        "applies to it",
                    )
                )
    return out


def _dangling_hosts(index: MeshIndex, sidecars: list[Sidecar]) -> list[Finding]:
    """FM0012: an egress host importing no service (`~/...` imports none on purpose)."""
    out: list[Finding] = []
    for s in sidecars:
        for i, egress in enumerate(s.egress):
            for j, host in enumerate(egress.hosts):
                if host.namespace != NO_NAMESPACE and not _imports_any(index, s, host):
                    out.append(
                        Finding(
                            "Warning",
                            "FM0012",
                            f"{_where(s)}: spec.egress[{i}].hosts[{j}]: {host} names no service",
                        )
                    )
    return out


def _imports_any(index: MeshIndex, sidecar: Sidecar, host: EgressHost) -> bool:
    """Whether `host` matches some service; `.` of the mesh's default Sidecar (root
    namespace, no selector) is each proxy's namespace: any will do."""
    mesh_default = sidecar.namespace == ROOT_NAMESPACE and sidecar.selector is None
    for hostname, svc in index.services.items():
        own = svc.namespace if mesh_default else sidecar.namespace
        if host.matches(svc.namespace, hostname, own):
            return True
    return False


def _unimported(index: MeshIndex) -> list[Finding]:
    """FM0013: with a mesh default Sidecar (root namespace, no selector) every proxy is
    scoped; a VirtualService or DestinationRule host that no kind of proxy imports (virtual
    hosts and listeners; clusters) configures nothing. Without a mesh default a proxy of a
    namespace the config does not name has everything: nothing to find."""
    if not any(s.selector is None for s in index.sidecars.get(ROOT_NAMESPACE, ())):
        return []
    scopes = [s for p in analysis_proxies(index) if (s := scope_for(index, p)) is not None]
    routed = set().union(*(s.hostnames for s in scopes))
    sent = set().union(*(s.clusters for s in scopes))
    out: list[Finding] = []
    for vs in index.config.virtual_services:
        for i, host in enumerate(vs.hosts):
            hostname = vs.resolve(host)
            if index.routes.get(hostname) is vs and hostname not in routed:
                out.append(
                    Finding(
                        "Warning",
                        "FM0013",
                        f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.hosts[{i}]: "
                        f"no Sidecar imports {hostname}: no proxy is sent these routes",
                    )
                )
    for dr in index.config.destination_rules:
        hostname = dr.hostname
        if index.rules.get(hostname) is dr and hostname in index.services and hostname not in sent:
            out.append(
                Finding(
                    "Warning",
                    "FM0013",
                    f"{dr.source}: DestinationRule {dr.namespace}/{dr.name}: spec.host: no "
                    f"Sidecar imports {hostname}: no proxy is sent its clusters",
                )
            )
    return out
