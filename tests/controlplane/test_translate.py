"""Translation of services, workloads, VirtualService and DestinationRule to Envoy xDS."""

from __future__ import annotations

from typing import Any

from fastmesh.controlplane import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    ProxyInfo,
    load_documents,
    translate,
    translate_snapshot,
)

from .test_load import BOOKINFO

HOST = "reviews.shop.svc.cluster.local"
SHOP = ProxyInfo("sidecar~10.0.0.9~productpage.shop~shop.svc.cluster.local", "shop")
OTHER = ProxyInfo("sidecar~10.0.0.8~ops.tools~tools.svc.cluster.local", "tools", "127.0.0.2")

V2 = """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: elsewhere, namespace: other}
spec: {address: 10.9.9.9, labels: {app: reviews, version: v2}}
"""


def documents(*extra: str, proxy: ProxyInfo = SHOP) -> tuple[dict[str, list[Any]], list[str]]:
    config, problems = load_documents(
        [("bookinfo.yaml", BOOKINFO), *(("x.yaml", e) for e in extra)]
    )
    assert problems == []
    result = translate(config, proxy)
    return result.documents, [str(w) for w in result.warnings]


def by_name(docs: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {d[key]: d for d in docs}


def test_clusters_are_named_istio_style_and_use_eds_over_ads() -> None:
    docs, _ = documents(V2)
    clusters = by_name(docs[CLUSTER])
    assert sorted(clusters) == sorted(
        f"outbound|{port}|{subset}|{HOST}"
        for port in (9080, 9090, 5432, 8000)
        for subset in ("", "v1", "v2")
    )
    plain = clusters[f"outbound|9080||{HOST}"]
    assert plain["type"] == "EDS"
    assert plain["eds_cluster_config"] == {
        "eds_config": {"ads": {}, "resource_api_version": "V3"},
        "service_name": f"outbound|9080||{HOST}",
    }
    assert plain["lb_policy"] == "RANDOM"  # the rule's
    assert clusters[f"outbound|9080|v2|{HOST}"]["lb_policy"] == "ROUND_ROBIN"  # the subset's
    assert "typed_extension_protocol_options" not in plain
    grpc = clusters[f"outbound|9090||{HOST}"]["typed_extension_protocol_options"]
    [options] = grpc.values()
    assert options["explicit_http_config"] == {"http2_protocol_options": {}}


def endpoints(docs: dict[str, list[Any]], name: str) -> list[tuple[str, int]]:
    cla = by_name(docs[ENDPOINT], "cluster_name")[name]
    return [
        (
            e["endpoint"]["address"]["socket_address"]["address"],
            e["endpoint"]["address"]["socket_address"]["port_value"],
        )
        for group in cla["endpoints"]
        for e in group["lb_endpoints"]
    ]


def test_endpoints_follow_selector_subset_labels_namespace_and_port_names() -> None:
    docs, _ = documents(V2)
    assert endpoints(docs, f"outbound|9080||{HOST}") == [("10.0.0.1", 18080), ("10.0.0.2", 8080)]
    assert endpoints(docs, f"outbound|9080|v1|{HOST}") == [("10.0.0.1", 18080)]
    assert endpoints(docs, f"outbound|9080|v2|{HOST}") == [("10.0.0.2", 8080)]
    assert endpoints(docs, f"outbound|9090|v2|{HOST}") == [("10.0.0.2", 9090)]


def test_listeners_per_port_http_with_rds_and_tcp_with_tcp_proxy() -> None:
    docs, _ = documents(proxy=OTHER)
    listeners = by_name(docs[LISTENER])
    assert sorted(listeners) == [f"127.0.0.2_{p}" for p in (5432, 8000, 9080, 9090)]
    http = listeners["127.0.0.2_9080"]
    assert http["address"] == {"socket_address": {"address": "127.0.0.2", "port_value": 9080}}
    hcm = http["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["rds"]["route_config_name"] == "9080"
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]
    tcp = listeners["127.0.0.2_5432"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert tcp["cluster"] == f"outbound|5432||{HOST}"
    assert sorted(by_name(docs[ROUTE])) == ["8000", "9080", "9090"]


def test_domains_include_the_short_name_only_in_the_same_namespace() -> None:
    shop, _ = documents()
    other, _ = documents(proxy=OTHER)
    [vhost] = by_name(shop[ROUTE])["9080"]["virtual_hosts"]
    assert vhost["name"] == f"{HOST}:9080"
    assert set(vhost["domains"]) == {
        HOST,
        f"{HOST}:9080",
        "reviews.shop.svc",
        "reviews.shop.svc:9080",
        "reviews.shop",
        "reviews.shop:9080",
        "reviews",
        "reviews:9080",
    }
    [far] = by_name(other[ROUTE])["9080"]["virtual_hosts"]
    assert "reviews" not in far["domains"] and "reviews.shop" in far["domains"]


def test_virtual_service_routes_matches_weights_timeout_and_retries() -> None:
    docs, warnings = documents(V2)
    assert warnings == []
    [vhost] = by_name(docs[ROUTE])["9080"]["virtual_hosts"]
    jason_a, jason_b, split = vhost["routes"]
    assert jason_a["match"] == {
        "prefix": "/api",
        "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}],
    }
    assert jason_b["match"] == {
        "prefix": "/",
        "headers": [{"name": ":method", "string_match": {"exact": "POST"}}],
    }
    assert jason_a["route"] == {
        "cluster": f"outbound|9080|v2|{HOST}",
        "timeout": "1.500s",
        "retry_policy": {
            "retry_on": "5xx,retriable-status-codes",
            "num_retries": 3,
            "retriable_status_codes": [503],
            "per_try_timeout": "0.250s",
        },
    }
    assert split["match"] == {"prefix": "/"}
    assert split["route"]["weighted_clusters"] == {
        "clusters": [
            {"name": f"outbound|9080|v1|{HOST}", "weight": 90},
            {"name": f"outbound|9080|v2|{HOST}", "weight": 10},
        ]
    }
    assert split["route"]["timeout"] == "0s"  # Istio: no timeout unless set
    assert split["route"]["retry_policy"]["num_retries"] == 2  # Istio's default retries


def test_without_a_virtual_service_each_port_routes_to_its_service() -> None:
    service_only = BOOKINFO.split("---")[0]
    config, _ = load_documents([("svc.yaml", service_only)])
    docs = translate(config, SHOP).documents
    for port in (9080, 9090, 8000):
        [vhost] = by_name(docs[ROUTE])[str(port)]["virtual_hosts"]
        [route] = vhost["routes"]
        assert route["match"] == {"prefix": "/"}
        assert route["route"]["cluster"] == f"outbound|{port}||{HOST}"


def test_a_virtual_service_applies_to_every_port_of_its_host() -> None:
    docs, _ = documents(V2)
    [vhost] = by_name(docs[ROUTE])["9090"]["virtual_hosts"]
    jason, _, split = vhost["routes"]
    assert jason["route"]["cluster"] == f"outbound|9080|v2|{HOST}"  # its port is explicit
    assert [c["name"] for c in split["route"]["weighted_clusters"]["clusters"]] == [
        f"outbound|9090|v1|{HOST}",
        f"outbound|9090|v2|{HOST}",
    ]


def test_dangling_references_are_warnings_naming_file_resource_and_field() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews, ghosts]
  http:
  - route:
    - {destination: {host: reviews, subset: v9}, weight: 50}
    - {destination: {host: nowhere}, weight: 50}
"""
    config, _ = load_documents([("bookinfo.yaml", BOOKINFO.split("---")[0]), ("vs.yaml", vs)])
    warnings = [str(w) for w in translate(config, SHOP).warnings]
    assert (
        "vs.yaml: VirtualService shop/reviews: spec.hosts[1]: unknown service "
        "ghosts.shop.svc.cluster.local" in warnings
    )
    assert (
        "vs.yaml: VirtualService shop/reviews: spec.http[0].route[0].destination.subset: "
        f"no DestinationRule subset 'v9' for {HOST}" in warnings
    )
    assert (
        "vs.yaml: VirtualService shop/reviews: spec.http[0].route[1].destination.host: "
        "unknown service nowhere.shop.svc.cluster.local" in warnings
    )


def test_gateway_only_virtual_services_do_not_apply_to_sidecars() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: shop}
spec:
  hosts: [reviews]
  gateways: [ingress]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
"""
    config, _ = load_documents([("svc.yaml", BOOKINFO.split("---")[0]), ("vs.yaml", vs)])
    [vhost] = by_name(translate(config, SHOP).documents[ROUTE])["9080"]["virtual_hosts"]
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|9080||{HOST}"


def test_snapshot_is_typed_protobuf_with_a_content_version() -> None:
    config, _ = load_documents([("bookinfo.yaml", BOOKINFO), ("v2.yaml", V2)])
    a = translate_snapshot(config, SHOP)
    b = translate_snapshot(config, SHOP)
    other = translate_snapshot(config, OTHER)
    assert a.version == b.version != other.version
    for type_url in (CLUSTER, ENDPOINT, LISTENER, ROUTE):
        assert a.of_type(type_url), type_url
        for resource in a.of_type(type_url).values():
            assert resource.packed.type_url == type_url
    moved, _ = load_documents(
        [("bookinfo.yaml", BOOKINFO), ("v2.yaml", V2.replace("10.0.0.2", "10.0.0.3"))]
    )
    c = translate_snapshot(moved, SHOP)
    assert c.version != a.version
    changed = {
        t: sorted(n for n, r in c.of_type(t).items() if a.of_type(t)[n].digest != r.digest)
        for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)
    }
    assert changed[CLUSTER] == changed[LISTENER] == changed[ROUTE] == []
    assert all("||" in n or "|v2|" in n for n in changed[ENDPOINT]) and changed[ENDPOINT]


