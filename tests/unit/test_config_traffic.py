"""The translator on Envoy's traffic-management fields: routes, filters, cluster resilience.

Each valid case states the exact native JSON; each error case the exact path and message.
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from fastmesh.config import ConfigError, translate_bootstrap

from .envoy_docs import (
    HCM,
    HTTP_OPTIONS,
    RC,
    ROUTER_TYPE,
    bootstrap,
    cluster,
    hcm,
    listener,
    route,
    vhost,
)

NOT_SUPPORTED = "not supported by fastmesh yet (see docs/envoy-subset.md)"
TP = "type.googleapis.com/"
FAULT = TP + "envoy.extensions.filters.http.fault.v3.HTTPFault"
RATE_LIMIT = TP + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
CORS = TP + "envoy.extensions.filters.http.cors.v3.Cors"
CORS_POLICY = TP + "envoy.extensions.filters.http.cors.v3.CorsPolicy"
ROUTE0 = f"{RC}.virtual_hosts[0].routes[0]"
CLUSTER0 = "static_resources.clusters[0]"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}


def translate(doc: dict[str, Any]) -> dict[str, Any]:
    return translate_bootstrap(doc, "test.yaml").snapshot


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc, "envoy.yaml")
    return {p.path: p.message for p in info.value.problems}


def filters(*chain: dict[str, Any]) -> list[dict[str, Any]]:
    return [*chain, ROUTER]


def fault_filter(**cfg: Any) -> dict[str, Any]:
    return {"name": "envoy.filters.http.fault", "typed_config": {"@type": FAULT, **cfg}}


def rate_limit_filter(**cfg: Any) -> dict[str, Any]:
    typed = {"@type": RATE_LIMIT, "stat_prefix": "rl", **cfg}
    return {"name": "envoy.filters.http.local_ratelimit", "typed_config": typed}


CORS_FILTER = {"name": "envoy.filters.http.cors", "typed_config": {"@type": CORS}}
CLUSTERS = [cluster(), cluster("canary"), cluster("shadow")]


def with_routes(
    *routes: dict[str, Any], chain: list[Any] | None = None, **vh: Any
) -> dict[str, Any]:
    typed = hcm([vhost(routes=list(routes), **vh)])
    if chain is not None:
        typed["http_filters"] = chain
    return bootstrap([listener(typed)], CLUSTERS)


def first_vhost(doc: dict[str, Any]) -> dict[str, Any]:
    vh: dict[str, Any] = translate(doc)["listeners"][0]["filter"]["route_config"]["virtual_hosts"][
        0
    ]
    return vh


def first_route(doc: dict[str, Any]) -> dict[str, Any]:
    r: dict[str, Any] = first_vhost(doc)["routes"][0]
    return r


def forward(doc: dict[str, Any]) -> dict[str, Any]:
    fwd: dict[str, Any] = first_route(doc)["action"]["forward"]
    return fwd


class TestRouteMatch:
    def test_query_parameters(self) -> None:
        r = route()
        r["match"]["query_parameters"] = [
            {"name": "v", "string_match": {"exact": "2", "ignore_case": True}},
            {"name": "debug", "present_match": True},
            {
                "name": "id",
                "string_match": {"safe_regex": {"regex": "[0-9]+"}, "ignore_case": True},
            },
        ]
        assert first_route(with_routes(r))["match"]["query_parameters"] == [
            {"name": "v", "value": {"kind": {"exact": "2"}, "ignore_case": True}},
            {"name": "debug"},
            {"name": "id", "value": {"kind": {"regex": "[0-9]+"}, "ignore_case": False}},
        ]

    def test_query_parameter_errors(self) -> None:
        r = route()
        r["match"]["query_parameters"] = [
            {"name": "a"},
            {"name": "b", "present_match": False},
            {"name": "c", "string_match": {"exact": "x"}, "present_match": True},
            {"name": "", "string_match": {"prefix": 1}},
        ]
        base = f"{ROUTE0}.match.query_parameters"
        assert problems(with_routes(r)) == {
            f"{base}[0]": "expected exactly one of string_match, present_match",
            f"{base}[1].present_match": "expected present_match: true",
            f"{base}[2]": "expected exactly one of string_match, present_match",
            f"{base}[3].name": "expected a non-empty string",
            f"{base}[3].string_match.prefix": "expected a string, got an integer",
        }


class TestForwardPolicies:
    def test_weighted_clusters(self) -> None:
        split = {
            "total_weight": 100,
            "clusters": [
                {"name": "backend", "weight": 90},
                {
                    "name": "canary",
                    "weight": 10,
                    "host_rewrite_literal": "canary.internal",
                    "request_headers_to_add": [{"header": {"key": "x-canary", "value": "1"}}],
                    "response_headers_to_remove": ["x-debug"],
                },
            ],
        }
        r = {"match": {"prefix": "/"}, "route": {"weighted_clusters": split, "timeout": "2s"}}
        assert forward(with_routes(r)) == {
            "timeout_ms": 2000,
            "weighted_clusters": [
                {"name": "backend", "weight": 90},
                {
                    "name": "canary",
                    "weight": 10,
                    "headers": {
                        "request_add": [{"name": "x-canary", "value": "1", "append": True}],
                        "response_remove": ["x-debug"],
                    },
                    "host_rewrite": "canary.internal",
                },
            ],
        }

    def test_weighted_cluster_errors(self) -> None:
        bad_total = {"total_weight": 50, "clusters": [{"name": "backend", "weight": 60}]}
        zero = {"clusters": [{"name": "backend", "weight": 0}]}
        unknown = {"clusters": [{"name": "nope", "weight": 1, "typed_per_filter_config": {}}]}
        routes = [
            {"match": {"prefix": "/a"}, "route": {"weighted_clusters": bad_total}},
            {"match": {"prefix": "/b"}, "route": {"weighted_clusters": zero}},
            {"match": {"prefix": "/c"}, "route": {"weighted_clusters": unknown}},
            {"match": {"prefix": "/d"}, "route": {"cluster": "backend", "weighted_clusters": zero}},
        ]
        found = problems(with_routes(*routes))
        base = f"{RC}.virtual_hosts[0].routes"
        assert found == {
            f"{base}[0].route.weighted_clusters.total_weight": "expected the sum of the weights "
            "(60), got 50",
            f"{base}[1].route.weighted_clusters.clusters": "expected weights summing to "
            "1..4294967295, got 0",
            f"{base}[2].route.weighted_clusters.clusters[0].typed_per_filter_config": found[
                f"{base}[2].route.weighted_clusters.clusters[0].typed_per_filter_config"
            ],
            f"{base}[2].route.weighted_clusters.clusters[0].name": "unknown cluster 'nope' (no "
            "cluster of that name is defined)",
            f"{base}[3].route": "expected exactly one of cluster, weighted_clusters, got both",
            f"{base}[3].route.weighted_clusters.clusters": "expected weights summing to "
            "1..4294967295, got 0",
        }
        assert found[
            f"{base}[2].route.weighted_clusters.clusters[0].typed_per_filter_config"
        ].startswith(NOT_SUPPORTED)

    def test_retry_policy_and_rewrites(self) -> None:
        retry = {
            "retry_on": "5xx, gateway-error,retriable-status-codes,5xx,unavailable",
            "num_retries": 3,
            "per_try_timeout": "0.25s",
            "retriable_status_codes": [409],
            "retry_back_off": {"base_interval": "0.01s", "max_interval": "1s"},
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": TP + "envoy.extensions.retry.host.previous_hosts.v3."
                        "PreviousHostsPredicate"
                    },
                }
            ],
            "host_selection_retry_max_attempts": 3,
        }
        r = route(
            retry_policy=retry,
            regex_rewrite={"pattern": {"regex": "^/v1/(.*)"}, "substitution": "/\\1"},
            idle_timeout="30s",
            max_stream_duration={"max_stream_duration": "60s"},
        )
        assert forward(with_routes(r)) == {
            "cluster": "backend",
            "regex_rewrite": {"pattern": "^/v1/(.*)", "substitution": "/\\1"},
            "retry_policy": {
                "retry_on": ["5xx", "gateway-error", "retriable-status-codes", "unavailable"],
                "num_retries": 3,
                "per_try_timeout_ms": 250,
                "retriable_status_codes": [409],
                "base_interval_ms": 10,
                "max_interval_ms": 1000,
                "avoid_previous_hosts": True,
            },
            "idle_timeout_ms": 30_000,
            "max_stream_duration_ms": 60_000,
        }

    def test_retry_policy_errors(self) -> None:
        retry = {
            "retry_on": "5xx,envoy-ratelimited",
            "num_retries": -1,
            "retriable_status_codes": [99, "500"],
            "retry_back_off": {"base_interval": "1s", "max_interval": "0.5s"},
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.omit_canary_hosts"}],
            "per_try_idle_timeout": "1s",
        }
        r = route(retry_policy=retry, prefix_rewrite="/", regex_rewrite={"substitution": "/"})
        p = f"{ROUTE0}.route"
        found = problems(with_routes(r))
        assert found.pop(f"{p}.retry_policy.per_try_idle_timeout").startswith(NOT_SUPPORTED)
        assert found == {
            f"{p}.retry_policy.retry_on": f"retry condition 'envoy-ratelimited' is {NOT_SUPPORTED}"
            "; supported: 5xx, gateway-error, reset, connect-failure, retriable-status-codes, "
            "retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, "
            "resource-exhausted, unavailable",
            f"{p}.retry_policy.num_retries": "expected an integer 0..4294967295, got -1",
            f"{p}.retry_policy.retriable_status_codes[0]": "expected an HTTP status 100..599, "
            "got 99",
            f"{p}.retry_policy.retriable_status_codes[1]": "expected an HTTP status 100..599, "
            "got '500'",
            f"{p}.retry_policy.retry_back_off.max_interval": "expected at least base_interval",
            f"{p}.retry_policy.retry_host_predicate[0].name": "retry host predicate "
            f"'envoy.retry_host_predicates.omit_canary_hosts' is {NOT_SUPPORTED}; only "
            "envoy.retry_host_predicates.previous_hosts is",
            p: "expected at most one of prefix_rewrite, regex_rewrite, got prefix_rewrite, "
            "regex_rewrite",
            f"{p}.regex_rewrite.pattern": "required field is missing",
        }

    def test_virtual_host_retry_policy_fills_routes_without_one(self) -> None:
        own = route(prefix="/own", retry_policy={"retry_on": "reset", "num_retries": 5})
        doc = with_routes(
            own,
            route(prefix="/"),
            {"match": {"prefix": "/x"}, "direct_response": {"status": 204}},
            retry_policy={"retry_on": "connect-failure"},
        )
        own_fwd, plain, direct = first_vhost(doc)["routes"]
        assert own_fwd["action"]["forward"]["retry_policy"] == {
            "retry_on": ["reset"],
            "num_retries": 5,
        }
        assert plain["action"]["forward"]["retry_policy"] == {"retry_on": ["connect-failure"]}
        assert direct["action"] == {"direct": {"status": 204, "body": ""}}

    def test_hash_policy(self) -> None:
        hashes = [
            {"header": {"header_name": "X-User"}},
            {"cookie": {"name": "session"}, "terminal": True},
            {"connection_properties": {"source_ip": True}},
            {"query_parameter": {"name": "key"}},
        ]
        assert forward(with_routes(route(hash_policy=hashes)))["hash_policy"] == [
            {"kind": {"header": "x-user"}},
            {"kind": {"cookie": "session"}, "terminal": True},
            {"kind": "source_ip"},
            {"kind": {"query_parameter": "key"}},
        ]

    def test_hash_policy_errors(self) -> None:
        hashes = [
            {"cookie": {"name": "s", "ttl": "1s"}},
            {"connection_properties": {"source_ip": False}},
            {"header": {"header_name": "x"}, "query_parameter": {"name": "k"}},
            {"filter_state": {"key": "k"}},
        ]
        base = f"{ROUTE0}.route.hash_policy"
        found = problems(with_routes(route(hash_policy=hashes)))
        assert found.pop(f"{base}[3].filter_state").startswith(NOT_SUPPORTED)
        assert found == {
            f"{base}[0].cookie.ttl": f"cookie generation is {NOT_SUPPORTED}: a missing cookie "
            "yields no hash",
            f"{base}[1].connection_properties.source_ip": "expected source_ip: true",
            f"{base}[2]": "expected exactly one of header, cookie, connection_properties, "
            "query_parameter, got header, query_parameter",
            f"{base}[3]": "expected exactly one of header, cookie, connection_properties, "
            "query_parameter",
        }

    def test_mirrors(self) -> None:
        mirrors = [
            {"cluster": "shadow"},
            {
                "cluster": "canary",
                "runtime_fraction": {
                    "default_value": {"numerator": 5, "denominator": "TEN_THOUSAND"},
                    "runtime_key": "mirror.canary",
                },
            },
        ]
        assert forward(with_routes(route(request_mirror_policies=mirrors)))["mirrors"] == [
            {"cluster": "shadow"},
            {"cluster": "canary", "percent": {"numerator": 5, "denominator": 10_000}},
        ]

    def test_mirror_errors(self) -> None:
        mirrors = [
            {"cluster": "gone"},
            {"cluster": "shadow", "runtime_fraction": {"runtime_key": "k"}},
            {"cluster": "shadow", "runtime_fraction": {"default_value": {"denominator": "TEN"}}},
        ]
        base = f"{ROUTE0}.route.request_mirror_policies"
        assert problems(with_routes(route(request_mirror_policies=mirrors))) == {
            f"{base}[0].cluster": "unknown cluster 'gone' (no cluster of that name is defined)",
            f"{base}[1].runtime_fraction.default_value": "required field is missing",
            f"{base}[2].runtime_fraction.default_value.denominator": "expected one of HUNDRED, "
            "TEN_THOUSAND, MILLION, got 'TEN'",
        }


class TestRedirect:
    def test_redirect(self) -> None:
        r = {
            "match": {"prefix": "/old"},
            "redirect": {
                "https_redirect": True,
                "host_redirect": "new.example.com",
                "port_redirect": 8443,
                "prefix_rewrite": "/new",
                "strip_query": True,
                "response_code": "PERMANENT_REDIRECT",
            },
        }
        assert first_route(with_routes(r))["action"] == {
            "redirect": {
                "scheme": "https",
                "host": "new.example.com",
                "port": 8443,
                "prefix_rewrite": "/new",
                "strip_query": True,
                "response_code": 308,
            }
        }

    def test_default_code_is_left_to_the_engine(self) -> None:
        r = {
            "match": {"path": "/a"},
            "redirect": {"path_redirect": "/b", "scheme_redirect": "HTTP"},
        }
        assert first_route(with_routes(r))["action"] == {
            "redirect": {"scheme": "http", "path": "/b"}
        }

    def test_redirect_errors(self) -> None:
        r = {
            "match": {"safe_regex": {"regex": "/x.*"}},
            "redirect": {
                "prefix_rewrite": "/y",
                "path_redirect": "/z",
                "port_redirect": 70000,
                "response_code": 302,
            },
        }
        p = f"{ROUTE0}.redirect"
        assert problems(with_routes(r)) == {
            p: "expected at most one of path_redirect, prefix_rewrite, regex_rewrite, got "
            "path_redirect, prefix_rewrite",
            f"{p}.port_redirect": "expected an integer 1..65535, got 70000",
            f"{p}.prefix_rewrite": "prefix_rewrite needs a prefix or path match, not safe_regex",
            f"{p}.response_code": "expected one of MOVED_PERMANENTLY, FOUND, SEE_OTHER, "
            "TEMPORARY_REDIRECT, PERMANENT_REDIRECT, got 302",
        }


class TestHttpFilters:
    def test_chain_with_fault_rate_limit_and_cors(self) -> None:
        fault = fault_filter(
            delay={"fixed_delay": "0.5s", "percentage": {"numerator": 10}},
            abort={"http_status": 503, "percentage": {"numerator": 1, "denominator": "MILLION"}},
            headers=[{"name": "x-fault", "present_match": True}],
            max_active_faults=20,
        )
        rl = rate_limit_filter(
            token_bucket={"max_tokens": 10, "tokens_per_fill": 5, "fill_interval": "1s"},
            filter_enabled={"default_value": {"numerator": 100}, "runtime_key": "rl.on"},
            filter_enforced={"default_value": {"numerator": 50}},
            status={"code": "ServiceUnavailable"},
            response_headers_to_add=[
                {
                    "header": {"key": "x-limited", "value": "1"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
            enable_x_ratelimit_headers="DRAFT_VERSION_03",
        )
        typed = hcm(http_filters=filters(fault, rl, CORS_FILTER), stream_idle_timeout="300s")
        f = translate(bootstrap([listener(typed)]))["listeners"][0]["filter"]
        assert f["stream_idle_timeout_ms"] == 300_000
        assert f["http_filters"] == [
            {
                "type": "fault",
                "delay": {"percent": {"numerator": 10, "denominator": 100}, "fixed_ms": 500},
                "abort": {
                    "percent": {"numerator": 1, "denominator": 1_000_000},
                    "http_status": 503,
                },
                "headers": [{"name": "x-fault", "match": {"present": True}}],
                "max_active_faults": 20,
            },
            {
                "type": "local_rate_limit",
                "stat_prefix": "rl",
                "token_bucket": {"max_tokens": 10, "fill_interval_ms": 1000, "tokens_per_fill": 5},
                "enabled": {"numerator": 100, "denominator": 100},
                "enforced": {"numerator": 50, "denominator": 100},
                "status": 503,
                "response_headers_to_add": [{"name": "x-limited", "value": "1", "append": False}],
                "x_ratelimit_headers": True,
            },
            {"type": "cors"},
        ]

    def test_header_controlled_faults_and_unset_percentage(self) -> None:
        fault = fault_filter(delay={"header_delay": {}}, abort={"grpc_status": 14})
        f = translate(bootstrap([listener(hcm(http_filters=filters(fault)))]))["listeners"][0]
        assert f["filter"]["http_filters"] == [
            {
                "type": "fault",
                "delay": {
                    "percent": {"numerator": 0, "denominator": 100},
                    "header_controlled": True,
                },
                "abort": {"percent": {"numerator": 0, "denominator": 100}, "grpc_status": 14},
            }
        ]

    def test_chain_errors(self) -> None:
        fault = fault_filter(
            delay={"fixed_delay": "1s", "header_delay": {}},
            abort={"http_status": 600, "percentage": {"numerator": "x"}},
            upstream_cluster="backend",
        )
        rl = rate_limit_filter(
            token_bucket={"max_tokens": 0, "fill_interval": "0s"},
            status={"code": "OK"},
            enable_x_ratelimit_headers="DRAFT_VERSION_04",
        )
        del rl["typed_config"]["stat_prefix"]
        chain = [fault, ROUTER, rl, fault_filter(), {"name": "x", "typed_config": {"@type": CORS}}]
        found = problems(bootstrap([listener(hcm(http_filters=chain))]))
        p = f"{HCM}.http_filters"
        assert found.pop(f"{p}[0].typed_config.upstream_cluster").startswith(NOT_SUPPORTED)
        assert found == {
            f"{p}[0].typed_config.delay": "expected exactly one of fixed_delay, header_delay, "
            "got fixed_delay, header_delay",
            f"{p}[0].typed_config.abort.percentage.numerator": "expected an integer 0..4294967295,"
            " got a string",
            f"{p}[0].typed_config.abort.http_status": "expected an integer 200..599, got 600",
            f"{p}[1]": "envoy.filters.http.router must be the last HTTP filter",
            f"{p}[2].typed_config.stat_prefix": "required field is missing (expected a string)",
            f"{p}[2].typed_config.token_bucket.max_tokens": "expected an integer 1..4294967295, "
            "got 0",
            f"{p}[2].typed_config.token_bucket.fill_interval": "expected a duration greater than "
            "0s, got '0s'",
            f"{p}[2].typed_config.status.code": "expected an error status (a StatusCode name like "
            "TooManyRequests, or 400..599), got 'OK'",
            f"{p}[2].typed_config.enable_x_ratelimit_headers": "expected one of OFF, "
            "DRAFT_VERSION_03, got 'DRAFT_VERSION_04'",
            f"{p}[3]": f"a second filter of the same type as {p}[0] is {NOT_SUPPORTED}",
            f"{p}[3].name": "duplicate HTTP filter name 'envoy.filters.http.fault'",
            f"{p}[4]": "the last HTTP filter must be the router (envoy.filters.http.router)",
        }


class TestPerFilterConfig:
    CHAIN = filters(fault_filter(), rate_limit_filter(), CORS_FILTER)

    def test_route_and_virtual_host_overrides(self) -> None:
        per_route = {
            "envoy.filters.http.fault": {"@type": FAULT, "abort": {"http_status": 418}},
            "envoy.filters.http.local_ratelimit": {
                "@type": RATE_LIMIT,
                "stat_prefix": "route_rl",
                "token_bucket": {"max_tokens": 1, "fill_interval": "60s"},
            },
        }
        policy = {
            "allow_origin_string_match": [
                {"suffix": ".example.com"},
                {"exact": "A", "ignore_case": True},
            ],
            "allow_methods": "GET, POST",
            "allow_headers": "x-a",
            "expose_headers": "x-b",
            "max_age": "600",
            "allow_credentials": True,
            "allow_private_network_access": True,
            "filter_enabled": {"default_value": {"numerator": 50}},
        }
        r = route(cors={"allow_methods": "PUT"})
        r["typed_per_filter_config"] = per_route
        vh = first_vhost(
            with_routes(
                r,
                chain=self.CHAIN,
                typed_per_filter_config={
                    "envoy.filters.http.cors": {"@type": CORS_POLICY, **policy}
                },
            )
        )
        assert vh["filter_overrides"] == {
            "cors": {
                "allow_origin": [
                    {"kind": {"suffix": ".example.com"}, "ignore_case": False},
                    {"kind": {"exact": "A"}, "ignore_case": True},
                ],
                "allow_methods": "GET, POST",
                "allow_headers": "x-a",
                "expose_headers": "x-b",
                "max_age": "600",
                "allow_credentials": True,
                "allow_private_network_access": True,
                "enabled": {"numerator": 50, "denominator": 100},
            }
        }
        assert vh["routes"][0]["filter_overrides"] == {
            "fault": {
                "abort": {"percent": {"numerator": 0, "denominator": 100}, "http_status": 418}
            },
            "local_rate_limit": {
                "stat_prefix": "route_rl",
                "token_bucket": {"max_tokens": 1, "fill_interval_ms": 60_000},
            },
            "cors": {"allow_methods": "PUT"},
        }
        assert "filter_overrides" not in vh["routes"][0]["action"]["forward"]

    def test_override_errors(self) -> None:
        r = route(cors={"allow_methods": "PUT"})
        r["typed_per_filter_config"] = {
            "envoy.filters.http.lua": {},
            "envoy.filters.http.fault": {"@type": RATE_LIMIT},
            "envoy.filters.http.cors": {"@type": CORS_POLICY, "shadow_enabled": {}},
        }
        found = problems(with_routes(r, chain=self.CHAIN, cors={"allow_headers": 1}))
        tp = f"{ROUTE0}.typed_per_filter_config"
        assert found.pop(f"{tp}.envoy.filters.http.lua").startswith(NOT_SUPPORTED)
        assert found.pop(f"{tp}.envoy.filters.http.cors.shadow_enabled").startswith(NOT_SUPPORTED)
        assert found == {
            f"{tp}.envoy.filters.http.fault.@type": f"expected \"{FAULT}\", got '{RATE_LIMIT}'",
            f"{ROUTE0}.route.cors": "set either this or typed_per_filter_config for "
            "envoy.filters.http.cors, not both",
            f"{RC}.virtual_hosts[0].cors.allow_headers": "expected a string, got an integer",
        }

    def test_cors_policy_needs_the_cors_filter(self) -> None:
        found = problems(with_routes(route(), cors={"allow_methods": "GET"}))
        assert found == {
            f"{RC}.virtual_hosts[0].cors": "a CORS policy needs the envoy.filters.http.cors "
            "filter in http_filters (without it the policy does nothing)"
        }


class TestClusterResilience:
    def test_hash_balancers_breakers_outliers_health_checks(self) -> None:
        c = cluster(
            lb_policy="RING_HASH",
            ring_hash_lb_config={
                "minimum_ring_size": 64,
                "maximum_ring_size": "4096",
                "hash_function": "XX_HASH",
            },
            common_lb_config={"healthy_panic_threshold": {"value": 25.5}},
            circuit_breakers={
                "thresholds": [
                    {
                        "priority": "DEFAULT",
                        "max_connections": 10,
                        "max_pending_requests": 20,
                        "max_requests": 30,
                        "max_retries": 4,
                        "retry_budget": {
                            "budget_percent": {"value": 25},
                            "min_retry_concurrency": 2,
                        },
                        "track_remaining": False,
                    }
                ]
            },
            outlier_detection={
                "consecutive_5xx": 3,
                "consecutive_gateway_failure": "2",
                "interval": "1s",
                "base_ejection_time": "5s",
                "max_ejection_time": "50s",
                "max_ejection_percent": 50,
                "enforcing_consecutive_5xx": 100,
                "enforcing_consecutive_gateway_failure": 100,
                "enforcing_success_rate": 0,
                "success_rate_minimum_hosts": 3,
                "success_rate_request_volume": 10,
                "success_rate_stdev_factor": 1000,
            },
            health_checks=[
                {
                    "timeout": "1s",
                    "interval": "5s",
                    "interval_jitter": "0.1s",
                    "no_traffic_interval": "2s",
                    "unhealthy_threshold": 2,
                    "healthy_threshold": 1,
                    "http_health_check": {
                        "path": "/healthz",
                        "host": "health.local",
                        "expected_statuses": [{"start": 200, "end": 300}],
                        "codec_client_type": "HTTP2",
                    },
                },
                {
                    "timeout": "1s",
                    "interval": "5s",
                    "unhealthy_threshold": 3,
                    "healthy_threshold": 2,
                    "tcp_health_check": {
                        "send": {"text": "50494E47"},
                        "receive": [{"text": "50"}, {"text": "4f4e47"}],
                    },
                },
            ],
        )
        c["load_assignment"]["endpoints"].append(
            {
                "priority": 1,
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {
                                "socket_address": {"address": "127.0.0.2", "port_value": 8080}
                            }
                        }
                    }
                ],
            }
        )
        out = translate(bootstrap(clusters=[c]))["clusters"][0]
        assert out == {
            "name": "backend",
            "discovery": "static",
            "lb_policy": "ring_hash",
            "connect_timeout_ms": 1000,
            "endpoints": [
                {"host": "127.0.0.1", "port": 8080},
                {"host": "127.0.0.2", "port": 8080, "priority": 1},
            ],
            "ring_hash": {"min_ring_size": 64, "max_ring_size": 4096},
            "healthy_panic_threshold": 25.5,
            "circuit_breakers": {
                "max_connections": 10,
                "max_pending_requests": 20,
                "max_requests": 30,
                "max_retries": 4,
                "retry_budget": {"budget_percent": 25.0, "min_retry_concurrency": 2},
            },
            "outlier_detection": {
                "consecutive_5xx": 3,
                "consecutive_gateway_failure": 2,
                "max_ejection_percent": 50,
                "enforcing_consecutive_5xx": 100,
                "enforcing_consecutive_gateway_failure": 100,
                "enforcing_success_rate": 0,
                "success_rate_minimum_hosts": 3,
                "success_rate_request_volume": 10,
                "success_rate_stdev_factor": 1000,
                "interval_ms": 1000,
                "base_ejection_time_ms": 5000,
                "max_ejection_time_ms": 50_000,
            },
            "health_checks": [
                {
                    "timeout_ms": 1000,
                    "interval_ms": 5000,
                    "interval_jitter_ms": 100,
                    "no_traffic_interval_ms": 2000,
                    "unhealthy_threshold": 2,
                    "healthy_threshold": 1,
                    "kind": {
                        "http": {
                            "path": "/healthz",
                            "host": "health.local",
                            "expected_statuses": [(200, 300)],
                            "http2": True,
                        }
                    },
                },
                {
                    "timeout_ms": 1000,
                    "interval_ms": 5000,
                    # Envoy's default when unset.
                    "no_traffic_interval_ms": 60000,
                    "unhealthy_threshold": 3,
                    "healthy_threshold": 2,
                    "kind": {
                        "tcp": {
                            "send": [0x50, 0x49, 0x4E, 0x47],
                            "receive": [0x50, 0x4F, 0x4E, 0x47],
                        }
                    },
                },
            ],
        }

    def test_maglev(self) -> None:
        c = cluster(lb_policy="MAGLEV", maglev_lb_config={"table_size": 65537})
        out = translate(bootstrap(clusters=[c]))["clusters"][0]
        assert (out["lb_policy"], out["maglev_table_size"]) == ("maglev", 65537)

    def test_cluster_errors(self) -> None:
        c = cluster(
            lb_policy="MAGLEV",
            maglev_lb_config={"table_size": 65536},
            ring_hash_lb_config={
                "hash_function": "MURMUR_HASH_2",
                "minimum_ring_size": 9000,
                "maximum_ring_size": 100,
            },
            common_lb_config={"healthy_panic_threshold": {"value": 101}},
            circuit_breakers={
                "thresholds": [
                    {"priority": "HIGH", "max_connections": -1, "track_remaining": True},
                    {"max_requests": 1},
                ]
            },
            outlier_detection={
                "max_ejection_percent": 101,
                "interval": "0s",
                "base_ejection_time": "400s",
            },
            health_checks=[
                {"interval": "1s", "healthy_threshold": 1, "unhealthy_threshold": 0},
                {
                    "timeout": "1s",
                    "interval": "1s",
                    "healthy_threshold": 1,
                    "unhealthy_threshold": 1,
                    "http_health_check": {
                        "path": "",
                        "expected_statuses": [{"start": 300, "end": 200}],
                        "codec_client_type": "HTTP3",
                    },
                    "tcp_health_check": {},
                },
                {
                    "timeout": "1s",
                    "interval": "1s",
                    "healthy_threshold": 1,
                    "unhealthy_threshold": 1,
                    "tcp_health_check": {"send": {"text": "zz"}, "receive": [{"binary": "AA=="}]},
                },
            ],
        )
        c["load_assignment"]["endpoints"][0]["priority"] = 129
        found = problems(bootstrap(clusters=[c]))
        hc = f"{CLUSTER0}.health_checks"
        assert found.pop(f"{hc}[2].tcp_health_check.receive[0].binary").startswith(NOT_SUPPORTED)
        t = f"{CLUSTER0}.circuit_breakers.thresholds"
        od = f"{CLUSTER0}.outlier_detection"
        assert found == {
            f"{CLUSTER0}.load_assignment.endpoints[0].priority": "expected an integer 0..128, "
            "got 129",
            f"{CLUSTER0}.ring_hash_lb_config": "only applies with lb_policy: RING_HASH",
            f"{CLUSTER0}.ring_hash_lb_config.hash_function": f"MURMUR_HASH_2 is {NOT_SUPPORTED}",
            f"{CLUSTER0}.ring_hash_lb_config.maximum_ring_size": "expected at least "
            "minimum_ring_size",
            f"{CLUSTER0}.maglev_lb_config.table_size": "expected a prime number, got 65536",
            f"{CLUSTER0}.common_lb_config.healthy_panic_threshold.value": "expected a number "
            "0..100, got 101",
            f"{t}[0].priority": f"HIGH is {NOT_SUPPORTED}: fastmesh has no request priorities",
            f"{t}[0].track_remaining": f"remaining_* gauges are {NOT_SUPPORTED}",
            f"{t}[0].max_connections": "expected an integer 0..4294967295, got -1",
            f"{t}[1]": "a second DEFAULT threshold (Envoy allows one per priority)",
            f"{od}.max_ejection_percent": "expected an integer 0..100, got 101",
            f"{od}.interval": "expected a duration greater than 0s, got '0s'",
            f"{od}.max_ejection_time": "expected at least base_ejection_time (400000 ms), "
            "got 300000 ms",
            f"{hc}[0].timeout": "required field is missing",
            f"{hc}[0].unhealthy_threshold": "expected an integer 1..4294967295, got 0",
            f"{hc}[0]": "expected exactly one of http_health_check, tcp_health_check",
            f"{hc}[1]": "expected exactly one of http_health_check, tcp_health_check, got "
            "http_health_check, tcp_health_check",
            f"{hc}[2].tcp_health_check.send.text": "expected hex digits (e.g. '50494e47'), "
            "got 'zz'",
            f"{hc}[2].tcp_health_check.receive[0].text": "required field is missing (expected a "
            "string)",
        }

    def test_http_health_check_errors(self) -> None:
        check = {
            "timeout": "1s",
            "interval": "1s",
            "healthy_threshold": 1,
            "unhealthy_threshold": 1,
            "http_health_check": {
                "path": "",
                "expected_statuses": [{"start": 300, "end": 200}, {"start": 200}],
                "codec_client_type": "HTTP3",
                "request_headers_to_add": [],
            },
        }
        found = problems(bootstrap(clusters=[cluster(health_checks=[check])]))
        p = f"{CLUSTER0}.health_checks[0].http_health_check"
        assert found.pop(f"{p}.request_headers_to_add").startswith(NOT_SUPPORTED)
        assert found == {
            f"{p}.path": "expected a non-empty string",
            f"{p}.expected_statuses[0]": "expected start < end (end is exclusive), got [300, 200)",
            f"{p}.expected_statuses[1].end": "required field is missing (expected an integer "
            "101..600)",
            f"{p}.codec_client_type": f"HTTP3 is {NOT_SUPPORTED}",
        }


KEEPALIVE: Final = {"interval": "10s", "timeout": "2s", "interval_jitter": {"value": 5}}
ENGINE_KEEPALIVE: Final = {
    "interval_ms": 10_000,
    "timeout_ms": 2_000,
    "interval_jitter_percent": 5.0,
}


class TestConnectionTimers:
    """HTTP/2 `connection_keepalive` (HCM and cluster), `max_connection_duration`."""

    def test_downstream_and_upstream(self) -> None:
        h = hcm(
            common_http_protocol_options={"max_connection_duration": "60s"},
            http2_protocol_options={"connection_keepalive": KEEPALIVE},
        )
        typed = cluster(
            "backend",
            typed_extension_protocol_options={
                HTTP_OPTIONS: {
                    "@type": TP + HTTP_OPTIONS,
                    "explicit_http_config": {
                        "http2_protocol_options": {"connection_keepalive": {"timeout": "1s"}}
                    },
                }
            },
        )
        legacy = cluster("backend2", http2_protocol_options={"connection_keepalive": KEEPALIVE})
        snap = translate(bootstrap([listener(h)], [typed, legacy]))
        f = snap["listeners"][0]["filter"]
        assert f["max_connection_duration_ms"] == 60_000
        assert f["connection_keepalive"] == ENGINE_KEEPALIVE
        t, lg = snap["clusters"]
        assert (t["http2"], lg["http2"]) == (True, True)
        assert t["http2_keepalive"] == {
            "interval_ms": 0,
            "timeout_ms": 1_000,
            "interval_jitter_percent": 15.0,
        }
        assert lg["http2_keepalive"] == ENGINE_KEEPALIVE

    def test_errors(self) -> None:
        h = hcm(
            http2_protocol_options={
                "connection_keepalive": {
                    "interval": "1s",
                    "timeout": "0s",
                    "connection_idle_interval": "1s",
                }
            },
        )
        c = cluster(http2_protocol_options={"connection_keepalive": {"interval": "1s"}})
        ka = f"{HCM}.http2_protocol_options.connection_keepalive"
        assert problems(bootstrap([listener(h)], [c])) == {
            f"{ka}.connection_idle_interval": NOT_SUPPORTED,
            f"{ka}.timeout": "expected a duration greater than 0s, got '0s'",
            f"{CLUSTER0}.http2_protocol_options.connection_keepalive.timeout": (
                "required field is missing"
            ),
        }
