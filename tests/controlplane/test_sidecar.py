"""Istio `Sidecar`: parsing, which Sidecar a proxy has, and what its scope sends it."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import struct_pb2

from fastmesh.controlplane import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    MeshConfig,
    ProxyInfo,
    Snapshot,
    SnapshotHub,
    load_documents,
    proxy_info,
    translate,
    translate_snapshot,
)
from fastmesh.controlplane._analyze import analyze
from fastmesh.controlplane._etcd_keys import load_entries
from fastmesh.controlplane._resources import changes

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: details, namespace: shop}
spec: {selector: {app: details}, ports: [{name: http, port: 9081}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: pages, namespace: ops}
spec: {selector: {app: pages}, ports: [{name: http, port: 9080}, {name: http-m, port: 9100}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 8443, name: http-api, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage, namespace: shop}
spec: {address: 10.0.0.9, labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: pages-1, namespace: ops}
spec: {address: 10.0.1.1, labels: {app: pages}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: details}
"""

REVIEWS = "reviews.shop.svc.cluster.local"
RATINGS = "ratings.shop.svc.cluster.local"
DETAILS = "details.shop.svc.cluster.local"
DB = "db.shop.svc.cluster.local"
PAGES = "pages.ops.svc.cluster.local"
API = "api.example.com"
SHOP = ProxyInfo("client.shop", "shop")
REVIEWS_V1 = ProxyInfo("reviews-v1.shop", "shop", workload="reviews-v1")
OPS = ProxyInfo("client.ops", "ops")


def sidecar(namespace: str, name: str, spec: str) -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
    )


def selecting(labels: str) -> str:
    return f"  workloadSelector: {{labels: {{{labels}}}}}\n"


def mesh(*sidecars: str) -> MeshConfig:
    config, problems = load_documents([("mesh.yaml", MESH), *(("sc.yaml", s) for s in sidecars)])
    assert problems == []
    return config


def hosts(snapshot: Snapshot) -> set[str]:
    """The services whose outbound clusters the snapshot has."""
    return {n.rsplit("|", 1)[1] for n in snapshot.of_type(CLUSTER) if n.startswith("outbound|")}


def vhosts(snapshot: Snapshot, port: int) -> set[str]:
    route = snapshot.of_type(ROUTE).get(str(port))
    if route is None:
        return set()
    return {v.name.rsplit(":", 1)[0] for v in _route(snapshot, port).virtual_hosts}


def _route(snapshot: Snapshot, port: int) -> route_pb2.RouteConfiguration:
    out = route_pb2.RouteConfiguration()
    snapshot.of_type(ROUTE)[str(port)].packed.Unpack(out)
    return out


def listeners(snapshot: Snapshot) -> set[str]:
    return set(snapshot.of_type(LISTENER))


EVERYTHING = {REVIEWS, RATINGS, DETAILS, DB, PAGES, API}


def test_without_a_sidecar_every_service_is_sent() -> None:
    snapshot = translate_snapshot(mesh(), SHOP)
    assert hosts(snapshot) == EVERYTHING
    assert vhosts(snapshot, 9080) == {REVIEWS, RATINGS, PAGES}


def test_a_namespace_sidecar_sends_only_what_its_hosts_import() -> None:
    config = mesh(sidecar("shop", "default", "  egress: [{hosts: [./*]}]\n"))
    snapshot = translate_snapshot(config, SHOP)
    assert hosts(snapshot) == {REVIEWS, RATINGS, DETAILS, DB, API}
    assert {n.rsplit("|", 1)[1] for n in snapshot.of_type(ENDPOINT)} == hosts(snapshot)
    assert vhosts(snapshot, 9080) == {REVIEWS, RATINGS}
    assert listeners(snapshot) == {f"127.0.0.1_{p}" for p in (9080, 9081, 5432, 8443)}
    # the VirtualService of a service that remains still applies
    [vhost] = [v for v in _route(snapshot, 9080).virtual_hosts if v.name.startswith(REVIEWS)]
    assert vhost.routes[0].route.cluster == f"outbound|9080|v1|{REVIEWS}"
    # a proxy of another namespace is not scoped by it
    assert hosts(translate_snapshot(config, OPS)) == EVERYTHING


