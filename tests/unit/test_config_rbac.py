"""The translator on Envoy's RBAC (HTTP filter, per-route, network filter) and
`x-forwarded-client-cert` settings.

Valid cases state the exact native JSON; error cases the exact path and message.
"""

from __future__ import annotations

from typing import Any

import pytest

from fastmesh.config import ConfigError, translate_bootstrap

from .envoy_docs import HCM, ROUTER_TYPE, bootstrap, hcm, listener, route, tcp_listener, vhost

NOT_SUPPORTED = "not supported by fastmesh yet (see docs/envoy-subset.md)"
TP = "type.googleapis.com/"
HTTP_RBAC = TP + "envoy.extensions.filters.http.rbac.v3.RBAC"
PER_ROUTE = TP + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
NETWORK_RBAC = TP + "envoy.extensions.filters.network.rbac.v3.RBAC"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
SPIFFE = "spiffe://cluster.local/ns/default/sa/productpage"
EXACT_SPIFFE = {"kind": {"exact": SPIFFE}, "ignore_case": False}


def translate(doc: dict[str, Any]) -> dict[str, Any]:
    return translate_bootstrap(doc, "test.yaml").snapshot


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc, "envoy.yaml")
    return {p.path: p.message for p in info.value.problems}


def rbac_filter(**cfg: Any) -> dict[str, Any]:
    return {"name": "envoy.filters.http.rbac", "typed_config": {"@type": HTTP_RBAC, **cfg}}


def with_rbac(*routes: dict[str, Any], **cfg: Any) -> dict[str, Any]:
    typed = hcm([vhost(routes=list(routes) or None)])
    typed["http_filters"] = [rbac_filter(**cfg), ROUTER]
    return bootstrap([listener(typed)])


def allow(permissions: list[Any], principals: list[Any], action: str = "ALLOW") -> dict[str, Any]:
    return {
        "action": action,
        "policies": {"p": {"permissions": permissions, "principals": principals}},
    }


def http_filter(doc: dict[str, Any]) -> dict[str, Any]:
    f: dict[str, Any] = translate(doc)["listeners"][0]["filter"]["http_filters"][0]
    return f


def network_rbac_filter(**cfg: Any) -> dict[str, Any]:
    typed = {"@type": NETWORK_RBAC, "stat_prefix": "tcp_rbac", **cfg}
    return {"name": "envoy.filters.network.rbac", "typed_config": typed}