ACTIONS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 308}
  - match: [{uri: {prefix: /api/}, queryParams: {debug: {exact: "1"}}}]
    rewrite: {uri: /v2/, authority: reviews-internal}
    headers:
      request: {set: {X-Env: canary}, add: {x-trace: a}, remove: [X-Drop]}
      response: {set: {x-served-by: fastmesh}, remove: [server]}
    fault:
      delay: {fixedDelay: 50ms, percentage: {value: 12.5}}
      abort: {httpStatus: 418}
    route: [{destination: {host: reviews}}]
"""


def test_redirect_rewrite_headers_query_and_fault() -> None:
    config, problems = load_documents(
        [("svc.yaml", BOOKINFO.split("---")[0]), ("vs.yaml", ACTIONS)]
    )
    assert problems == []
    [vhost] = by_name(translate(config, SHOP).documents[ROUTE])["9080"]["virtual_hosts"]
    redirect, api = vhost["routes"]
    assert redirect == {
        "name": "reviews.0.0",
        "match": {"prefix": "/old"},
        "redirect": {
            "response_code": "PERMANENT_REDIRECT",
            "path_redirect": "/new",
            "host_redirect": "example.com",
        },
    }
    assert api["match"]["query_parameters"] == [{"name": "debug", "string_match": {"exact": "1"}}]
    assert api["route"]["prefix_rewrite"] == "/v2/"
    assert api["route"]["host_rewrite_literal"] == "reviews-internal"
    assert api["request_headers_to_add"] == [
        {
            "header": {"key": "x-env", "value": "canary"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        },
        {"header": {"key": "x-trace", "value": "a"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"},
    ]
    assert api["request_headers_to_remove"] == ["x-drop"]
    assert api["response_headers_to_remove"] == ["server"]
    fault = api["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["delay"] == {
        "fixed_delay": "0.050s",
        "percentage": {"numerator": 125_000, "denominator": "MILLION"},
    }
    assert fault["abort"] == {
        "http_status": 418,
        "percentage": {"numerator": 1_000_000, "denominator": "MILLION"},
    }
    translate_snapshot(config, SHOP)  # and it is all valid Envoy protobuf


POLICY = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: X-User}}
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 3, maxRequestsPerConnection: 10, maxRetries: 2}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 5s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 60s}}}
      connectionPool: {http: {idleTimeout: 1m}}
"""


