"""`fastmesh analyze DIR`: every problem of a mesh config at once, as `istioctl analyze`
reports them. Schema problems (from loading), what translation finds (dangling hosts and
subsets, conflicting VirtualServices or DestinationRules, ServiceEntry hosts taken, shared
TCP ports), and what only a whole-config look finds (selectors that select nothing,
PeerAuthentications that contradict each other at one scope, AuthorizationPolicy mistakes:
`_analyze_authz`, Sidecar mistakes: `_analyze_sidecar`, http and tcp rules and matches no
request reaches: `_analyze_routes`). Translation's findings are its own warnings, so the
analysis and the running control plane can never disagree."""

from __future__ import annotations

from collections.abc import Iterable

from ._analyze_authz import authorization_findings
from ._analyze_routes import route_findings
from ._analyze_sidecar import analysis_proxies, sidecar_findings
from ._errors import Finding, Problem
from ._index import MeshIndex
from ._model import MeshConfig, Resolution
from ._proxy import ProxyInfo
from ._scope import scope_for
from ._translate import translate

__all__ = ["analyze"]

_ORDER = {"Error": 0, "Warning": 1, "Info": 2}


def analyze(config: MeshConfig, problems: Iterable[Problem]) -> list[Finding]:
    """Every finding, errors first, each once."""
    found = [Finding("Error", "IST0106", str(p)) for p in problems]  # SchemaValidationError
    index = MeshIndex(config)
    found += _translation_findings(config, index)
    found += _selectors(index)
    found += _peer_authentication_conflicts(config)
    found += authorization_findings(config)
    found += _passthrough_entries(config)
    found += sidecar_findings(index)
    found += route_findings(config)
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda f: (_ORDER[f.severity], f.text))


#: Translation findings about what one proxy is sent at once (a port, a domain or an SNI
#: name several services share): a Sidecar that imports only one of them leaves nothing.
_PER_PROXY_CODES = {"FM0002", "FM0007", "FM0015"}


def _translation_findings(config: MeshConfig, index: MeshIndex) -> list[Finding]:
    """What translating finds for each kind of proxy (`analysis_proxies`): a Sidecar's scope
    for the scoped ones, everything for the others. Every VirtualService's references are
    resolved all the same (an unscoped translation), scoped or not."""
    out: list[Finding] = []
    proxies = analysis_proxies(index)
    for namespace in sorted({p.namespace for p in proxies}):
        kinds = [p for p in proxies if p.namespace == namespace]
        scoped = [p for p in kinds if scope_for(index, p) is not None]
        everything = translate(config, ProxyInfo("analyze", namespace)).warnings
        if len(scoped) < len(kinds):
            out += everything
        else:
            out += [w for w in everything if w.code not in _PER_PROXY_CODES]
        for proxy in scoped:
            out += translate(config, proxy, scoped=True).warnings
    return out


def _selectors(index: MeshIndex) -> list[Finding]:
    out = []
    for hostname, svc in sorted(index.services.items()):
        if svc.selector and not index.workloads(svc):
            field = "spec.selector" if svc.entry is None else "spec.workloadSelector.labels"
            out.append(
                Finding(
                    "Warning",
                    "FM0004",
                    f"{svc.source}: {svc.resource}: {field}: selects no WorkloadEntry (its "
                    "clusters have no endpoints)",
                )
            )
        rule = index.rules.get(hostname)
        if rule is None:
            continue
        for i, subset in enumerate(rule.subsets):
            if index.workloads(svc) and not index.workloads(svc, dict(subset.labels)):
                out.append(
                    Finding(
                        "Warning",
                        "FM0005",
                        f"{rule.source}: DestinationRule {rule.namespace}/{rule.name}: "
                        f"spec.subsets[{i}].labels: subset {subset.name!r} selects no "
                        f"workload of {hostname}",
                    )
                )
    return out


def _passthrough_entries(config: MeshConfig) -> list[Finding]:
    """Resolution NONE: Envoy takes its ORIGINAL_DST cluster, a fastmesh sidecar NACKs it."""
    return [
        Finding(
            "Info",
            "FM0010",
            f"{e.source}: ServiceEntry {e.namespace}/{e.name}: spec.resolution: NONE is an "
            "ORIGINAL_DST cluster, which fastmesh sidecars refuse (NACK); Envoy sidecars take it",
        )
        for e in config.service_entries
        if e.resolution is Resolution.NONE
    ]


def _peer_authentication_conflicts(config: MeshConfig) -> list[Finding]:
    """Two PeerAuthentications for one scope (namespace and selector): only one applies."""
    first: dict[tuple[str, tuple[tuple[str, str], ...] | None], str] = {}
    out = []
    for pa in sorted(config.peer_authentications, key=lambda p: (p.namespace, p.name)):
        scope = (pa.namespace, tuple(sorted(pa.selector.items())) if pa.selector else None)
        if scope in first:
            out.append(
                Finding(
                    "Warning",
                    "FM0006",
                    f"{pa.source}: PeerAuthentication {pa.namespace}/{pa.name}: spec: same scope "
                    f"as {first[scope]}, which applies (the first by name)",
                )
            )
        else:
            first[scope] = pa.name
    return out
