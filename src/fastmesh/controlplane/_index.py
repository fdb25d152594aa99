"""Lookups translation needs: services by hostname, and the rule and route for each host."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import Finding
from ._model import (
    Destination,
    DestinationRule,
    MeshConfig,
    Service,
    Subset,
    TrafficPolicy,
    VirtualService,
    Workload,
)
from ._model_sidecar import Sidecar
from ._proxy import ProxyInfo

if TYPE_CHECKING:
    from ._translate_listeners import PortPlan
    from ._translate_routes import RouteTable

__all__ = ["MeshIndex", "cluster_name", "cluster_port"]


def cluster_name(port: int, subset: str, hostname: str) -> str:
    """Istio's outbound cluster name: `outbound|9080|v1|reviews.default.svc.cluster.local`."""
    return f"outbound|{port}|{subset}|{hostname}"


def cluster_port(name: str) -> int:
    """The port of a cluster named by `cluster_name`."""
    return int(name.split("|", 2)[1])


@dataclass
class MeshIndex:
    config: MeshConfig
    services: dict[str, Service] = field(default_factory=dict)
    rules: dict[str, DestinationRule] = field(default_factory=dict)
    routes: dict[str, VirtualService] = field(default_factory=dict)
    warnings: list[Finding] = field(default_factory=list)
    #: Workloads per namespace (a service selects only in its own).
    by_namespace: dict[str, list[Workload]] = field(default_factory=dict)
    #: Port number -> the services that have it, by hostname order.
    by_port: dict[int, list[Service]] = field(default_factory=dict)
    #: Namespace -> its services (built on first use: incremental workload changes).
    services_by_namespace: dict[str, list[Service]] = field(default_factory=dict)
    #: (namespace, label, value) -> the workloads carrying it.
    by_label: dict[tuple[str, str, str], list[Workload]] = field(default_factory=dict)
    #: (hostname, port, domains, the matches chosen or None: all) -> its virtual host
    #: document, shared by the route configs of every proxy (`_translate_routes.route_config`).
    virtual_hosts: dict[
        tuple[str, int, tuple[str, ...], tuple[tuple[int, int], ...] | None], dict[str, Any]
    ] = field(default_factory=dict)
    #: (hostname, port, the matches chosen or None: all) -> the routes of its virtual hosts.
    vhost_routes: dict[tuple[str, int, tuple[tuple[int, int], ...] | None], list[Any]] = field(
        default_factory=dict
    )
    #: (port, Sidecar scope key) -> the virtual hosts its route configs list
    #: (`_translate_routes.route_table`).
    route_tables: dict[tuple[int, Any], RouteTable] = field(default_factory=dict)
    #: Sidecar scope key (None: no Sidecar) -> its outbound ports (`outbound_ports`).
    port_plans: dict[Any, PortPlan] = field(default_factory=dict)
    #: id of a shared document (those virtual hosts) -> its encoding, for this index's life.
    encoded: dict[int, bytes] = field(default_factory=dict)
    #: Every document `encoded` holds an id of, kept alive as long as it: the encoder
    #: memoizes each repeated message by id, and a freed document's id is soon another's.
    encoded_documents: list[object] = field(default_factory=list)
    #: (namespace, name) -> the workload.
    by_name: dict[tuple[str, str], Workload] = field(default_factory=dict)
    #: Label keys some VirtualService's `sourceLabels` (http, tcp or tls) matches on, sorted: the
    #: part of a proxy's labels its outbound config depends on.
    source_label_keys: tuple[str, ...] = ()
    #: Hostnames whose VirtualService has http matches that apply to some proxies or ports
    #: only (`HttpMatch.selective`): their virtual hosts are built per selection of matches.
    selective_routes: frozenset[str] = frozenset()
    #: (Sidecar namespace, name, namespace of `.`) -> its `_scope.Scope`, built on demand
    #: (scopes do not depend on workloads: `with_workloads` shares them).
    scopes: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    #: Namespace -> its Sidecars, by name (the first applies where several could).
    sidecars: dict[str, list[Sidecar]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for svc in self.config.services:
            self.services[svc.hostname] = svc
        for entry in self.config.service_entries:
            for i, svc in enumerate(entry.services()):
                self._add_entry_host(svc, i)
        for _, svc in sorted(self.services.items()):
            for port in svc.ports:
                self.by_port.setdefault(port.number, []).append(svc)
        for sidecar in sorted(self.config.sidecars, key=lambda s: s.name):
            self.sidecars.setdefault(sidecar.namespace, []).append(sidecar)
        for w in self.config.workloads:
            self.by_namespace.setdefault(w.namespace, []).append(w)
            self.by_name.setdefault((w.namespace, w.name), w)
            for key, value in w.labels.items():
                self.by_label.setdefault((w.namespace, key, value), []).append(w)
        for dr in self.config.destination_rules:
            if dr.hostname in self.rules:
                self.warnings.append(
                    Finding(
                        "Warning",
                        "FM0001",
                        f"{dr.source}: DestinationRule {dr.namespace}/{dr.name}: host "
                        f"{dr.hostname} already has DestinationRule "
                        f"{self.rules[dr.hostname].name}; ignored",
                    )
                )
                continue
            if dr.hostname not in self.services:
                self.warnings.append(
                    Finding(
                        "Error",
                        "IST0101",
                        f"{dr.source}: DestinationRule {dr.namespace}/{dr.name}: spec.host: "
                        f"unknown service {dr.hostname}",
                    )
                )
            self.rules[dr.hostname] = dr
        for vs in self.config.virtual_services:
            if not vs.applies_to_sidecars:
                continue
            for i, host in enumerate(vs.hosts):
                hostname = vs.resolve(host)
                if hostname in self.routes:
                    self.warnings.append(
                        Finding(
                            "Warning",
                            "IST0109",
                            f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: "
                            f"spec.hosts[{i}]: {hostname} is already routed by "
                            f"{self.routes[hostname].name}; ignored",
                        )
                    )
                elif hostname not in self.services:
                    self.warnings.append(
                        Finding(
                            "Error",
                            "IST0101",
                            f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: "
                            f"spec.hosts[{i}]: unknown service {hostname}",
                        )
                    )
                else:
                    self.routes[hostname] = vs
        http = [(h, m) for h, vs in self.routes.items() for r in vs.http for m in r.matches]
        tcp = [m for vs in self.routes.values() for r in vs.tcp for m in r.matches]
        tls = [m for vs in self.routes.values() for r in vs.tls for m in r.matches]
        keys = {k for _, m in http if not m.gateways for k in m.source_labels}
        keys.update(k for m in (*tcp, *tls) for k in m.source_labels)
        self.source_label_keys = tuple(sorted(keys))
        self.selective_routes = frozenset(h for h, m in http if m.selective)

    def with_workloads(
        self, config: MeshConfig, gone: Sequence[Workload], new: Sequence[Workload]
    ) -> MeshIndex:
        """This index for `config`, which differs from this one's only in workloads (`gone`
        replaced by `new`): the per-workload lookups are patched, everything else (services,
        rules, routes, the virtual hosts already built) is shared."""
        out = copy.copy(self)
        out.config = config
        out.warnings = list(self.warnings)
        out.by_namespace = dict(self.by_namespace)
        out.by_label = dict(self.by_label)
        out.by_name = dict(self.by_name)
        for w in gone:
            if out.by_name.get((w.namespace, w.name)) is w:
                del out.by_name[w.namespace, w.name]
        for w in new:
            out.by_name.setdefault((w.namespace, w.name), w)
        # a workload redefined under its name takes its predecessor's place in each lookup,
        # and one that is new to a lookup joins it in config order: the endpoints come out
        # as a full translation orders them (replicas serve identical bytes)
        successor = {(w.namespace, w.name): w for w in new}
        replaced = {id(w): successor.get((w.namespace, w.name)) for w in gone}
        position: dict[int, int] = {}

        def patched(bucket: list[Workload], key: str | tuple[str, str, str]) -> list[Workload]:
            kept: list[Workload] = []
            for w in bucket:
                if id(w) not in replaced:
                    kept.append(w)
                elif (heir := replaced[id(w)]) is not None and _filed_under(heir, key):
                    kept.append(heir)
            placed = set(map(id, kept))
            joining = [w for w in new if id(w) not in placed and _filed_under(w, key)]
            if not joining:
                return kept
            if not position:
                position.update((id(w), i) for i, w in enumerate(config.workloads))
            return sorted(kept + joining, key=lambda w: position[id(w)])

        moved = [*gone, *new]
        for ns in {w.namespace for w in moved}:
            out.by_namespace[ns] = patched(self.by_namespace.get(ns, []), ns)
        for key in {(w.namespace, k, v) for w in moved for k, v in w.labels.items()}:
            out.by_label[key] = patched(self.by_label.get(key, []), key)
        return out

    def services_selecting(self, workload: Workload) -> list[Service]:
        """The services whose selector picks `workload` (its namespace only)."""
        if not self.services_by_namespace:
            for svc in self.services.values():
                self.services_by_namespace.setdefault(svc.namespace, []).append(svc)
        candidates = self.services_by_namespace.get(workload.namespace, [])
        return [svc for svc in candidates if workload.matches(svc.selector)]

    def _add_entry_host(self, svc: Service, i: int) -> None:
        """A ServiceEntry host, unless a Service or an earlier entry has it (Istio merges
        some such entries; fastmesh keeps the first and says so)."""
        owner = self.services.get(svc.hostname)
        if owner is None:
            self.services[svc.hostname] = svc
            return
        self.warnings.append(
            Finding(
                "Warning",
                "FM0007",
                f"{svc.source}: {svc.resource}: spec.hosts[{i}]: {svc.hostname} is already "
                f"{owner.resource} ({owner.source}); ignored",
            )
        )

    def subsets(self, hostname: str) -> tuple[Subset, ...]:
        rule = self.rules.get(hostname)
        return rule.subsets if rule else ()

    def subset(self, hostname: str, name: str) -> Subset | None:
        return next((s for s in self.subsets(hostname) if s.name == name), None)

    def policy(self, hostname: str, subset: str = "", port: int = 0) -> TrafficPolicy | None:
        """The traffic policy of a destination's cluster on `port`, as Istio's
        `MergeSubsetTrafficPolicy` makes it: the rule's (its `portLevelSettings` entry for
        the port, whole, when it has one); then, for a subset with a policy, the subset's
        entry for the port, whole (inheriting nothing), else the subset's policy over the
        rule's, field by field."""
        rule = self.rules.get(hostname)
        if rule is None:
            return None
        base = rule.policy.at_port(port) if rule.policy is not None else None
        own = self.subset(hostname, subset) if subset else None
        if own is None or own.policy is None:
            return base
        at_port = own.policy.port_settings.get(port)
        return at_port if at_port is not None else own.policy.over(base)

    def proxy_labels(self, proxy: ProxyInfo) -> Mapping[str, str]:
        """The proxy's labels: node metadata `LABELS`, and over them the labels of its
        WorkloadEntry (`WORKLOAD_NAME`, in its namespace) when there is one."""
        w = self.by_name.get((proxy.namespace, proxy.workload)) if proxy.workload else None
        if not proxy.labels:
            return w.labels if w is not None else {}
        return {**dict(proxy.labels), **(w.labels if w is not None else {})}

    def label_key(self, proxy: ProxyInfo) -> tuple[tuple[str, str], ...]:
        """What of a proxy's labels its outbound config depends on: proxies with equal
        keys (and `ProxyInfo.translation_key`) get identical config."""
        if not self.source_label_keys:
            return ()
        labels = self.proxy_labels(proxy)
        return tuple((k, labels[k]) for k in self.source_label_keys if k in labels)

    def workloads(self, svc: Service, labels: dict[str, str] | None = None) -> list[Workload]:
        """Workloads of `svc` (its namespace, its selector; a ServiceEntry's own endpoints
        when it has no workloadSelector), narrowed by subset `labels`."""
        if svc.entry is not None and svc.entry.selector is None:
            return [w for w in svc.entry.host_endpoints(svc.hostname) if w.matches(labels or {})]
        wanted = {**svc.selector, **(labels or {})}
        candidates = min(
            (self.by_label.get((svc.namespace, k, v), []) for k, v in wanted.items()),
            key=len,
            default=self.by_namespace.get(svc.namespace, []),
        )
        return [w for w in candidates if w.matches(wanted)]

    def destination_cluster(
        self, vs: VirtualService, where: str, dest: Destination, port: int
    ) -> str:
        """The outbound cluster of a VirtualService destination reached on `port` (Istio's
        rule: its own port, else the listener's if the service has it, else its only one).
        A host or subset that does not resolve is an IST0101 finding; the cluster is still
        named (Istio's blackhole: traffic answers 503). `where` names the destination."""
        hostname = vs.resolve(dest.host)
        target = self.services.get(hostname)
        number = dest.port
        if target is None:
            self.warnings.append(
                Finding("Error", "IST0101", f"{where}.host: unknown service {hostname}")
            )
        elif not number:
            if target.port(port) is not None:
                number = port
            elif len(target.ports) == 1:
                number = target.ports[0].number
            else:
                self.warnings.append(
                    Finding(
                        "Error",
                        "FM0003",
                        f"{where}.port: {hostname} has several ports; name one",
                    )
                )
        if dest.subset and self.subset(hostname, dest.subset) is None:
            self.warnings.append(
                Finding(
                    "Error",
                    "IST0101",
                    f"{where}.subset: no DestinationRule subset {dest.subset!r} for {hostname}",
                )
            )
        return cluster_name(number or port, dest.subset, hostname)


def _filed_under(w: Workload, key: str | tuple[str, str, str]) -> bool:
    """Whether `w` belongs in `MeshIndex.by_namespace[key]` (a namespace) or
    `by_label[key]` (namespace, label, value)."""
    if isinstance(key, str):
        return w.namespace == key
    namespace, label, value = key
    return w.namespace == namespace and w.labels.get(label) == value