def test_traffic_policy_to_clusters_and_route_hash_policy() -> None:
    svc = BOOKINFO.split("---")[0]
    config, problems = load_documents([("svc.yaml", svc), ("dr.yaml", POLICY)])
    assert problems == []
    docs = translate(config, SHOP).documents
    clusters = by_name(docs[CLUSTER])
    plain = clusters[f"outbound|9080||{HOST}"]
    assert plain["lb_policy"] == "RING_HASH"
    assert plain["connect_timeout"] == "0.250s"
    assert plain["circuit_breakers"] == {
        "thresholds": [{"max_connections": 7, "max_pending_requests": 3, "max_retries": 2}]
    }
    [options] = plain["typed_extension_protocol_options"].values()
    assert options["common_http_protocol_options"] == {"max_requests_per_connection": 10}
    assert options["explicit_http_config"] == {"http_protocol_options": {}}
    assert plain["outlier_detection"] == {
        "enforcing_success_rate": 0,
        "consecutive_5xx": 3,
        "enforcing_consecutive_5xx": 100,
        "interval": "5.000s",
        "base_ejection_time": "30.000s",
        "max_ejection_percent": 50,
    }
    assert clusters[f"outbound|9080|v1|{HOST}"] == {
        **plain,
        "name": f"outbound|9080|v1|{HOST}",
        "eds_cluster_config": {
            **plain["eds_cluster_config"],
            "service_name": f"outbound|9080|v1|{HOST}",
        },
    }
    v2 = clusters[f"outbound|9080|v2|{HOST}"]
    [v2_options] = v2["typed_extension_protocol_options"].values()
    assert v2_options["common_http_protocol_options"] == {"idle_timeout": "60.000s"}
    assert "circuit_breakers" not in v2  # the subset's connectionPool replaces the rule's
    assert v2["outlier_detection"] == plain["outlier_detection"]  # inherited
    [vhost] = by_name(docs[ROUTE])["9080"]["virtual_hosts"]
    assert vhost["routes"][0]["route"]["hash_policy"] == [{"header": {"header_name": "x-user"}}]
    translate_snapshot(config, SHOP)  # valid Envoy protobuf