def test_hosts_namespaces_and_dns_wildcards() -> None:
    cases = {
        "[ops/*]": {PAGES},
        "['*/*.example.com']": {API},
        "['*/ratings.shop.svc.cluster.local']": {RATINGS},
        "[shop/ratings.shop.svc.cluster.local, ops/ratings.shop.svc.cluster.local]": {RATINGS},
        "['ops/*.shop.svc.cluster.local']": set(),
        "['~/*']": set(),
        "['*/*']": EVERYTHING,
    }
    for listed, expected in cases.items():
        config = mesh(sidecar("shop", "default", f"  egress: [{{hosts: {listed}}}]\n"))
        assert hosts(translate_snapshot(config, SHOP)) == expected, listed


def test_virtual_service_destinations_get_clusters_but_no_routes() -> None:
    """Istio infers the destinations of an imported service's VirtualService (here its
    mirror, `details`): their clusters are sent, their listeners and virtual hosts not."""
    spec = f"  egress: [{{hosts: [shop/{REVIEWS}]}}]\n"
    snapshot = translate_snapshot(mesh(sidecar("shop", "default", spec)), SHOP)
    assert hosts(snapshot) == {REVIEWS, DETAILS}
    assert listeners(snapshot) == {"127.0.0.1_9080"}
    assert vhosts(snapshot, 9080) == {REVIEWS}


def test_a_port_listener_takes_its_port_and_the_catch_all_the_rest() -> None:
    spec = "  egress:\n  - {port: {number: 9080, protocol: HTTP, name: web}, hosts: [ops/*]}\n"
    spec += "  - {hosts: [./*]}\n"
    snapshot = translate_snapshot(mesh(sidecar("shop", "default", spec)), SHOP)
    assert vhosts(snapshot, 9080) == {PAGES}
    # pages is imported on 9080 only: its 9100 cluster and listener are not sent
    assert f"outbound|9080||{PAGES}" in snapshot.of_type(CLUSTER)
    assert f"outbound|9100||{PAGES}" not in snapshot.of_type(CLUSTER)
    assert "127.0.0.1_9100" not in listeners(snapshot)
    # the catch-all's services keep their clusters, and their other ports
    assert {REVIEWS, RATINGS, DETAILS, DB, API} <= hosts(snapshot)
    assert {"127.0.0.1_9081", "127.0.0.1_5432"} <= listeners(snapshot)


def test_a_tcp_port_shared_outside_the_scope_gets_its_listener() -> None:
    """Two TCP services on one port cannot share a listener; scoped to one, it has one."""
    other_db = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: ops}\n"
        "spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}\n"
    )
    scoped = sidecar("shop", "default", "  egress: [{hosts: [./*]}]\n")
    config, problems = load_documents([("m.yaml", MESH), ("o.yaml", other_db), ("s.yaml", scoped)])
    assert problems == []
    assert "127.0.0.1_5432" in listeners(translate_snapshot(config, SHOP))
    assert "127.0.0.1_5432" not in listeners(translate_snapshot(config, OPS))


def _network_filter(snapshot: Snapshot, port: int) -> str:
    """The name of the one network filter of the outbound listener on `port`."""
    listener = listener_pb2.Listener()
    snapshot.of_type(LISTENER)[f"127.0.0.1_{port}"].packed.Unpack(listener)
    [chain] = listener.filter_chains
    [network_filter] = chain.filters
    return str(network_filter.name)