class TestHttpRbac:
    def test_every_permission_and_principal_kind(self) -> None:
        permissions = [
            {"any": True},
            {
                "and_rules": {
                    "rules": [
                        {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                        {"url_path": {"path": {"prefix": "/api/", "ignore_case": True}}},
                    ]
                }
            },
            {
                "or_rules": {
                    "rules": [
                        {"destination_port": 8080},
                        {"destination_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}},
                    ]
                }
            },
            {"not_rule": {"requested_server_name": {"suffix": ".internal"}}},
        ]
        principals = [
            {"authenticated": {"principal_name": {"exact": SPIFFE}}},
            {"authenticated": {}},
            {
                "and_ids": {
                    "ids": [
                        {"direct_remote_ip": {"address_prefix": "::1", "prefix_len": 128}},
                        {"remote_ip": {"address_prefix": "192.168.0.0", "prefix_len": 16}},
                    ]
                }
            },
            {"or_ids": {"ids": [{"source_ip": {"address_prefix": "127.0.0.1"}}, {"any": True}]}},
            {"not_id": {"header": {"name": "x-user", "present_match": True}}},
        ]
        doc = with_rbac(rules=allow(permissions, principals, "DENY"))
        assert http_filter(doc) == {
            "type": "rbac",
            "stat_prefix": "",
            "rules": {
                "action": "deny",
                "policies": {
                    "p": {
                        "permissions": [
                            "any",
                            {
                                "and_rules": [
                                    {"header": {"name": ":method", "match": {"exact": "GET"}}},
                                    {
                                        "url_path": {
                                            "kind": {"prefix": "/api/"},
                                            "ignore_case": True,
                                        }
                                    },
                                ]
                            },
                            {
                                "or_rules": [
                                    {"destination_port": 8080},
                                    {"destination_ip": "10.0.0.0/8"},
                                ]
                            },
                            {
                                "not_rule": {
                                    "requested_server_name": {
                                        "kind": {"suffix": ".internal"},
                                        "ignore_case": False,
                                    }
                                }
                            },
                        ],
                        "principals": [
                            {"authenticated": EXACT_SPIFFE},
                            {"authenticated": None},
                            {
                                "and_ids": [
                                    {"direct_remote_ip": "::1/128"},
                                    {"remote_ip": "192.168.0.0/16"},
                                ]
                            },
                            {"or_ids": [{"remote_ip": "127.0.0.1/0"}, "any"]},
                            {"not_id": {"header": {"name": "x-user", "match": {"present": True}}}},
                        ],
                    }
                },
            },
        }

    def test_shadow_rules_log_action_and_stat_prefixes(self) -> None:
        anyone = allow([{"any": True}], [{"any": True}], "LOG")
        doc = with_rbac(shadow_rules=anyone, shadow_rules_stat_prefix="dry_run_")
        assert http_filter(doc) == {
            "type": "rbac",
            "stat_prefix": "dry_run_",
            "shadow_rules": {
                "action": "log",
                "policies": {"p": {"permissions": ["any"], "principals": ["any"]}},
            },
        }
        same = with_rbac(
            rules=anyone, shadow_rules=anyone, rules_stat_prefix="a_", shadow_rules_stat_prefix="a_"
        )
        assert http_filter(same)["stat_prefix"] == "a_"
        assert http_filter(with_rbac()) == {"type": "rbac", "stat_prefix": ""}
        assert http_filter(with_rbac(rules={}))["rules"] == {"action": "allow", "policies": {}}

    def test_per_route_config_counts_under_the_filters_prefix(self) -> None:
        override = {
            "@type": PER_ROUTE,
            "rbac": {
                "rules": allow(
                    [{"url_path": {"path": {"exact": "/admin"}}}], [{"authenticated": {}}]
                ),
                "rules_stat_prefix": "ignored_by_envoy_",
            },
        }
        admin, public = route(prefix="/admin"), route(prefix="/public")
        admin["typed_per_filter_config"] = {"envoy.filters.http.rbac": override}
        public["typed_per_filter_config"] = {"envoy.filters.http.rbac": {"@type": PER_ROUTE}}
        doc = with_rbac(
            admin,
            public,
            rules_stat_prefix="mine_",
            rules=allow([{"any": True}], [{"authenticated": {}}]),
        )
        routes = translate(doc)["listeners"][0]["filter"]["route_config"]["virtual_hosts"][0][
            "routes"
        ]
        assert [r["filter_overrides"] for r in routes] == [
            {
                "rbac": {
                    "stat_prefix": "mine_",
                    "rules": {
                        "action": "allow",
                        "policies": {
                            "p": {
                                "permissions": [
                                    {
                                        "url_path": {
                                            "kind": {"exact": "/admin"},
                                            "ignore_case": False,
                                        }
                                    }
                                ],
                                "principals": [{"authenticated": None}],
                            }
                        },
                    },
                }
            },
            {"rbac": {"stat_prefix": "mine_"}},
        ]

    def test_rbac_errors(self) -> None:
        p = f"{HCM}.http_filters[0].typed_config.rules.policies.p"
        bad = allow(
            [
                {"any": False},
                {"and_rules": {"rules": []}},
                {"metadata": {}},
                {"destination_port": 70000},
                {"destination_ip": {"address_prefix": "10.0.0.0", "prefix_len": 33}},
            ],
            [{"remote_ip": {"address_prefix": "nope"}}, {"any": True, "authenticated": {}}],
            "AUDIT",
        )
        found = problems(
            with_rbac(
                rules=bad,
                rules_stat_prefix="a_",
                shadow_rules=allow([{"any": True}], [{"any": True}]),
                matcher={},
            )
        )
        assert found == {
            f"{HCM}.http_filters[0].typed_config.matcher": f"{NOT_SUPPORTED}; supported here: "
            "@type, rules, rules_stat_prefix, shadow_rules, shadow_rules_stat_prefix",
            f"{HCM}.http_filters[0].typed_config.rules.action": "expected one of ALLOW, DENY, "
            "LOG, got 'AUDIT'",
            f"{p}.permissions[0].any": "expected true, got False",
            f"{p}.permissions[1].and_rules.rules": "expected at least one entry",
            f"{p}.permissions[2].metadata": f"{NOT_SUPPORTED}; supported here: and_rules, any, "
            "destination_ip, destination_port, header, not_rule, or_rules, "
            "requested_server_name, url_path",
            f"{p}.permissions[2]": "expected exactly one of any, and_rules, or_rules, "
            "not_rule, header, "
            "url_path, destination_port, destination_ip, requested_server_name",
            f"{p}.permissions[3].destination_port": "expected an integer 0..65535, got 70000",
            f"{p}.permissions[4].destination_ip.prefix_len": "expected an integer 0..32, got 33",
            f"{p}.principals[0].remote_ip.address_prefix": "expected an IP address, got 'nope'",
            f"{p}.principals[1]": "expected exactly one of any, and_ids, or_ids, not_id, "
            "authenticated, "
            "direct_remote_ip, remote_ip, source_ip, header, got any, authenticated",
            f"{HCM}.http_filters[0].typed_config.shadow_rules_stat_prefix": "a prefix "
            "different from "
            f"rules_stat_prefix is {NOT_SUPPORTED} (one prefix for both)",
        }

    def test_policy_needs_permissions_and_principals(self) -> None:
        rules: dict[str, Any] = {"policies": {"p": {"permissions": [], "condition": {}}}}
        p = f"{HCM}.http_filters[0].typed_config.rules.policies.p"
        assert problems(with_rbac(rules=rules)) == {
            f"{p}.condition": f"{NOT_SUPPORTED}; supported here: permissions, principals",
            f"{p}.permissions": "expected at least one entry",
            f"{p}.principals": "required field is missing (expected a list)",
        }


class TestNetworkRbac:
    def test_before_tcp_proxy(self) -> None:
        lst = tcp_listener()
        rules = allow(
            [{"destination_port": 10001}],
            [{"authenticated": {"principal_name": {"exact": SPIFFE}}}],
        )
        lst["filter_chains"][0]["filters"].insert(
            0, network_rbac_filter(rules=rules, enforcement_type="ONE_TIME_ON_FIRST_BYTE")
        )
        got = translate(bootstrap([lst]))["listeners"][0]
        assert got["network_rbac"] == [
            {
                "stat_prefix": "tcp_rbac",
                "rules": {
                    "action": "allow",
                    "policies": {
                        "p": {
                            "permissions": [{"destination_port": 10001}],
                            "principals": [{"authenticated": EXACT_SPIFFE}],
                        }
                    },
                },
            }
        ]
        assert got["filter"] == {"type": "tcp", "stat_prefix": "tcp", "cluster": "backend"}

    def test_istios_deny_allow_and_shadow_filters_keep_their_order(self) -> None:
        lst = tcp_listener()
        deny = allow([{"destination_port": 1}], [{"any": True}], action="DENY")
        filters = [
            network_rbac_filter(stat_prefix="tcp.", rules=deny),
            network_rbac_filter(stat_prefix="tcp.", rules=allow([{"any": True}], [{"any": True}])),
            network_rbac_filter(
                stat_prefix="tcp.",
                shadow_rules={"action": "ALLOW"},
                shadow_rules_stat_prefix="istio_dry_run_allow_",
            ),
        ]
        lst["filter_chains"][0]["filters"][0:0] = filters
        got = translate(bootstrap([lst]))["listeners"][0]["network_rbac"]
        assert [(f["stat_prefix"], sorted(f)) for f in got] == [
            ("tcp.", ["rules", "stat_prefix"]),
            ("tcp.", ["rules", "stat_prefix"]),
            ("tcp.", ["shadow_rules", "shadow_rules_stat_prefix", "stat_prefix"]),
        ]
        assert got[2]["shadow_rules_stat_prefix"] == "istio_dry_run_allow_"
        assert [f.get("rules", {}).get("action") for f in got] == ["deny", "allow", None]

    def test_network_errors(self) -> None:
        header_rule = allow([{"header": {"name": "x"}}], [{"header": {"name": "y"}}])
        rbac = network_rbac_filter(rules=header_rule, enforcement_type="CONTINUOUS")
        del rbac["typed_config"]["stat_prefix"]
        a = tcp_listener()
        a["filter_chains"][0]["filters"].insert(0, rbac)
        b = listener(name="b", port=2)
        b["filter_chains"][0]["filters"].append(network_rbac_filter())
        c = listener(name="c", port=3)
        c["filter_chains"][0]["filters"].insert(0, {"name": "envoy.filters.network.ext_authz"})
        found = problems(bootstrap([a, b, c]))
        t = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
        pol = f"{t}.rules.policies.p"
        second = "static_resources.listeners[1].filter_chains[0].filters"
        third = "static_resources.listeners[2].filter_chains[0].filters"
        assert found == {
            f"{t}.stat_prefix": "required field is missing (expected a string)",
            f"{t}.enforcement_type": f"CONTINUOUS is {NOT_SUPPORTED} (policies are checked "
            f"once per connection)",
            f"{pol}.permissions[0].header": "header matches HTTP requests only; use it in the "
            "HTTP RBAC filter",
            f"{pol}.principals[0].header": "header matches HTTP requests only; use it in the "
            "HTTP RBAC filter",
            f"{second}[0].name": "only envoy.filters.network.rbac may come before the last "
            "network filter, got 'envoy.filters.network.http_connection_manager'",
            f"{second}[1]": "envoy.filters.network.rbac must come before "
            "envoy.filters.network.http_connection_manager or envoy.filters.network.tcp_proxy",
            f"{third}[0].name": "only envoy.filters.network.rbac may come before the last "
            "network filter, got 'envoy.filters.network.ext_authz'",
        }


class TestForwardClientCert:
    @pytest.mark.parametrize(
        ("mode", "native"),
        [
            ("FORWARD_ONLY", "forward_only"),
            ("APPEND_FORWARD", "append_forward"),
            ("SANITIZE_SET", "sanitize_set"),
            ("ALWAYS_FORWARD_ONLY", "always_forward_only"),
        ],
    )
    def test_modes_and_details(self, mode: str, native: str) -> None:
        details = {"subject": True, "cert": True, "chain": False, "dns": True, "uri": True}
        typed = hcm(forward_client_cert_details=mode, set_current_client_cert_details=details)
        f = translate(bootstrap([listener(typed)]))["listeners"][0]["filter"]
        assert f["forward_client_cert"] == native
        assert f["client_cert_details"] == {"subject": True, "cert": True, "dns": True, "uri": True}

    def test_sanitize_is_the_default(self) -> None:
        for typed in (hcm(), hcm(forward_client_cert_details="SANITIZE")):
            f = translate(bootstrap([listener(typed)]))["listeners"][0]["filter"]
            assert "forward_client_cert" not in f and "client_cert_details" not in f

    def test_errors(self) -> None:
        typed = hcm(
            forward_client_cert_details="FORWARD",
            set_current_client_cert_details={"uri": "yes", "ip": True},
        )
        assert problems(bootstrap([listener(typed)])) == {
            f"{HCM}.forward_client_cert_details": "expected one of SANITIZE, FORWARD_ONLY, "
            "APPEND_FORWARD, SANITIZE_SET, ALWAYS_FORWARD_ONLY, got 'FORWARD'",
            f"{HCM}.set_current_client_cert_details.ip": f"{NOT_SUPPORTED}; supported here: "
            "cert, chain, dns, subject, uri",
            f"{HCM}.set_current_client_cert_details.uri": "expected true or false, got a string",
        }