def test_subset_hash_policy_follows_the_route_destination() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
"""
    config, _ = load_documents(
        [("svc.yaml", BOOKINFO.split("---")[0]), ("dr.yaml", POLICY), ("vs.yaml", vs)]
    )
    [vhost] = by_name(translate(config, SHOP).documents[ROUTE])["9080"]["virtual_hosts"]
    assert vhost["routes"][0]["route"]["hash_policy"] == [
        {"cookie": {"name": "user", "ttl": "60.000s"}}
    ]


def test_port_level_settings_apply_to_their_port_only() -> None:
    config, problems = load_documents(
        [
            (
                "mesh.yaml",
                """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}, {name: http-admin, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10}}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {tcp: {maxConnections: 1}}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 8080}
        loadBalancer: {simple: ROUND_ROBIN}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bad, namespace: shop}
spec:
  host: other
  trafficPolicy:
    portLevelSettings: [{port: {number: 0}, portLevelSettings: []}]
""",
            )
        ]
    )
    assert [str(p) for p in problems] == [
        "mesh.yaml: DestinationRule shop/bad: spec.trafficPolicy.portLevelSettings[0].port.number:"
        " expected an integer in [1, 65535], got 0",
        "mesh.yaml: DestinationRule shop/bad: spec.trafficPolicy.portLevelSettings[0]"
        ".portLevelSettings: unsupported field (supported: connectionPool, loadBalancer, "
        "outlierDetection, port, tls)",
    ]
    clusters = {c["name"]: c for c in translate(config, SHOP).documents[CLUSTER]}

    def facts(port: int, subset: str = "") -> tuple[str, int | None]:
        c = clusters[f"outbound|{port}|{subset}|api.shop.svc.cluster.local"]
        breakers = c.get("circuit_breakers", {"thresholds": [{}]})
        return c["lb_policy"], breakers["thresholds"][0].get("max_connections")

    assert facts(8080) == ("LEAST_REQUEST", 10)  # the rule
    assert facts(9090) == ("RANDOM", 1)  # the rule's port 9090 settings
    # the subset's port 8080 settings, whole: the rule's connectionPool is not inherited
    assert facts(8080, "v1") == ("ROUND_ROBIN", None)
    assert facts(9090, "v1") == ("RANDOM", 1)  # (field by field: test_port_level_policy)


PORT_HASH = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}, {name: http-admin, port: 9090}, {name: http-x, port: 7070}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {consistentHash: {httpHeaderName: x-user}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 7070}
        loadBalancer: {consistentHash: {useSourceIp: true}}
"""


def test_a_port_level_consistent_hash_is_for_routes_naming_that_port() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: api, port: {number: 9090}}}]
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: api, subset: v1}}]
  - match: [{uri: {prefix: /v1-on-7070}}]
    route: [{destination: {host: api, subset: v1, port: {number: 7070}}}]
  - route: [{destination: {host: api}}]
