"""Services, ServiceEntry hosts and VirtualServices -> one Envoy RouteConfiguration per outbound
HTTP port."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import Finding
from ._index import MeshIndex, cluster_name
from ._model import (
    Destination,
    HttpMatch,
    HttpRoute,
    Retries,
    Service,
    VirtualService,
)
from ._proxy import ProxyInfo
from ._route_hash import destination_hash, hash_policy, service_hash
from ._scope import Scope, listener_protocol
from ._translate_http import (
    cors_config,
    fault_config,
    header_fields,
    mirror_policy,
    redirect_action,
    rewrite_fields,
    string_matcher,
)

__all__ = ["domains", "prepare_routes", "route_config"]

Json = dict[str, Any]

#: Istio's default retry policy, applied to routes that do not set `retries`.
DEFAULT_RETRIES = Retries(2, None, "connect-failure,refused-stream,unavailable,cancelled,503")


def domains(svc: Service, port: int, own_namespace: bool) -> tuple[str, ...]:
    """The names a client may use for `svc` (Istio's list): for a Service its FQDN, the
    `.svc` and `name.namespace` forms, and the short name from its `own_namespace`; for a
    ServiceEntry host the host as written and the entry's addresses."""
    if svc.entry is not None:
        names = [svc.hostname, *(a for a in svc.entry.addresses if "/" not in a)]
    else:
        names = [svc.hostname, f"{svc.name}.{svc.namespace}.svc", f"{svc.name}.{svc.namespace}"]
        if own_namespace:
            names.append(svc.name)
    return tuple(d for name in names for d in (name, f"{name}:{port}"))


@dataclass(slots=True)
class VhostPlan:
    """One HTTP service on one port as every route config lists it (once per index and
    Sidecar scope): route configs differ by proxy only in which domains they take."""

    svc: Service
    vs: VirtualService | None
    #: Whether its matches depend on the proxy (`sourceLabels`, `port`, ...).
    selective: bool
    #: Its domains seen from another namespace, and from its own (with the short name).
    domains_elsewhere: tuple[str, ...]
    domains_at_home: tuple[str, ...]
    #: Its virtual host in route configs elsewhere and at home, when not `selective` (built
    #: on first use: every proxy outside a Sidecar scope takes one of the two).
    away: Json | None = None
    home: Json | None = None


@dataclass(frozen=True, slots=True)
class RouteTable:
    """The virtual hosts of one port's route configs, per index and Sidecar scope."""

    plans: list[VhostPlan]
    #: No route config, whatever its proxy's namespace, names a domain twice: the domains
    #: need no check per proxy (FM0007).
    clash_free: bool


def route_table(index: MeshIndex, port: int, scope: Scope | None) -> RouteTable:
    """The services a route config for `port` lists, by hostname (`scope`: those it shows
    there; None: every one), each with what does not depend on the proxy."""
    key = (port, scope.key if scope is not None else None)
    table = index.route_tables.get(key)
    if table is not None:
        return table
    services = index.by_port.get(port, [])
    if scope is not None:  # by hostname, as `by_port`; a small scope needs not look at all
        services = [index.services[h] for h in scope.hostnames if scope.visible(port, h)]
    plans: list[VhostPlan] = []
    for svc in services:
        sp = svc.port(port)
        if sp is None or not listener_protocol(scope, sp).is_http:
            continue
        plans.append(
            VhostPlan(
                svc,
                index.routes.get(svc.hostname),
                svc.hostname in index.selective_routes,
                domains(svc, port, own_namespace=False),
                domains(svc, port, own_namespace=True),
            )
        )
    table = index.route_tables[key] = RouteTable(plans, _clash_free(plans))
    return table


def _clash_free(plans: list[VhostPlan]) -> bool:
    """Whether each domain names one service in every namespace's view. A proxy sees every
    plan's domains from elsewhere, and its own namespace's short names besides."""
    elsewhere = [d for plan in plans for d in plan.domains_elsewhere]
    taken = set(elsewhere)
    if len(taken) != len(elsewhere):
        return False
    short: dict[str, set[str]] = {}
    for plan in plans:
        extra = plan.domains_at_home[len(plan.domains_elsewhere) :]
        names = short.setdefault(plan.svc.namespace, set())
        if not names.isdisjoint(extra) or not taken.isdisjoint(extra):
            return False
        names.update(extra)
    return True


def prepare_routes(index: MeshIndex, ports: list[int]) -> list[Json]:
    """The virtual hosts of `ports` as route configs outside a Sidecar scope list them from
    another namespace: built once per config, before a proxy asks (as Istio builds its push
    context), so each kind of proxy only adds its own namespace's."""
    out: list[Json] = []
    for port in ports:
        for plan in route_table(index, port, None).plans:
            if not plan.selective:
                out.append(_shared_vhost(index, plan, port, at_home=False))
    return out


def _match(m: HttpMatch) -> Json:
    out: Json = {}
    if m.uri is None:
        out["prefix"] = "/"
    elif m.uri.kind == "exact":
        out["path"] = m.uri.value
    elif m.uri.kind == "prefix":
        out["prefix"] = m.uri.value
    else:
        out["safe_regex"] = {"regex": m.uri.value}
    headers = [{"name": n, "string_match": string_matcher(sm)} for n, sm in m.headers.items()]
    if m.method is not None:
        headers.append({"name": ":method", "string_match": string_matcher(m.method)})
    if headers:
        out["headers"] = headers
    if m.query_params:
        out["query_parameters"] = [
            {"name": n, "string_match": string_matcher(sm)} for n, sm in m.query_params.items()
        ]
    return out


def _seconds(value: float) -> str:
    return f"{value:.3f}s"


def _retry_policy(retries: Retries) -> Json | None:
    if retries.attempts == 0:
        return None
    words = [w.strip() for w in (retries.retry_on or DEFAULT_RETRIES.retry_on).split(",")]
    codes = [int(w) for w in words if w.isdigit()]
    on = [w for w in words if w and not w.isdigit()]
    if codes:
        on.append("retriable-status-codes")
    policy: Json = {"retry_on": ",".join(on), "num_retries": retries.attempts}
    if codes:
        policy["retriable_status_codes"] = codes
    if retries.per_try_timeout is not None:
        policy["per_try_timeout"] = _seconds(retries.per_try_timeout)
    return policy


#: The policy of every route without `retries`: one document, shared (never modified).
_DEFAULT_RETRY_POLICY = _retry_policy(DEFAULT_RETRIES)


class _Routes:
    """Builds the routes of one virtual host, collecting warnings for dangling references."""

    def __init__(self, index: MeshIndex, svc: Service, port: int) -> None:
        self.index = index
        self.svc = svc
        self.port = port

    def _cluster(self, vs: VirtualService, where: str, dest: Destination) -> str:
        return self.index.destination_cluster(vs, where, dest, self.port)

    def _action(self, vs: VirtualService, where: str, route: HttpRoute) -> Json:
        named = [
            (self._cluster(vs, f"{where}.route[{i}].destination", rd.destination), rd.weight)
            for i, rd in enumerate(route.route)
        ]
        action: Json
        if len(named) == 1:
            action = {"cluster": named[0][0]}
        else:
            action = {
                "weighted_clusters": {
                    "clusters": [{"name": n, "weight": w} for n, w in named if w > 0]
                }
            }
        # each destination's hash, as Istio appends them (a weighted one's when its weight
        # is not 0): `destination_hash`, not its cluster's load balancer
        hashes = [
            entry
            for rd in route.route
            if len(route.route) == 1 or rd.weight
            for entry in hash_policy(
                destination_hash(self.index, vs.resolve(rd.destination.host), rd.destination)
            )
        ]
        if hashes:
            action["hash_policy"] = hashes
        mirrors = [
            mirror_policy(self._cluster(vs, f"{where}.{m.field}", m.destination), m.percent)
            for m in route.mirrors
        ]
        if mirrors:
            action["request_mirror_policies"] = mirrors
        action.update(rewrite_fields(route.rewrite))
        action["timeout"] = _seconds(route.timeout) if route.timeout is not None else "0s"
        policy = _DEFAULT_RETRY_POLICY if route.retries is None else _retry_policy(route.retries)
        if policy is not None:
            action["retry_policy"] = policy
        return action

    def _entry(self, vs: VirtualService, where: str, route: HttpRoute) -> Json:
        """Everything of an Envoy Route but its name and match."""
        entry: Json
        if route.redirect is not None:
            entry = {"redirect": redirect_action(route.redirect)}
        else:
            entry = {"route": self._action(vs, where, route)}
        entry.update(header_fields(route.request_headers, route.response_headers))
        per_filter = {**fault_config(route.fault), **cors_config(route.cors)}
        if per_filter:
            entry["typed_per_filter_config"] = per_filter
        return entry

    def build(self, vs: VirtualService | None, chosen: Selection | None = None) -> list[Json]:
        """The routes of `vs` (those of `chosen` matches; None: every match up to the first
        catch-all, `_chosen`), else the default one."""
        if vs is None:
            return [{"name": "default", "match": {"prefix": "/"}, "route": self._default()}]
        emitted = set(_chosen(vs, _everywhere) if chosen is None else chosen)
        routes: list[Json] = []
        for i, route in enumerate(vs.http):
            where = f"{vs.source}: VirtualService {vs.namespace}/{vs.name}: spec.http[{i}]"
            # built even when none of its matches is chosen (or a catch-all before it hides
            # it): a dangling destination is a finding for every proxy (and for `analyze`)
            entry = self._entry(vs, where, route)
            for j, m in enumerate(_matches(route)):
                if (i, j) not in emitted:
                    continue
                name = route.name or f"{vs.name}.{i}"
                routes.append({"name": f"{name}.{j}", "match": _match(m), **entry})
        return routes

    def _default(self) -> Json:
        """No VirtualService: everything to the service's own cluster, Istio's defaults."""
        action: Json = {"cluster": cluster_name(self.port, "", self.svc.hostname), "timeout": "0s"}
        hashes = hash_policy(service_hash(self.index, self.svc.hostname, self.port))
        if hashes:
            action["hash_policy"] = hashes
        policy = _DEFAULT_RETRY_POLICY
        if policy is not None:
            action["retry_policy"] = policy
        return action


#: (route, match) indexes into a VirtualService's `http` routes and their matches.
Selection = tuple[tuple[int, int], ...]


def _matches(route: HttpRoute) -> tuple[HttpMatch, ...]:
    """A route's matches; one that matches everything when it has none."""
    return route.matches or (HttpMatch(),)


def _chosen(vs: VirtualService, applies: Callable[[HttpMatch], bool]) -> Selection:
    """The matches of `vs` a route config has: those that `applies` to it, in order, up to
    the first catch-all among them (Istio's `BuildHTTPRoutesForVirtualService`). Envoy takes
    the first route that matches, so nothing after a route without matches, or after a
    match taking every request (`HttpMatch.catch_all`), could be reached: Istio stops there,
    also within one route's matches. A catch-all that does not apply (another port, another
    source) hides nothing."""
    out: list[tuple[int, int]] = []
    for i, route in enumerate(vs.http):
        for j, m in enumerate(_matches(route)):
            if applies(m):
                out.append((i, j))
                if m.catch_all:
                    return tuple(out)
    return tuple(out)


def _everywhere(_: HttpMatch) -> bool:
    """A VirtualService without selective matches: each applies to every route config."""
    return True


def _chosen_for(
    vs: VirtualService, port: int, proxy: ProxyInfo, labels: Mapping[str, str]
) -> Selection:
    """The matches of `vs` the proxy's route config for `port` has (`HttpMatch.applies`)."""
    return _chosen(vs, lambda m: m.applies(port, proxy.namespace, labels))


def _routes(
    index: MeshIndex, svc: Service, port: int, vs: VirtualService | None, chosen: Selection | None
) -> list[Json]:
    """A virtual host's routes, shared by its variants (with and without the short name)."""
    key = (svc.hostname, port, chosen)
    routes = index.vhost_routes.get(key)
    if routes is None:
        routes = index.vhost_routes[key] = _Routes(index, svc, port).build(vs, chosen)
    return routes


def _shared_vhost(index: MeshIndex, plan: VhostPlan, port: int, at_home: bool) -> Json:
    """A non-selective plan's virtual host, at home or elsewhere (each built once)."""
    vhost = plan.home if at_home else plan.away
    if vhost is None:
        names = plan.domains_at_home if at_home else plan.domains_elsewhere
        vhost = _vhost(index, plan, port, names, None)
        if at_home:
            plan.home = vhost
        else:
            plan.away = vhost
    return vhost


def _vhost(
    index: MeshIndex, plan: VhostPlan, port: int, names: tuple[str, ...], chosen: Selection | None
) -> Json:
    """A host's virtual host differs between proxies only in its domains (the short name in
    its own namespace) and in the matches that apply to them (`sourceLabels`,
    `sourceNamespace`): one document per case, shared by every route config (and scope)."""
    svc = plan.svc
    key = (svc.hostname, port, names, chosen)
    vhost = index.virtual_hosts.get(key)
    if vhost is None:
        vhost = index.virtual_hosts[key] = {
            "name": f"{svc.hostname}:{port}",
            "domains": list(names),
            "routes": _routes(index, svc, port, plan.vs, chosen),
        }
    return vhost


def route_config(index: MeshIndex, port: int, proxy: ProxyInfo, scope: Scope | None = None) -> Json:
    """`RouteConfiguration` named `"9080"`: a virtual host per HTTP service on that port
    (that `scope` shows there; None: every one)."""
    labels = index.proxy_labels(proxy) if index.selective_routes else {}
    table = route_table(index, port, scope)
    vhosts: list[Json] = []
    taken: set[str] | None = None if table.clash_free else set()
    for plan in table.plans:
        at_home = plan.svc.namespace == proxy.namespace
        if taken is None and not plan.selective:
            vhosts.append(_shared_vhost(index, plan, port, at_home))
            continue
        svc = plan.svc
        names = plan.domains_at_home if at_home else plan.domains_elsewhere
        if taken is not None:
            if not taken.isdisjoint(names):
                # Envoy refuses a route config naming one domain twice (ServiceEntries
                # sharing an address): the first service by hostname keeps it.
                clashes = [d for d in names if d in taken]
                index.warnings.append(
                    Finding(
                        "Warning",
                        "FM0007",
                        f"{svc.source}: {svc.resource}: port {port}: {', '.join(clashes)} "
                        "already name another service; not routed to this one",
                    )
                )
                names = tuple(d for d in names if d not in taken)
                if not names:
                    continue
            taken.update(names)
        vs = plan.vs
        chosen = _chosen_for(vs, port, proxy, labels) if vs is not None and plan.selective else None
        vhosts.append(_vhost(index, plan, port, names, chosen))
    return {"name": str(port), "virtual_hosts": vhosts, "validate_clusters": False}