def test_an_egress_port_protocol_is_its_listeners() -> None:
    """Istio builds an egress listener by its `port.protocol`: TCP (or TLS, MONGO, ...) is a
    TCP proxy even for HTTP services, HTTP (HTTP2, GRPC) an HTTP listener with routes even
    for TCP ones; ports without an egress listener of their own keep their services'."""
    spec = f"""  egress:
  - {{port: {{number: 9081, protocol: TLS, name: tls}}, hosts: [shop/{DETAILS}]}}
  - {{port: {{number: 5432, protocol: http}}, hosts: [./*]}}
  - {{port: {{number: 9080, protocol: TCP}}, hosts: [./*]}}
  - {{hosts: [./*]}}
"""
    config = mesh(sidecar("shop", "default", spec))
    snapshot = translate_snapshot(config, SHOP)
    assert _network_filter(snapshot, 9081) == "envoy.filters.network.tcp_proxy"
    assert _network_filter(snapshot, 5432) == "envoy.filters.network.http_connection_manager"
    assert vhosts(snapshot, 5432) == {DB}
    assert vhosts(snapshot, 9081) == set()
    # reviews and ratings share TCP port 9080 now: no listener (FM0002)
    assert "127.0.0.1_9080" not in listeners(snapshot)
    assert vhosts(snapshot, 9080) == set()
    assert _network_filter(snapshot, 8443) == "envoy.filters.network.http_connection_manager"
    # another namespace's proxies are not scoped by it
    ops = translate_snapshot(config, OPS)
    assert _network_filter(ops, 9081) == "envoy.filters.network.http_connection_manager"
    assert _network_filter(ops, 5432) == "envoy.filters.network.tcp_proxy"


def _codes(config: MeshConfig, code: str) -> list[str]:
    return [f.render() for f in analyze(config, []) if f.code == code]


def test_analyze_looks_at_what_each_sidecar_imports() -> None:
    """A port clash outside every scope of a namespace is no finding for it; one that only
    a scope makes (an egress port's protocol) is; references are checked whatever the
    scopes (a VirtualService no proxy imports still names a missing subset)."""
    other_db = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: ops}\n"
        "spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}\n"
    )
    dangling = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: details, namespace: shop}\n"
        "spec: {hosts: [details], http: [{route: [{destination: {host: details, subset: x}}]}]}\n"
    )
    own = "  egress: [{hosts: [./*]}]\n"
    shared = "Warning [FM0002] TCP port 5432 of db.ops.svc.cluster.local, db.shop.svc.cluster.local"

    def load(*docs: str) -> MeshConfig:
        config, problems = load_documents(
            [
                ("m.yaml", MESH),
                ("o.yaml", other_db),
                *((f"{i}.yaml", d) for i, d in enumerate(docs)),
            ]
        )
        assert problems == []
        return config

    # ops proxies have both databases: the clash is theirs
    assert [f for f in _codes(load(sidecar("shop", "s", own)), "FM0002") if f.startswith(shared)]
    scoped = load(sidecar("shop", "s", own), sidecar("ops", "s", own), dangling)
    assert _codes(scoped, "FM0002") == []
    # scoped translation: what the hub sends, clusters too
    result = translate(scoped, SHOP, scoped=True)
    assert {c["name"].rsplit("|", 1)[1] for c in result.documents[CLUSTER]} == (
        EVERYTHING - {PAGES}
    )
    # a scope on ops/pages only: the missing subset of shop's details is still found
    ops_only = load(
        sidecar("shop", "s", "  egress: [{hosts: [ops/*]}]\n"), sidecar("ops", "s", own), dangling
    )
    assert [f for f in _codes(ops_only, "IST0101") if "no DestinationRule subset 'x'" in f]
    # TCP on 9080 makes reviews and ratings share a TCP port, for shop's proxies only
    tcp = "  egress:\n  - {port: {number: 9080, protocol: TCP}, hosts: [./*]}\n  - {hosts: [./*]}\n"
    assert _codes(load(sidecar("shop", "s", tcp), sidecar("ops", "s", own)), "FM0002") == [
        f"Warning [FM0002] TCP port 9080 of {RATINGS}, {REVIEWS} is shared with other services; "
        "no outbound listener for it"
    ]