"""

    def hashes(*extra: str) -> dict[int, list[Any]]:
        config, problems = load_documents([("m.yaml", PORT_HASH), *(("v.yaml", e) for e in extra)])
        assert problems == []
        docs = translate(config, SHOP).documents
        translate_snapshot(config, SHOP)  # valid Envoy protobuf
        return {
            int(rc["name"]): [r["route"].get("hash_policy") for r in vhost["routes"]]
            for rc in docs[ROUTE]
            for vhost in rc["virtual_hosts"]
        }

    header = [{"header": {"header_name": "x-user"}}]
    source_ip = [{"connection_properties": {"source_ip": True}}]
    # without a VirtualService: each port's default route, by that port's settings
    assert hashes() == {7070: [None], 8080: [None], 9090: [header]}
    # Istio's `hashForHTTPDestination`: port-level settings count only for a destination
    # naming its port (not the listener's, whatever its cluster's load balancer); the
    # subset's port-level hash first
    assert hashes(vs) == {port: [header, None, source_ip, None] for port in (7070, 8080, 9090)}


def _with_vs(spec: str, proxy: ProxyInfo = SHOP) -> tuple[dict[str, list[Any]], list[str]]:
    """Bookinfo's service and rule, with the VirtualService `reviews` given by `spec`."""
    vs = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
{spec}"""
    service, _, _, rule = BOOKINFO.split("---")
    config, problems = load_documents([("b.yaml", f"{service}---{rule}"), ("vs.yaml", vs)])
    assert problems == []
    result = translate(config, proxy)
    return result.documents, [str(w) for w in result.warnings]


def test_mirror_and_cors_as_istio_writes_them() -> None:
    docs, warnings = _with_vs("""
  http:
  - mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 12.5}
    mirrors:
    - {destination: {host: reviews, subset: v1, port: {number: 9090}}}
    - {destination: {host: reviews}, percentage: {value: 0}}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {prefix: "https://b."}, {regex: ".*\\\\.c"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token, content-type]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: false
    route: [{destination: {host: reviews, subset: v1}}]
""")
    assert warnings == []
    [vhost] = by_name(docs[ROUTE])["9080"]["virtual_hosts"]
    [route] = vhost["routes"]
    assert route["route"]["request_mirror_policies"] == [
        {
            "cluster": f"outbound|9080|v2|{HOST}",
            "runtime_fraction": {"default_value": {"numerator": 125000, "denominator": "MILLION"}},
            "trace_sampled": False,
        },
        {
            "cluster": f"outbound|9090|v1|{HOST}",
            "runtime_fraction": {
                "default_value": {"numerator": 1_000_000, "denominator": "MILLION"}
            },
            "trace_sampled": False,
        },
    ]  # a 0 % mirror is no mirror, as in Istio
    assert route["typed_per_filter_config"] == {
        "envoy.filters.http.cors": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
            "forward_not_matching_preflights": True,
            "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "allow_origin_string_match": [
                {"exact": "https://a.example"},
                {"prefix": "https://b."},
                {"safe_regex": {"regex": ".*\\.c"}},
            ],
            "allow_methods": "GET,POST",
            "allow_headers": "x-token,content-type",
            "expose_headers": "x-trace",
            "max_age": "86400",
            "allow_credentials": False,
        }
    }


def test_an_empty_percentage_is_zero_percent() -> None:
    """Istio's `Percent {}` is 0 %: `mirrorPercentage: {}` mirrors nothing (no policy at
    all, not one at 100 %), and a fault's `percentage: {}` never fires."""
    docs, warnings = _with_vs("""
  http:
  - mirror: {host: reviews, subset: v2}
    mirrorPercentage: {}
    mirrors: [{destination: {host: reviews, subset: v1}, percentage: {}}]
    fault: {abort: {httpStatus: 503, percentage: {}}}
    route: [{destination: {host: reviews, subset: v1}}]
""")
    assert warnings == []
    [vhost] = by_name(docs[ROUTE])["9080"]["virtual_hosts"]
    [route] = vhost["routes"]
    assert "request_mirror_policies" not in route["route"]
    abort = route["typed_per_filter_config"]["envoy.filters.http.fault"]["abort"]
    assert abort["percentage"] == {"numerator": 0, "denominator": "MILLION"}


