"""DestinationRule `portLevelSettings` and subset policies, field by field, as Istio merges
them (pilot/pkg/networking/util `GetPortLevelTrafficPolicy`, `MergeSubsetTrafficPolicy`):
a port-level entry replaces the policy it is in whole (`connectionPool`, `loadBalancer`,
`outlierDetection`, `tls`: unset means Envoy's default, not the top level's); a subset
without an entry for the port overrides the rule's (port-level) policy field by field."""

from __future__ import annotations

from typing import Any

from fastmesh.controlplane import (
    CLUSTER,
    ROUTE,
    ProxyInfo,
    load_documents,
    translate,
    translate_snapshot,
)

SHOP = ProxyInfo("sidecar~10.0.0.9~productpage.shop~shop.svc.cluster.local", "shop")
HOST = "api.shop.svc.cluster.local"

MESH = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}, {name: http-admin, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: api, version: v1}, serviceAccount: api}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    tls: {mode: DISABLE}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {tcp: {maxConnections: 1}}
  subsets:
  - name: lb
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  - name: pls
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 5}
      portLevelSettings:
      - port: {number: 8080}
        loadBalancer: {simple: ROUND_ROBIN}
  - name: bare
    labels: {version: v1}
"""

#: (lb_policy, max_connections, consecutive_5xx, mTLS) of a cluster; None: Envoy's default.
Facts = tuple[str, int | None, int | None, bool]


def _clusters(*extra: str) -> dict[str, dict[str, Any]]:
    config, problems = load_documents([("mesh.yaml", MESH), *(("x.yaml", e) for e in extra)])
    assert problems == []
    translate_snapshot(config, SHOP, "cluster.local")  # valid Envoy protobuf
    docs = translate(config, SHOP, "cluster.local").documents
    return {c["name"]: c for c in docs[CLUSTER]}


def _facts(clusters: dict[str, dict[str, Any]], port: int, subset: str = "") -> Facts:
    c = clusters[f"outbound|{port}|{subset}|{HOST}"]
    breakers = c.get("circuit_breakers", {"thresholds": [{}]})["thresholds"][0]
    return (
        c["lb_policy"],
        breakers.get("max_connections"),
        c.get("outlier_detection", {}).get("consecutive_5xx"),
        "transport_socket" in c,
    )


def test_the_rules_port_level_entry_replaces_its_top_level_whole() -> None:
    clusters = _clusters()
    assert _facts(clusters, 8080) == ("RANDOM", 10, 3, False)  # the top level (tls DISABLE)
    # the entry sets only connectionPool: loadBalancer, outlierDetection and tls are the
    # defaults (Istio's LEAST_REQUEST, none, auto mTLS), not the top level's
    assert _facts(clusters, 9090) == ("LEAST_REQUEST", 1, None, True)


def test_a_subset_without_an_entry_for_the_port_overrides_field_by_field() -> None:
    clusters = _clusters()
    # over the rule's top level on 8080 ...
    assert _facts(clusters, 8080, "lb") == ("ROUND_ROBIN", 10, 3, False)
    # ... and over the rule's port 9090 entry (itself inheriting nothing) on 9090
    assert _facts(clusters, 9090, "lb") == ("ROUND_ROBIN", 1, None, True)
    assert _facts(clusters, 9090, "pls") == ("LEAST_REQUEST", 1, 5, True)


def test_a_subsets_entry_for_the_port_replaces_everything_whole() -> None:
    """Neither the subset's top level (outlierDetection 5) nor the rule's is inherited."""
    assert _facts(_clusters(), 8080, "pls") == ("ROUND_ROBIN", None, None, True)


def test_a_subset_without_a_policy_is_the_rules_for_the_port() -> None:
    clusters = _clusters()
    for port in (8080, 9090):
        assert _facts(clusters, port, "bare") == _facts(clusters, port)


HASHED = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {tcp: {maxConnections: 1}}
"""


def test_a_routes_hash_falls_back_to_the_top_level_unlike_its_cluster() -> None:
    """route.go's `hashForService` takes the port-level consistentHash when there is one,
    else the rule's: the route on 9090 keeps hashing on x-user while the cluster's port
    entry, without loadBalancer, is Istio's default LEAST_REQUEST."""
    mesh = MESH.split("---")[0]
    config, problems = load_documents([("mesh.yaml", mesh), ("dr.yaml", HASHED)])
    assert problems == []
    docs = translate(config, SHOP).documents
    lb = {c["name"]: c["lb_policy"] for c in docs[CLUSTER]}
    assert lb == {f"outbound|8080||{HOST}": "RING_HASH", f"outbound|9090||{HOST}": "LEAST_REQUEST"}
    hashes = {
        rc["name"]: vhost["routes"][0]["route"].get("hash_policy")
        for rc in docs[ROUTE]
        for vhost in rc["virtual_hosts"]
    }
    header = [{"header": {"header_name": "x-user"}}]
    assert hashes == {"8080": header, "9090": header}


def test_a_weighted_route_hashes_on_each_destinations_hash() -> None:
    """Istio appends the hash of every destination with a weight (route.go
    `processWeightedDestination`), not only the first's."""
    rule = (
        HASHED
        + """  subsets:
  - name: a
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: c, ttl: 1s}}}}
  - name: b
    labels: {version: v1}
"""
    )
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - route:
    - {destination: {host: api, subset: a}, weight: 50}
    - {destination: {host: api, subset: b}, weight: 50}
    - {destination: {host: api, subset: a}, weight: 0}
"""
    config, problems = load_documents(
        [("mesh.yaml", MESH.split("---")[0]), ("x.yaml", rule + "---" + vs)]
    )
    assert problems == []
    [rc] = [rc for rc in translate(config, SHOP).documents[ROUTE] if rc["name"] == "8080"]
    [vhost] = rc["virtual_hosts"]
    assert vhost["routes"][0]["route"]["hash_policy"] == [
        {"cookie": {"name": "c", "ttl": "1.000s"}},
        {"header": {"header_name": "x-user"}},
    ]