def test_analyze_warns_of_routes_and_rules_no_sidecar_imports() -> None:
    mesh_default = sidecar("istio-system", "default", "  egress: [{hosts: [./*]}]\n")
    config = mesh(mesh_default, sidecar("shop", "default", ONLY_RATINGS))
    assert _codes(config, "FM0013") == [
        f"Warning [FM0013] mesh.yaml: DestinationRule shop/reviews: spec.host: no Sidecar "
        f"imports {REVIEWS}: no proxy is sent its clusters",
        f"Warning [FM0013] mesh.yaml: VirtualService shop/reviews: spec.hosts[0]: no Sidecar "
        f"imports {REVIEWS}: no proxy is sent these routes",
    ]
    # a workload's own Sidecar imports it
    for_reviews = sidecar(
        "shop", "r", selecting("app: reviews") + f"  egress: [{{hosts: [shop/{REVIEWS}]}}]\n"
    )
    assert (
        _codes(mesh(mesh_default, sidecar("shop", "default", ONLY_RATINGS), for_reviews), "FM0013")
        == []
    )
    # without a mesh default, a proxy of any other namespace may route by them
    assert _codes(mesh(sidecar("shop", "default", ONLY_RATINGS)), "FM0013") == []


ONLY_RATINGS = "  egress: [{hosts: [./ratings.shop.svc.cluster.local]}]\n"
ONLY_OPS = "  egress: [{hosts: [ops/*]}]\n"
ONLY_API = "  egress: [{hosts: ['*/api.example.com']}]\n"


def test_precedence_workload_then_namespace_then_root() -> None:
    config = mesh(
        sidecar("shop", "for-reviews", selecting("app: reviews") + ONLY_OPS),
        sidecar("shop", "default", ONLY_RATINGS),
        sidecar("istio-system", "default", "  egress: [{hosts: [./*]}]\n"),
        sidecar(
            "istio-system", "selecting", "  workloadSelector: {labels: {app: pages}}\n" + ONLY_API
        ),
    )
    # the labels of its WorkloadEntry, or of its node metadata (LABELS)
    assert hosts(translate_snapshot(config, REVIEWS_V1)) == {PAGES}
    labelled = ProxyInfo("b", "shop", labels=(("app", "reviews"),))
    assert hosts(translate_snapshot(config, labelled)) == {PAGES}
    assert hosts(translate_snapshot(config, ProxyInfo("c", "shop", workload="productpage"))) == {
        RATINGS
    }
    # the root namespace's Sidecar without selector is the mesh default; `.` is the proxy's
    # namespace; one with a selector applies in the root namespace only
    pages = ProxyInfo("d", "ops", labels=(("app", "pages"),))
    assert hosts(translate_snapshot(config, pages)) == {PAGES}
    assert hosts(translate_snapshot(config, ProxyInfo("e", "nowhere"))) == set()


def test_the_workload_entry_labels_go_over_the_node_labels() -> None:
    config = mesh(
        sidecar("shop", "for-v2", selecting("version: v2") + ONLY_OPS),
    )
    said_v2 = ProxyInfo("a", "shop", workload="reviews-v1", labels=(("version", "v2"),))
    assert hosts(translate_snapshot(config, said_v2)) == EVERYTHING
    assert hosts(
        translate_snapshot(config, ProxyInfo("b", "shop", labels=(("version", "v2"),)))
    ) == {PAGES}