def test_fault_and_cors_share_the_routes_per_filter_config() -> None:
    docs, _ = _with_vs("""
  http:
  - fault: {abort: {httpStatus: 418}}
    corsPolicy: {allowOrigins: [{exact: "https://a.example"}], unmatchedPreflights: IGNORE}
    route: [{destination: {host: reviews}}]
""")
    [vhost] = by_name(docs[ROUTE])["9080"]["virtual_hosts"]
    per_filter = vhost["routes"][0]["typed_per_filter_config"]
    assert set(per_filter) == {"envoy.filters.http.fault", "envoy.filters.http.cors"}
    assert per_filter["envoy.filters.http.cors"]["forward_not_matching_preflights"] is False


def test_dangling_mirror_and_tcp_destinations_are_ist0101() -> None:
    _, warnings = _with_vs("""
  http:
  - mirror: {host: shadow}
    mirrors: [{destination: {host: reviews, subset: v7}}]
    route: [{destination: {host: reviews}}]
  tcp:
  - route:
    - {destination: {host: reviews, subset: v9}, weight: 50}
    - {destination: {host: gone}, weight: 50}
  - match: [{sourceLabels: {version: v1}}]  # never applies (after a catch-all): still checked
    route: [{destination: {host: unseen}}]
""")
    where = "vs.yaml: VirtualService shop/reviews: spec"
    assert set(warnings) >= {
        f"{where}.http[0].mirror.host: unknown service shadow.shop.svc.cluster.local",
        f"{where}.http[0].mirrors[0].destination.subset: no DestinationRule subset 'v7' for {HOST}",
        f"{where}.tcp[0].route[0].destination.subset: no DestinationRule subset 'v9' for {HOST}",
        f"{where}.tcp[0].route[1].destination.host: unknown service gone.shop.svc.cluster.local",
        f"{where}.tcp[1].route[0].destination.host: unknown service unseen.shop.svc.cluster.local",
    }


def _tcp_proxy(docs: dict[str, list[Any]], listener: str = "127.0.0.1_5432") -> dict[str, Any]:
    config: dict[str, Any] = by_name(docs[LISTENER])[listener]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return config


def test_tcp_routes_single_and_weighted() -> None:
    docs, warnings = _with_vs("""
  tcp:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
    - {destination: {host: reviews}, weight: 0}
""")
    assert warnings == []
    assert _tcp_proxy(docs) == {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "outbound_127.0.0.1_5432",
        "weighted_clusters": {
            "clusters": [
                {"name": f"outbound|5432|v1|{HOST}", "weight": 80},
                {"name": f"outbound|5432|v2|{HOST}", "weight": 20},
            ]
        },
    }
    docs, _ = _with_vs("  tcp: [{route: [{destination: {host: reviews, subset: v2}}]}]\n")
    assert _tcp_proxy(docs)["cluster"] == f"outbound|5432|v2|{HOST}"
    assert "weighted_clusters" not in _tcp_proxy(docs)


def test_tcp_route_matches_pick_the_first_that_applies() -> None:
    spec = """
  tcp:
  - match: [{port: 9999}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{sourceNamespace: tools}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{destinationSubnets: [127.0.0.2/32]}, {gateways: [ingress]}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{port: 5432, gateways: [mesh]}]
    route: [{destination: {host: reviews}}]
"""
    shop, _ = _with_vs(spec)
    assert _tcp_proxy(shop)["cluster"] == f"outbound|5432||{HOST}"  # the last: port and mesh
    tools, _ = _with_vs(spec, OTHER)  # namespace tools, bound to 127.0.0.2
    assert _tcp_proxy(tools, "127.0.0.2_5432")["cluster"] == f"outbound|5432|v2|{HOST}"
    subnet = ProxyInfo("sidecar~127.0.0.2~a.shop~shop.svc.cluster.local", "shop", "127.0.0.2")
    bound, _ = _with_vs(spec, subnet)
    assert _tcp_proxy(bound, "127.0.0.2_5432")["cluster"] == f"outbound|5432|v1|{HOST}"
    # http routes and tcp routes of one VirtualService each apply to their own ports
    docs, _ = _with_vs(spec + "  http: [{route: [{destination: {host: reviews, subset: v2}}]}]\n")
    [vhost] = by_name(docs[ROUTE])["9080"]["virtual_hosts"]
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|9080|v2|{HOST}"
    assert _tcp_proxy(docs)["cluster"] == f"outbound|5432||{HOST}"
    # no tcp route applies: the service's own cluster
    none, _ = _with_vs(
        "  tcp: [{match: [{port: 1}], route: [{destination: {host: reviews, subset: v1}}]}]\n"
    )
    assert _tcp_proxy(none)["cluster"] == f"outbound|5432||{HOST}"


