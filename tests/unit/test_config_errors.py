"""The translator on configs it cannot run: every problem, with file, field path and expectation."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest

from fastmesh.config import (
    ConfigError,
    Problem,
    load_bootstrap,
    translate_bootstrap,
    translate_resources,
)

from .envoy_docs import (
    HCM,
    HTTP_OPTIONS,
    RC,
    bootstrap,
    cluster,
    hcm,
    listener,
    route,
    socket,
    tcp_listener,
    vhost,
)

NOT_SUPPORTED = "not supported by fastmesh yet (see docs/envoy-subset.md)"


def problems(doc: dict[str, Any]) -> dict[str, str]:
    """path -> message of every problem in `doc` (which must be rejected)."""
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc, "envoy.yaml")
    err = info.value
    assert err.source == "envoy.yaml"
    out = {p.path: p.message for p in err.problems}
    assert len(out) == len(err.problems), f"one problem per path: {err}"
    return out


def only_problem(doc: dict[str, Any]) -> tuple[str, str]:
    found = problems(doc)
    assert len(found) == 1, found
    ((path, message),) = found.items()
    return path, message


def with_route(r: dict[str, Any], clusters: list[Any] | None = None) -> dict[str, Any]:
    return bootstrap([listener(hcm([vhost(routes=[r])]))], clusters)


class TestErrorFormat:
    def test_message_names_file_field_and_expectation(self) -> None:
        doc = with_route(route(timeout="15"))
        with pytest.raises(ConfigError) as info:
            translate_bootstrap(doc, "/etc/envoy/envoy.yaml")
        lines = str(info.value).splitlines()
        assert lines == [
            "/etc/envoy/envoy.yaml: 1 error",
            f"/etc/envoy/envoy.yaml: {RC}.virtual_hosts[0].routes[0].route.timeout: "
            'expected a duration like "1.5s" (seconds with an "s" suffix), got \'15\'',
        ]
        assert info.value.problems == (
            Problem(
                f"{RC}.virtual_hosts[0].routes[0].route.timeout",
                'expected a duration like "1.5s" (seconds with an "s" suffix), got \'15\'',
            ),
        )
        assert isinstance(info.value, ValueError)

    def test_unsupported_field_deep_in_the_tree(self) -> None:
        r = route(rate_limits=[{"actions": []}])
        doc = bootstrap([listener(hcm([vhost(), vhost("second", ["b.example"], [r])]))])
        path, message = only_problem(doc)
        assert path == (
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
            ".route_config.virtual_hosts[1].routes[0].route.rate_limits"
        )
        assert message.startswith(NOT_SUPPORTED)
        assert "supported here: cluster, cors, hash_policy, host_rewrite_literal" in message

    def test_every_error_of_a_file_is_reported_in_document_order(self, tmp_path: Path) -> None:
        doc = bootstrap(
            [
                listener(hcm([vhost(routes=[route("nope"), route(prefix_rewrite=3)])], rds={})),
                tcp_listener("backend", port=70000),
            ],
            [
                cluster(lb_policy="CLUSTER_PROVIDED"),
                cluster("dns", ("db.internal", 5432)),
            ],
            watchdog={},
        )
        path = tmp_path / "envoy.yaml"
        import json

        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError) as info:
            load_bootstrap(path)
        got = [p.path for p in info.value.problems]
        assert got == [
            "watchdog",
            f"{HCM}.rds",
            f"{RC}.virtual_hosts[0].routes[1].route.prefix_rewrite",
            "static_resources.listeners[1].address.socket_address.port_value",
            "static_resources.clusters[0].lb_policy",
            "static_resources.clusters[1].load_assignment.endpoints[0].lb_endpoints[0]"
            ".endpoint.address.socket_address.address",
            f"{RC}.virtual_hosts[0].routes[0].route.cluster",
        ]
        text = str(info.value)
        assert text.startswith(f"{path}: 7 errors\n")
        assert all(line.startswith(f"{path}: ") for line in text.splitlines())


class TestUnknownFields:
    def test_top_level(self) -> None:
        path, message = only_problem(bootstrap(cluster_manager={}))
        assert path == "cluster_manager"
        assert message.startswith(NOT_SUPPORTED)

    def test_camel_case_gets_a_hint(self) -> None:
        lst = listener()
        lst["address"] = {"socket_address": {"address": "127.0.0.1", "portValue": 1}}
        found = problems(bootstrap([lst]))
        assert found["static_resources.listeners[0].address.socket_address.portValue"] == (
            "unknown field; use the proto field name 'port_value' (snake_case)"
        )
        assert found["static_resources.listeners[0].address.socket_address.port_value"] == (
            "required field is missing (expected an integer 0..65535)"
        )

    def test_typo_gets_a_suggestion(self) -> None:
        r = route()
        r["match"] = {"prefx": "/"}
        found = problems(with_route(r))
        assert found[f"{RC}.virtual_hosts[0].routes[0].match.prefx"] == (
            f"{NOT_SUPPORTED}; did you mean 'prefix'?"
        )
        assert found[f"{RC}.virtual_hosts[0].routes[0].match"] == (
            "expected exactly one of prefix, path, safe_regex"
        )

    @pytest.mark.parametrize(
        ("where", "field"),
        [
            ("listener", "socket_options"),
            ("listener", "per_connection_buffer_limit_bytes"),
            ("hcm", "access_log"),
            ("hcm", "generate_request_id"),
            ("hcm", "tracing"),
            ("cluster", "lb_subset_config"),
            ("cluster", "least_request_lb_config"),
            ("cluster", "upstream_bind_config"),
            ("cluster", "transport_socket_matches"),
        ],
    )
    def test_behaviour_changing_fields_are_refused(self, where: str, field: str) -> None:
        doc = bootstrap()
        target = {
            "listener": (doc["static_resources"]["listeners"][0], "static_resources.listeners[0]"),
            "hcm": (
                doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
                    "typed_config"
                ],
                HCM,
            ),
            "cluster": (doc["static_resources"]["clusters"][0], "static_resources.clusters[0]"),
        }
        obj, path = target[where]
        obj[field] = {}
        got_path, message = only_problem(doc)
        assert got_path == f"{path}.{field}"
        assert message.startswith(NOT_SUPPORTED)


class TestTypesAndRanges:
    @pytest.mark.parametrize(
        ("port", "expected"),
        [
            (70000, "expected an integer 0..65535, got 70000"),
            (-1, "expected an integer 0..65535, got -1"),
            ("http", "expected an integer 0..65535, got a string"),
            (True, "expected an integer 0..65535, got a boolean"),
        ],
    )
    def test_listener_port(self, port: object, expected: str) -> None:
        lst = listener()
        lst["address"]["socket_address"]["port_value"] = port
        assert only_problem(bootstrap([lst])) == (
            "static_resources.listeners[0].address.socket_address.port_value",
            expected,
        )

    def test_endpoint_port_zero(self) -> None:
        assert only_problem(bootstrap(clusters=[cluster("backend", ("10.0.0.1", 0))])) == (
            "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0]"
            ".endpoint.address.socket_address.port_value",
            "expected an integer 1..65535, got 0",
        )

    def test_string_port_from_proto_json_is_accepted(self) -> None:
        lst = listener()
        lst["address"]["socket_address"]["port_value"] = "8080"
        snap = translate_bootstrap(bootstrap([lst]), "x").snapshot
        assert snap["listeners"][0]["address"] == "127.0.0.1:8080"

    def test_listener_address_must_be_an_ip(self) -> None:
        lst = listener()
        lst["address"] = socket("localhost", 80)
        assert only_problem(bootstrap([lst])) == (
            "static_resources.listeners[0].address.socket_address.address",
            "expected an IP address, got 'localhost'",
        )

    def test_wrong_container_types(self) -> None:
        doc = bootstrap()
        doc["static_resources"]["clusters"] = {"name": "x"}
        doc["static_resources"]["listeners"][0]["filter_chains"] = "nope"
        found = problems(doc)
        assert found == {
            "static_resources.listeners[0].filter_chains": "expected a list, got a string",
            "static_resources.clusters": "expected a list, got a mapping",
        }

    def test_direct_response_status_range(self) -> None:
        r = {"match": {"prefix": "/"}, "direct_response": {"status": 700}}
        assert only_problem(with_route(r)) == (
            f"{RC}.virtual_hosts[0].routes[0].direct_response.status",
            "expected an integer 200..599, got 700",
        )

    def test_negative_and_zero_durations(self) -> None:
        found = problems(
            bootstrap(clusters=[cluster(connect_timeout="0s", dns_refresh_rate="-1s")])
        )
        assert found == {
            "static_resources.clusters[0].connect_timeout": "expected a duration greater than 0s, "
            "got '0s'",
            "static_resources.clusters[0].dns_refresh_rate": 'expected a duration like "1.5s" '
            "(seconds with an \"s\" suffix), got '-1s'",
        }

    def test_max_request_headers_kb_range(self) -> None:
        assert only_problem(bootstrap([listener(hcm(max_request_headers_kb=9000))])) == (
            f"{HCM}.max_request_headers_kb",
            "expected an integer 1..8192, got 9000",
        )


class TestSemantics:
    def test_route_to_unknown_cluster(self) -> None:
        assert only_problem(with_route(route("missing"))) == (
            f"{RC}.virtual_hosts[0].routes[0].route.cluster",
            "unknown cluster 'missing' (no cluster of that name is defined)",
        )

    def test_tcp_proxy_to_unknown_cluster(self) -> None:
        assert only_problem(bootstrap([tcp_listener("gone")])) == (
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster",
            "unknown cluster 'gone' (no cluster of that name is defined)",
        )

    def test_tcp_proxy_cluster_or_weighted_clusters(self) -> None:
        tc = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
        both = tcp_listener(weighted_clusters={"clusters": [{"name": "backend", "weight": 1}]})
        assert only_problem(bootstrap([both])) == (
            tc,
            "set exactly one of cluster and weighted_clusters",
        )
        zero = tcp_listener(weighted_clusters={"clusters": [{"name": "backend", "weight": 0}]})
        del zero["filter_chains"][0]["filters"][0]["typed_config"]["cluster"]
        assert only_problem(bootstrap([zero])) == (
            f"{tc}.weighted_clusters.clusters",
            "needs a cluster with a weight above 0",
        )
        gone = tcp_listener(weighted_clusters={"clusters": [{"name": "gone", "weight": 1}]})
        del gone["filter_chains"][0]["filters"][0]["typed_config"]["cluster"]
        assert only_problem(bootstrap([gone])) == (
            f"{tc}.weighted_clusters.clusters[0].name",
            "unknown cluster 'gone' (no cluster of that name is defined)",
        )

    def test_duplicate_names_and_addresses(self) -> None:
        doc = bootstrap(
            [listener(), listener(port=10000), tcp_listener(name="ingress", port=10002)],
            [cluster(), cluster()],
        )
        assert problems(doc) == {
            "static_resources.listeners[1].name": "duplicate listener name 'ingress' "
            "(first at static_resources.listeners[0])",
            "static_resources.listeners[1].address": "address 127.0.0.1:10000 is already used "
            "by static_resources.listeners[0]",
            "static_resources.listeners[2].name": "duplicate listener name 'ingress' "
            "(first at static_resources.listeners[0])",
            "static_resources.clusters[1].name": "duplicate cluster name 'backend' "
            "(first at static_resources.clusters[0])",
        }

    @pytest.mark.parametrize(
        ("balance", "field", "message"),
        [
            ({"extend_balance": {}}, ".extend_balance", NOT_SUPPORTED),
            ({"exact_balance": {"x": 1}}, ".exact_balance.x", NOT_SUPPORTED),
            ({}, "", "expected exactly one of exact_balance, extend_balance"),
        ],
    )
    def test_connection_balance(self, balance: dict[str, Any], field: str, message: str) -> None:
        lst = listener()
        lst["connection_balance_config"] = balance
        path, got = only_problem(bootstrap([lst]))
        assert path == f"static_resources.listeners[0].connection_balance_config{field}"
        assert got.startswith(message), got

    def test_port_zero_listeners_may_share_an_address(self) -> None:
        doc = bootstrap([listener(port=0), listener(name="b", port=0)])
        assert len(translate_bootstrap(doc, "x").snapshot["listeners"]) == 2

    def test_duplicate_vhost_names_and_domains(self) -> None:
        doc = bootstrap([listener(hcm([vhost("a", ["x.com", "*"]), vhost("a", ["X.com"])]))])
        assert problems(doc) == {
            f"{RC}.virtual_hosts[1].domains[0]": "domain 'X.com' is already used at "
            f"{RC}.virtual_hosts[0].domains[0] (Envoy requires unique domains)",
            f"{RC}.virtual_hosts[1].name": "duplicate virtual host name 'a' "
            f"(first at {RC}.virtual_hosts[0])",
        }

    @pytest.mark.parametrize("domain", ["a.*.com", "**", "*a*", ""])
    def test_bad_wildcards(self, domain: str) -> None:
        path, message = only_problem(bootstrap([listener(hcm([vhost(domains=[domain])]))]))
        assert path == f"{RC}.virtual_hosts[0].domains[0]"
        assert message.startswith("expected a domain, optionally with one leading or trailing")

    def test_static_cluster_with_hostname(self) -> None:
        assert only_problem(bootstrap(clusters=[cluster("backend", ("api.internal", 80))])) == (
            "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0]"
            ".endpoint.address.socket_address.address",
            "a STATIC cluster needs IP addresses, got hostname 'api.internal' "
            "(use type: STRICT_DNS or LOGICAL_DNS)",
        )

    def test_logical_dns_needs_one_endpoint(self) -> None:
        c = cluster("backend", ("a.internal", 80), ("b.internal", 80), type="LOGICAL_DNS")
        assert only_problem(bootstrap(clusters=[c])) == (
            "static_resources.clusters[0].load_assignment",
            "a LOGICAL_DNS cluster needs exactly one endpoint, got 2",
        )

    @pytest.mark.parametrize(
        ("regex", "expected"),
        [
            (
                "/items/(",
                "invalid regular expression '/items/(': missing ), unterminated subpattern",
            ),
            ("/a(?=b)", "RE2 does not support lookaround, backreferences or possessive/atomic"),
            (r"(a)\1", "RE2 does not support lookaround, backreferences or possessive/atomic"),
        ],
    )
    def test_bad_regex(self, regex: str, expected: str) -> None:
        r = {"match": {"safe_regex": {"regex": regex}}, "route": {"cluster": "backend"}}
        path, message = only_problem(with_route(r))
        assert path == f"{RC}.virtual_hosts[0].routes[0].match.safe_regex.regex"
        assert message.startswith(expected)

    def test_regex_escapes_are_not_mistaken_for_re2_gaps(self) -> None:
        r = {"match": {"safe_regex": {"regex": r"/c\++/\\1"}}, "route": {"cluster": "backend"}}
        snap = translate_bootstrap(with_route(r), "x").snapshot
        (out,) = snap["listeners"][0]["filter"]["route_config"]["virtual_hosts"][0]["routes"]
        assert out["match"]["path"] == {"regex": r"/c\++/\\1"}

    def test_envoy_substitution_commands_in_header_values(self) -> None:
        r = route()
        r["request_headers_to_add"] = [
            {"header": {"key": "x-peer", "value": "%DOWNSTREAM_REMOTE_ADDRESS%"}},
            {"header": {"key": "x-pct", "value": "100%%"}},
        ]
        assert only_problem(with_route(r)) == (
            f"{RC}.virtual_hosts[0].routes[0].request_headers_to_add[0].header.value",
            f"%COMMAND% substitutions are {NOT_SUPPORTED}; write %% for a literal %, "
            "got '%DOWNSTREAM_REMOTE_ADDRESS%'",
        )
        del r["request_headers_to_add"][0]
        snap = translate_bootstrap(with_route(r), "x").snapshot
        (out,) = snap["listeners"][0]["filter"]["route_config"]["virtual_hosts"][0]["routes"]
        assert out["headers"]["request_add"] == [{"name": "x-pct", "value": "100%", "append": True}]

    def test_bad_header_regex(self) -> None:
        r = route()
        r["match"]["headers"] = [{"name": "x", "string_match": {"safe_regex": {"regex": "[z-a]"}}}]
        path, message = only_problem(with_route(r))
        assert (
            path
            == f"{RC}.virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex"
        )
        assert message.startswith("invalid regular expression '[z-a]'")

    def test_prefix_rewrite_with_regex_match(self) -> None:
        r = {
            "match": {"safe_regex": {"regex": "/a.*"}},
            "route": {"cluster": "backend", "prefix_rewrite": "/"},
        }
        assert only_problem(with_route(r)) == (
            f"{RC}.virtual_hosts[0].routes[0].route.prefix_rewrite",
            "prefix_rewrite needs a prefix or path match, not safe_regex",
        )

    def test_route_action_choices(self) -> None:
        both = {
            "match": {"prefix": "/"},
            "route": {"cluster": "backend"},
            "direct_response": {"status": 200},
        }
        neither = {"match": {"prefix": "/"}}
        redirect = {
            "match": {"prefix": "/"},
            "redirect": {"https_redirect": True, "scheme_redirect": "ftp"},
        }
        doc = bootstrap([listener(hcm([vhost(routes=[both, neither, redirect])]))])
        found = problems(doc)
        base = f"{RC}.virtual_hosts[0].routes"
        assert (
            found[f"{base}[0]"] == "expected exactly one of route, direct_response, redirect, "
            "got route, direct_response"
        )
        assert found[f"{base}[1]"] == "expected exactly one of route, direct_response, redirect"
        assert found[f"{base}[2].redirect"] == (
            "expected at most one of https_redirect, scheme_redirect, "
            "got https_redirect, scheme_redirect"
        )

    @pytest.mark.parametrize("name", ["host", ":path", "Host", "bad header"])
    def test_protected_or_invalid_header_mutations(self, name: str) -> None:
        r = route()
        r["request_headers_to_add"] = [{"header": {"key": name, "value": "v"}}]
        path, message = only_problem(with_route(r))
        assert path == f"{RC}.virtual_hosts[0].routes[0].request_headers_to_add[0].header.key"
        assert repr(name) in message

    def test_unrepresentable_append_actions(self) -> None:
        r = route()
        r["response_headers_to_add"] = [
            {"header": {"key": "a", "value": "1"}, "append_action": "ADD_IF_ABSENT"},
            {
                "header": {"key": "b", "value": "2"},
                "append_action": "APPEND_IF_EXISTS_OR_ADD",
                "append": True,
            },
        ]
        found = problems(with_route(r))
        base = f"{RC}.virtual_hosts[0].routes[0].response_headers_to_add"
        assert found == {
            f"{base}[0].append_action": "expected APPEND_IF_EXISTS_OR_ADD or "
            "OVERWRITE_IF_EXISTS_OR_ADD, got 'ADD_IF_ABSENT'",
            f"{base}[1].append": "append and append_action are mutually exclusive",
        }

    def test_string_match_ignore_case_and_two_kinds(self) -> None:
        r = route()
        r["match"]["headers"] = [
            {"name": "a", "string_match": {"exact": "x", "ignore_case": True}},
            {"name": "b", "string_match": {"exact": "x", "prefix": "y"}},
            {"name": "c", "present_match": True, "string_match": {"exact": "x"}},
        ]
        found = problems(with_route(r))
        base = f"{RC}.virtual_hosts[0].routes[0].match.headers"
        assert found == {
            f"{base}[0].string_match.ignore_case": "only ignore_case: false is supported",
            f"{base}[1].string_match": "expected exactly one of exact, prefix, suffix, contains, "
            "safe_regex, got exact, prefix",
            f"{base}[2]": "expected only one of string_match, present_match",
        }


class TestFiltersAndTypes:
    def test_http_filter_other_than_router(self) -> None:
        typed = hcm()
        lua = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
        typed["http_filters"][:0] = [
            {"name": "envoy.filters.http.lua", "typed_config": {"@type": lua}},
            {"name": "envoy.filters.http.cors", "typed_config": {}},
        ]
        found = problems(bootstrap([listener(typed)]))
        assert found == {
            f"{HCM}.http_filters[0].typed_config.@type": "HTTP filter 'envoy.filters.http.lua' "
            f"of type '{lua}' is {NOT_SUPPORTED}; supported: envoy.filters.http.router, "
            "envoy.filters.http.fault, envoy.filters.http.local_ratelimit, "
            "envoy.filters.http.cors, "
            "envoy.filters.http.rbac",
            f"{HCM}.http_filters[1].typed_config.@type": 'expected "type.googleapis.com/'
            'envoy.extensions.filters.http.cors.v3.Cors", got missing',
        }

    def test_router_must_be_last_and_typed(self) -> None:
        typed = hcm()
        router = typed["http_filters"][0]
        typed["http_filters"] = [router, copy.deepcopy(router)]
        typed["http_filters"][1]["typed_config"]["@type"] = (
            "type.googleapis.com/envoy.config.filter.http.router.v2.Router"
        )
        assert problems(bootstrap([listener(typed)])) == {
            f"{HCM}.http_filters[0]": "envoy.filters.http.router must be the last HTTP filter",
            f"{HCM}.http_filters[1].typed_config.@type": 'expected "type.googleapis.com/envoy.'
            "extensions.filters.http.router.v3.Router\", got 'type.googleapis.com/envoy.config."
            "filter.http.router.v2.Router'",
        }

    def test_router_options_are_refused(self) -> None:
        typed = hcm()
        typed["http_filters"][0]["typed_config"]["suppress_envoy_headers"] = True
        path, message = only_problem(bootstrap([listener(typed)]))
        assert path == f"{HCM}.http_filters[0].typed_config.suppress_envoy_headers"
        assert message.startswith(NOT_SUPPORTED)

    def test_missing_type_url_and_unknown_network_filter(self) -> None:
        typed = hcm()
        del typed["@type"]
        lst2 = listener(name="b", port=2, filter_name="envoy.filters.network.redis_proxy")
        found = problems(bootstrap([listener(typed), lst2]))
        first = "static_resources.listeners[0].filter_chains[0].filters[0]"
        second = "static_resources.listeners[1].filter_chains[0].filters[0]"
        assert found == {
            f"{first}.typed_config.@type": 'expected "type.googleapis.com/envoy.extensions.'
            'filters.network.http_connection_manager.v3.HttpConnectionManager", got missing',
            f"{second}.name": "network filter 'envoy.filters.network.redis_proxy' is "
            f"{NOT_SUPPORTED}; expected envoy.filters.network.http_connection_manager or "
            "envoy.filters.network.tcp_proxy",
        }

    def test_rds_needs_dynamic_resources(self) -> None:
        typed = hcm(rds={"route_config_name": "r"})
        del typed["route_config"]
        found = problems(bootstrap([listener(typed)]))
        assert found == {
            f"{HCM}.rds": "rds needs dynamic_resources.ads_config in the bootstrap",
            f"{HCM}.rds.config_source": "required field is missing",
        }

    def test_several_filter_chains_or_filters(self) -> None:
        a = listener()
        a["filter_chains"].append(copy.deepcopy(a["filter_chains"][0]))
        b = listener(name="b", port=2)
        b["filter_chains"][0]["filters"].append({"name": "x"})
        found = problems(bootstrap([a, b]))
        assert found == {
            "static_resources.listeners[0].filter_chains": "two filter chains are supported only "
            "as Istio's permissive TLS-or-plaintext pair: one chain must match "
            "transport_protocol tls and the other raw_buffer",
            "static_resources.listeners[1].filter_chains[0].filters[0].name": "only "
            "envoy.filters.network.rbac may come before the last network filter, got "
            "'envoy.filters.network.http_connection_manager'",
            "static_resources.listeners[1].filter_chains[0].filters[1].name": "network filter "
            f"'x' is {NOT_SUPPORTED}; expected envoy.filters.network.http_connection_manager or "
            "envoy.filters.network.tcp_proxy",
        }

    def test_cluster_enums(self) -> None:
        found = problems(
            bootstrap(clusters=[cluster(type="ORIGINAL_DST", dns_lookup_family="V6_ONLY")])
        )
        assert found == {
            "static_resources.clusters[0].type": f"ORIGINAL_DST is {NOT_SUPPORTED}",
            "static_resources.clusters[0].dns_lookup_family": f"V6_ONLY is {NOT_SUPPORTED}",
        }
        assert only_problem(bootstrap(clusters=[cluster(lb_policy="CLUSTER_PROVIDED")])) == (
            "static_resources.clusters[0].lb_policy",
            f"CLUSTER_PROVIDED is {NOT_SUPPORTED}",
        )
        assert only_problem(bootstrap(clusters=[cluster(lb_policy="ROUND-ROBIN")])) == (
            "static_resources.clusters[0].lb_policy",
            "expected one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV, "
            "got 'ROUND-ROBIN'",
        )

    def test_http2_twice_and_auto_config(self) -> None:
        c = cluster(
            http2_protocol_options={},
            typed_extension_protocol_options={
                HTTP_OPTIONS: {
                    "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
                    "explicit_http_config": {
                        "http2_protocol_options": {"max_concurrent_streams": 5}
                    },
                }
            },
        )
        auto = cluster(
            "b",
            typed_extension_protocol_options={
                HTTP_OPTIONS: {"@type": f"type.googleapis.com/{HTTP_OPTIONS}", "auto_config": {}}
            },
        )
        found = problems(bootstrap([tcp_listener(), tcp_listener("b", "t2", 3)], [c, auto]))
        teo = f"typed_extension_protocol_options.{HTTP_OPTIONS}"
        assert set(found) == {
            f"static_resources.clusters[0].{teo}.explicit_http_config.http2_protocol_options"
            ".max_concurrent_streams",
            "static_resources.clusters[0].http2_protocol_options",
            f"static_resources.clusters[1].{teo}.auto_config",
            f"static_resources.clusters[1].{teo}.explicit_http_config",
        }


class TestBootstrapSections:
    def test_admin_access_log_must_go_nowhere(self) -> None:
        doc = bootstrap(admin={"access_log_path": "/tmp/admin.log", "address": socket(port=9901)})
        assert only_problem(doc) == (
            "admin.access_log_path",
            'only "/dev/null" is supported (no admin access log)',
        )

    def test_runtime_and_overload_with_content(self) -> None:
        doc = bootstrap(
            layered_runtime={
                "layers": [
                    {
                        "name": "s",
                        "static_layer": {"overload.global_downstream_max_connections": 5},
                    },
                    {"name": "r", "rtds_layer": {}},
                ]
            },
            overload_manager={"refresh_interval": "0.25s"},
        )
        found = problems(doc)
        assert set(found) == {
            "overload_manager.refresh_interval",
            "layered_runtime.layers[0].static_layer.overload.global_downstream_max_connections",
            "layered_runtime.layers[1].rtds_layer",
        }


class TestFiles:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            load_bootstrap(tmp_path / "nope.yaml")
        assert str(info.value).endswith("nope.yaml: cannot read: No such file or directory")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", "the file is empty"),
            ("- a\n- b\n", "expected a mapping at the top level"),
            ("a: [1\n", "not valid YAML/JSON: "),
            ('{"a": 1,}', "not valid YAML/JSON: "),
            ("admin: {}\nadmin: {}\n", "duplicate key 'admin'"),
            ('{"admin": {}, "admin": {}}', "duplicate key 'admin'"),
        ],
    )
    def test_unparsable(self, tmp_path: Path, text: str, expected: str) -> None:
        path = tmp_path / "envoy.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_bootstrap(path)
        (problem,) = info.value.problems
        assert problem.path == ""
        assert expected in problem.message
        assert str(info.value).startswith(f"{path}: 1 error\n{path}: ")

    def test_yaml_duplicate_key_names_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "envoy.yaml"
        path.write_text("static_resources:\n  clusters: []\n  clusters: []\n")
        with pytest.raises(ConfigError, match="line 3, column 3"):
            load_bootstrap(path)


def test_config_error_survives_pickling() -> None:
    """So a translation can run in a worker process and report back."""
    err = ConfigError("a.yaml", [Problem("x.y", "bad"), Problem("", "worse")])
    back = pickle.loads(pickle.dumps(err))
    assert (back.source, back.problems, str(back)) == (err.source, err.problems, str(err))


def test_xds_resource_errors_name_the_resource() -> None:
    lst = listener(hcm([vhost(routes=[route("missing")])]))
    lst["@type"] = "type.googleapis.com/envoy.config.listener.v3.Listener"
    bad = cluster("backend", type="ORIGINAL_DST")
    bad["@type"] = "type.googleapis.com/envoy.api.v2.Cluster"
    with pytest.raises(ConfigError) as info:
        translate_resources([lst], [bad], source="xds:lds+cds", version="3")
    assert [(p.path, p.message) for p in info.value.problems] == [
        (
            "clusters[0].@type",
            'expected "type.googleapis.com/envoy.config.cluster.v3.Cluster", '
            "got 'type.googleapis.com/envoy.api.v2.Cluster'",
        ),
        ("clusters[0].type", f"ORIGINAL_DST is {NOT_SUPPORTED}"),
        (
            "listeners[0].filter_chains[0].filters[0].typed_config.route_config"
            ".virtual_hosts[0].routes[0].route.cluster",
            "unknown cluster 'missing' (no cluster of that name is defined)",
        ),
    ]
    assert str(info.value).startswith("xds:lds+cds: 3 errors\n")