def test_several_selecting_sidecars_the_first_by_name_applies_and_analyze_says_so() -> None:
    config = mesh(
        sidecar("shop", "b-second", selecting("app: reviews") + ONLY_API),
        sidecar("shop", "a-first", selecting("app: reviews") + ONLY_OPS),
        sidecar("shop", "x", ONLY_RATINGS),
        sidecar("shop", "y", ONLY_RATINGS),
        sidecar("shop", "nobody", selecting("app: ghost") + ONLY_OPS),
        sidecar(
            "shop",
            "dangling",
            "  workloadSelector: {labels: {app: ghost}}\n"
            "  egress: [{hosts: [./ghost.shop.svc.cluster.local, '~/*', 'ops/*']}]\n",
        ),
    )
    assert hosts(translate_snapshot(config, REVIEWS_V1)) == {PAGES}
    found = [f.render() for f in analyze(config, [])]
    assert (
        "Warning [IST0110] sc.yaml: Sidecar shop/b-second: spec.workloadSelector: the Sidecars "
        "a-first, b-second select workload shop/reviews-v1; only a-first applies to it"
    ) in found
    assert (
        "Warning [IST0111] sc.yaml: Sidecar shop/x: spec.workloadSelector: the Sidecars x, y "
        "of namespace shop have no workload selector; only x applies"
    ) in found
    assert (
        "Warning [FM0011] sc.yaml: Sidecar shop/nobody: spec.workloadSelector.labels: selects "
        "no WorkloadEntry of namespace shop"
    ) in found
    dangling = [f for f in found if "FM0012" in f]
    assert dangling == [
        "Warning [FM0012] sc.yaml: Sidecar shop/dangling: spec.egress[0].hosts[0]: "
        "./ghost.shop.svc.cluster.local names no service"
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("  egress: [{hosts: [reviews]}]\n", "spec.egress[0].hosts[0]: expected namespace/dnsName"),
        ("  egress: [{hosts: [Shop/*]}]\n", "spec.egress[0].hosts[0]: namespace 'Shop'"),
        ("  egress: [{hosts: ['./a..b']}]\n", "spec.egress[0].hosts[0]: dnsName 'a..b'"),
        ("  egress: [{hosts: []}]\n", "spec.egress[0].hosts: needs at least one host"),
        ("  egress: [{port: {number: 80}}]\n", "spec.egress[0].hosts: is required"),
        (
            "  egress: [{hosts: [./*]}, {port: {number: 80}, hosts: [./*]}]\n",
            "spec.egress[0].port: the egress listener without a port must be the last one",
        ),
        (
            "  egress: [{port: {number: 80}, hosts: [./*]}, {port: {number: 80}, hosts: [./*]}]\n",
            "spec.egress[1].port.number: port 80 has another egress listener",
        ),
        ("  egress: [{port: {number: 0}, hosts: [./*]}]\n", "spec.egress[0].port.number"),
        (
            "  egress: [{port: {number: 80, protocol: SMTP}, hosts: [./*]}]\n",
            "spec.egress[0].port.protocol: expected one of",
        ),
        ("  egress: [{bind: 127.0.0.2, hosts: [./*]}]\n", "spec.egress[0].bind: unsupported"),
        (
            "  ingress: [{port: {number: 80}}]\n  egress: [{hosts: [./*]}]\n",
            "spec.ingress: ingress listeners are not supported",
        ),
        (
            "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n",
            "spec.outboundTrafficPolicy.mode: only REGISTRY_ONLY is supported",
        ),
        (
            "  workloadSelector: {labels: {}}\n  egress: [{hosts: [./*]}]\n",
            "spec.workloadSelector.labels",
        ),
        ("  workloadSelector: {labels: {app: a}}\n", "spec: empty configuration"),
    ],
)
def test_sidecar_problems_name_file_resource_and_field(spec: str, expected: str) -> None:
    config, problems = load_documents([("sc.yaml", sidecar("shop", "s", spec))])
    assert config.sidecars == ()
    assert any(str(p).startswith(f"sc.yaml: Sidecar shop/s: {expected}") for p in problems), [
        str(p) for p in problems
    ]


def test_registry_only_and_no_egress_is_everything() -> None:
    config = mesh(sidecar("shop", "s", "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"))
    assert hosts(translate_snapshot(config, SHOP)) == EVERYTHING