def test_tcp_route_source_labels_match_the_proxys_workload() -> None:
    spec = """
  tcp:
  - match: [{sourceLabels: {version: v1}}]
    route: [{destination: {host: reviews, subset: v2}}]
"""
    v1 = ProxyInfo(
        "sidecar~10.0.0.1~reviews-v1.shop~shop.svc.cluster.local", "shop", workload="reviews-v1"
    )
    service, workload, _, rule = BOOKINFO.split("---")
    vs = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
{spec}"""
    config, problems = load_documents(
        [("b.yaml", f"{service}---{workload}---{rule}"), ("vs.yaml", vs)]
    )
    assert problems == []
    labelled = translate(config, v1).documents
    assert _tcp_proxy(labelled)["cluster"] == f"outbound|5432|v2|{HOST}"
    for other in (SHOP, ProxyInfo("x", "shop", workload="nobody")):  # no such workload: no labels
        assert _tcp_proxy(translate(config, other).documents)["cluster"] == f"outbound|5432||{HOST}"


def test_http_matches_on_source_labels_namespace_port_and_gateways() -> None:
    """Istio's `sourceMatchHTTP`: a match is in a sidecar's route config when its
    `sourceLabels` are the proxy's and `sourceNamespace` its namespace, or, naming
    `gateways`, when one is `mesh`; `port` keeps it to that outbound port's route config.
    (No match here is a catch-all, which would hide the later ones: test_catch_all.)"""
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {version: v1}, uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sourceNamespace: tools, uri: {prefix: /t}}]
    route: [{destination: {host: gone}}]
  - name: some
    match:
    - {port: 9090, uri: {prefix: /p}}
    - {gateways: [ingress]}
    - {gateways: [mesh], sourceLabels: {version: v9}, uri: {prefix: /m}}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews}}]
"""
    service, workload, _, rule = BOOKINFO.split("---")
    config, problems = load_documents(
        [("b.yaml", f"{service}---{workload}---{rule}"), ("vs.yaml", vs)]
    )
    assert problems == []
    v1 = ProxyInfo("v1", "shop", workload="reviews-v1")

    def routes(proxy: ProxyInfo, port: int) -> list[str]:
        result = translate(config, proxy)
        # a destination of a match no proxy here has is still resolved (and warned about)
        assert [str(w) for w in result.warnings] == [
            "vs.yaml: VirtualService shop/reviews: spec.http[1].route[0].destination.host: "
            "unknown service gone.shop.svc.cluster.local"
        ]
        [vhost] = by_name(result.documents[ROUTE])[str(port)]["virtual_hosts"]
        return [r["name"] for r in vhost["routes"]]

    assert routes(v1, 9080) == ["reviews.0.0", "some.2", "reviews.3.0"]
    assert routes(v1, 9090) == ["reviews.0.0", "some.0", "some.2", "reviews.3.0"]
    assert routes(SHOP, 9080) == ["some.2", "reviews.3.0"]
    assert routes(OTHER, 9080) == ["reviews.1.0", "some.2", "reviews.3.0"]
    [vhost] = by_name(translate(config, v1).documents[ROUTE])["9080"]["virtual_hosts"]
    assert vhost["routes"][0]["match"] == {"prefix": "/a"}
    assert vhost["routes"][0]["route"]["cluster"] == f"outbound|9080|v2|{HOST}"
    translate_snapshot(config, v1)  # valid Envoy protobuf


def test_http_match_source_fields_name_file_resource_and_field() -> None:
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{port: 0, sourceLabels: {a: [b]}, sourceNamespace: 7, gateways: [""]}]
    route: [{destination: {host: reviews}}]
"""
    _, problems = load_documents([("vs.yaml", vs)])
    where = "vs.yaml: VirtualService shop/reviews: spec.http[0].match[0]"
    assert [str(p) for p in problems] == [
        f"{where}.port: expected an integer in [1, 65535], got 0",
        f"{where}.sourceLabels.a: expected a string label value, got ['b']",
        f"{where}.sourceNamespace: expected a non-empty string, got 7",
        f"{where}.gateways[0]: expected a non-empty string, got ''",
    ]
