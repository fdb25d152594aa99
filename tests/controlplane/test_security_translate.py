"""PeerAuthentication and AuthorizationPolicy without sockets: parsing (problems name file,
resource and field), Istio's mTLS precedence, and the RBAC filters a policy compiles to."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from fastmesh.controlplane import load_documents
from fastmesh.controlplane._model import Workload
from fastmesh.controlplane._model_security import MtlsMode
from fastmesh.controlplane._mtls import peer_mode, wants_mtls
from fastmesh.controlplane._proxy import ProxyInfo
from fastmesh.controlplane._translate_authz import authz_filters
from fastmesh.controlplane._translate_inbound import translate_inbound

REVIEWS = Workload("reviews-v1", "default", "10.0.0.7", {"app": "reviews"}, {"http": 9080})


def load(*docs: dict[str, Any]) -> Any:
    config, problems = load_documents([("policies.yaml", yaml.safe_dump_all(docs))])
    return config, [str(p) for p in problems]


def resource(
    kind: str, spec: dict[str, Any], name: str = "p", namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_mtls_precedence_is_istios() -> None:
    config, problems = load(
        resource("PeerAuthentication", {"mtls": {"mode": "STRICT"}}, "mesh", "istio-system"),
        resource("PeerAuthentication", {"mtls": {"mode": "UNSET"}}, "ns"),
        resource(
            "PeerAuthentication",
            {
                "selector": {"matchLabels": {"app": "reviews"}},
                "portLevelMtls": {"8080": {"mode": "DISABLE"}},
            },
            "workload",
        ),
    )
    assert problems == []
    policies = config.peer_authentications
    # the workload's port-level mode; its unset mode falls through an unset namespace to the mesh
    assert peer_mode(policies, REVIEWS, 8080) is MtlsMode.DISABLE
    assert peer_mode(policies, REVIEWS, 9080) is MtlsMode.STRICT
    other = Workload("x", "other", "10.0.0.8", {}, {})
    assert peer_mode(policies, other, 9080) is MtlsMode.STRICT
    assert peer_mode((), other, 9080) is MtlsMode.PERMISSIVE  # Istio's default
    # auto mTLS: not to a DISABLE port, nor to a workload without a sidecar
    assert wants_mtls(None, policies, [(REVIEWS, 9080)])
    assert not wants_mtls(None, policies, [(REVIEWS, 9080), (REVIEWS, 8080)])
    bare = Workload("vm", "default", "10.0.0.9", {"security.istio.io/tlsMode": "disabled"}, {})
    assert not wants_mtls(None, (), [(bare, 80)])
    assert wants_mtls("ISTIO_MUTUAL", (), [(bare, 80)])
    assert not wants_mtls("DISABLE", (), [(REVIEWS, 9080)])


def test_problems_name_file_resource_and_field() -> None:
    _, problems = load(
        resource("PeerAuthentication", {"mtls": {"mode": "STRIKT"}, "portLevelMtls": {"80": {}}}),
        resource(
            "AuthorizationPolicy",
            {
                "action": "AUDIT",
                "rules": [
                    {
                        "from": [
                            {"source": {"requestPrincipals": ["*"], "ipBlocks": ["10.0.0.300"]}}
                        ],
                        "when": [{"key": "request.auth.claims[iss]", "values": ["x"]}],
                    }
                ],
            },
            "a",
        ),
    )
    pa = "policies.yaml: PeerAuthentication default/p: "
    ap = "policies.yaml: AuthorizationPolicy default/a: "
    assert sorted(problems) == sorted(
        [
            f"{ap}spec.action: expected ALLOW or DENY (AUDIT and CUSTOM are not supported), "
            "got 'AUDIT'",
            f"{ap}spec.rules[0].from[0].source.ipBlocks[0]: expected an IP address or CIDR, "
            "got '10.0.0.300'",
            f"{ap}spec.rules[0].from[0].source.requestPrincipals: not supported: fastmesh has no "
            "RequestAuthentication (JWT)",
            f"{ap}spec.rules[0].when[0].key: expected request.headers[<name>] or one of "
            "source.ip, source.namespace, source.principal, destination.port, got "
            "'request.auth.claims[iss]'",
            f"{pa}spec.mtls.mode: expected one of UNSET, DISABLE, PERMISSIVE, STRICT, got 'STRIKT'",
            f"{pa}spec.portLevelMtls: needs spec.selector (as in Istio: workload scope only)",
        ]
    )


def test_authorization_policies_compile_to_a_deny_then_an_allow_filter() -> None:
    config, problems = load(
        resource(
            "AuthorizationPolicy",
            {
                "selector": {"matchLabels": {"app": "reviews"}},
                "rules": [
                    {
                        "from": [{"source": {"principals": ["cluster.local/ns/default/sa/a*"]}}],
                        "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}],
                        "when": [{"key": "request.headers[x-team]", "values": ["blue"]}],
                    }
                ],
            },
            "allow",
        ),
        resource(
            "AuthorizationPolicy",
            {"action": "DENY", "rules": [{"from": [{"source": {"notNamespaces": ["default"]}}]}]},
            "deny",
        ),
        resource("AuthorizationPolicy", {"selector": {"matchLabels": {"app": "x"}}}, "elsewhere"),
    )
    assert problems == []
    deny, allow = authz_filters(config.authorization_policies, REVIEWS, http=True, stat_prefix="")
    assert deny["name"] == "envoy.filters.http.rbac.deny"
    assert deny["typed_config"]["rules"] == {
        "action": "DENY",
        "policies": {
            "ns[default]-policy[deny]-rule[0]": {
                "permissions": [{"any": True}],
                "principals": [
                    {
                        "not_id": {
                            "authenticated": {
                                "principal_name": {"safe_regex": {"regex": ".*/ns/default/.*"}}
                            }
                        }
                    }
                ],
            }
        },
    }
    assert allow["name"] == "envoy.filters.http.rbac.allow"
    rule = allow["typed_config"]["rules"]["policies"]["ns[default]-policy[allow]-rule[0]"]
    assert rule == {
        "permissions": [
            {
                "and_rules": {
                    "rules": [
                        {"url_path": {"path": {"prefix": "/api/"}}},
                        {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                    ]
                }
            }
        ],
        "principals": [
            {
                "and_ids": {
                    "ids": [
                        {
                            "authenticated": {
                                "principal_name": {
                                    "prefix": "spiffe://cluster.local/ns/default/sa/a"
                                }
                            }
                        },
                        {"header": {"name": "x-team", "string_match": {"exact": "blue"}}},
                    ]
                }
            }
        ],
    }
    # On TCP the ALLOW rule needs HTTP fields: it matches nothing, so nothing is allowed;
    # the DENY rule has none and stays as it is.
    tcp_deny, tcp_allow = authz_filters(
        config.authorization_policies, REVIEWS, http=False, stat_prefix="inbound_9080."
    )
    assert tcp_allow["typed_config"]["rules"] == {"action": "ALLOW", "policies": {}}
    assert tcp_deny["typed_config"]["stat_prefix"] == "inbound_9080."
    assert authz_filters((), REVIEWS, http=True, stat_prefix="") == []


def test_inbound_needs_a_known_workload_and_an_app_port_of_its_own() -> None:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "reviews"},
            "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "WorkloadEntry",
            "metadata": {"name": "reviews-v1"},
            "spec": {"address": "127.0.0.1", "labels": {"app": "reviews"}, "ports": {"http": 9080}},
        },
    ]
    config, problems = load(*docs)
    assert problems == []
    listeners, clusters, warnings = translate_inbound(
        config, ProxyInfo("p", workload="nope"), mtls=True
    )
    assert (listeners, clusters) == ([], [])
    assert warnings == [
        "proxy p: WORKLOAD_NAME default/nope: no such WorkloadEntry; no inbound listeners"
    ]
    _, _, warnings = translate_inbound(config, ProxyInfo("p", workload="reviews-v1"), mtls=True)
    assert warnings == [
        "proxy p: port http (reviews.default.svc.cluster.local): the app's port 9080 is the "
        "inbound listener's; set http in FASTMESH_APP_PORTS"
    ]
    app = ProxyInfo("p", workload="reviews-v1", app_ports=(("http", 18080),))
    (listener,), (cluster,), warnings = translate_inbound(config, app, mtls=True)
    assert warnings == []
    assert listener["name"] == "inbound_127.0.0.1_9080"
    assert [c.get("filter_chain_match") for c in listener["filter_chains"]] == [
        {"transport_protocol": "tls"},
        {"transport_protocol": "raw_buffer"},
    ]  # PERMISSIVE
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18080}
    (plain,), _, _ = translate_inbound(config, app, mtls=False)
    assert "transport_socket" not in plain["filter_chains"][0]
    assert "connection_balance_config" not in listener
    balanced = replace(app, inbound_exact_balance=True)
    (listener,), _, _ = translate_inbound(config, balanced, mtls=True)
    assert listener["connection_balance_config"] == {"exact_balance": {}}