def test_node_labels_are_read_from_metadata() -> None:
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": "shop", "LABELS": {"app": "reviews", "n": 2, "ok": True}})
    node = base_pb2.Node(id="sidecar~10.0.0.1~r.shop~shop.svc.cluster.local", metadata=metadata)
    assert proxy_info(node).labels == (("app", "reviews"), ("n", "2"), ("ok", "true"))
    metadata.update({"LABELS": "app=reviews"})
    node = base_pb2.Node(id=node.id, metadata=metadata)
    assert proxy_info(node).labels == ()


@pytest.mark.parametrize(
    ("value", "balanced"),
    [("true", True), ("1", True), (True, True), ("false", False), ("", False)],
)
def test_inbound_exact_balance_is_read_as_istio_does(value: str | bool, balanced: bool) -> None:
    metadata = struct_pb2.Struct()
    metadata.update({"INBOUND_LISTENER_EXACT_BALANCE": value})
    node = base_pb2.Node(id="sidecar~10.0.0.1~r.shop~shop.svc.cluster.local", metadata=metadata)
    assert proxy_info(node).inbound_exact_balance is balanced


# --- the hub ----------------------------------------------------------------------------------


def test_the_hub_shares_one_snapshot_per_scope() -> None:
    config = mesh(
        sidecar("shop", "for-reviews", selecting("app: reviews") + ONLY_OPS),
        sidecar("shop", "default", ONLY_RATINGS),
    )
    hub = SnapshotHub()
    hub.publish(config)
    outbound = hub._translated  # the part shared by proxies of one kind
    reviews = outbound(REVIEWS_V1)
    assert outbound(ProxyInfo("b", "shop", labels=(("app", "reviews"),))) is reviews
    plain = outbound(ProxyInfo("c", "shop", workload="productpage"))
    assert outbound(ProxyInfo("d", "shop")) is plain
    assert plain is not reviews
    assert hosts(reviews) == {PAGES} and hosts(plain) == {RATINGS}
    # proxies without a Sidecar share the unscoped clusters, as before Sidecars existed
    ops = outbound(OPS)
    assert hosts(ops) == EVERYTHING
    assert ops.parts[0] is hub._shared
    # and each whole snapshot is what translating that proxy alone gives
    for proxy in (REVIEWS_V1, SHOP, OPS):
        assert hub.snapshot_for(proxy).version == translate_snapshot(config, proxy).version


def test_a_workload_change_reaches_scoped_proxies_incrementally() -> None:
    config = mesh(sidecar("shop", "default", ONLY_OPS))
    moved = [
        w if w.name != "pages-1" else type(w)(w.name, w.namespace, "10.0.9.9", w.labels, w.ports)
        for w in config.workloads
    ]
    after = dataclasses.replace(config, workloads=tuple(moved))
    hub = SnapshotHub()
    hub.publish(config)
    scoped, plain = hub.snapshot_for(SHOP), hub.snapshot_for(OPS)
    hub._apply(after)
    assert hub._index is not None and hub._index.config is after  # the incremental path
    new_scoped, new_plain = hub.snapshot_for(SHOP), hub.snapshot_for(OPS)
    assert hosts(new_scoped) == {PAGES} and hosts(new_plain) == EVERYTHING
    pages = {f"outbound|9080||{PAGES}", f"outbound|9100||{PAGES}"}
    assert changes(scoped, new_scoped, ENDPOINT) == pages
    assert changes(plain, new_plain, ENDPOINT) == pages
    assert new_scoped.of_type(ROUTE) is scoped.of_type(ROUTE)
    for proxy, snapshot in ((SHOP, new_scoped), (OPS, new_plain)):
        assert snapshot.version == translate_snapshot(after, proxy).version


def test_etcd_takes_a_sidecar_under_its_config_key() -> None:
    config, problems = load_entries(
        [("/fastmesh/config/Sidecar/shop/default", '{"egress": [{"hosts": ["./*"]}]}')]
    )
    assert problems == []
    [scoped] = config.sidecars
    assert (scoped.namespace, scoped.name) == ("shop", "default")
    assert str(scoped.egress[0].hosts[0]) == "./*"
