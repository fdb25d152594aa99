"""The Cython twins (`fastmesh_ext.routes`, `.endpoints`) against their pure-Python originals."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fastmesh.config import _speedups, load_bootstrap, translate_bootstrap
from fastmesh.config._endpoints import translate_endpoints as py_endpoints
from fastmesh.config._errors import Issues
from fastmesh.config._generate import generate_bootstrap
from fastmesh.config._routes import translate_route_config as py_translate

compiled = pytest.importorskip(
    "fastmesh_ext.routes", reason="pip install ./ext"
).translate_route_config
compiled_endpoints = pytest.importorskip("fastmesh_ext.endpoints").translate_endpoints

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: The HTTP filters a listener's per-filter configs may name.
FILTERS = {"fault": "fault", "rl": "local_rate_limit", "cors": "cors"}


def route_configs(doc: dict[str, Any]) -> list[Any]:
    return [
        lst["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
        for lst in doc["static_resources"]["listeners"]
        if "route_config" in lst["filter_chains"][0]["filters"][0]["typed_config"]
    ]


def both(rc: object) -> tuple[Any, Any]:
    """(output, problems, refs) of each implementation."""
    results = []
    for fn in (py_translate, compiled):
        issues, refs = Issues("x"), []  # type: ignore[var-annotated]
        out = fn(issues, copy.deepcopy(rc), "rc", refs, FILTERS)
        results.append((out, issues.problems, refs))
    return results[0], results[1]


def test_the_compiled_twin_is_in_use_when_installed() -> None:
    if os.environ.get("FASTMESH_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip(reason="FASTMESH_PURE_PYTHON is set")
    assert _speedups.IMPLEMENTATION == "cython"
    assert _speedups.translate_route_config is compiled
    assert _speedups.translate_endpoints is compiled_endpoints


def test_pure_python_can_be_forced() -> None:
    code = "from fastmesh.config import _speedups; print(_speedups.IMPLEMENTATION)"
    env = {**os.environ, "FASTMESH_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "python"


def test_identical_on_a_generated_config() -> None:
    (rc,) = route_configs(generate_bootstrap(clusters=300, vhosts=1000))
    py, cy = both(rc)
    assert py == cy
    assert py[0] is not None and len(py[0]["virtual_hosts"]) == 1000


def test_identical_on_the_fixtures() -> None:
    for name in ("front_proxy.yaml", "tcp_proxy.yaml"):
        doc = yaml.safe_load((CONFIGS / name).read_text())
        for rc in route_configs(doc):
            py, cy = both(rc)
            assert py == cy
            assert py[0] is not None


def test_identical_whole_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = generate_bootstrap(clusters=200, vhosts=200)
    fast = translate_bootstrap(doc, "gen").snapshot
    monkeypatch.setattr(_speedups, "translate_route_config", py_translate)
    monkeypatch.setattr(_speedups, "translate_endpoints", py_endpoints)
    slow = translate_bootstrap(doc, "gen").snapshot
    assert fast == slow
    assert load_bootstrap(CONFIGS / "front_proxy.yaml").snapshot["listeners"]


BROKEN: list[Any] = [
    {
        "name": 5,
        "virtual_hosts": [
            {
                "name": "a",
                "domains": ["A.com", "a.com", "x.*.y", 3],
                "routes": [
                    {"match": {"prefix": "/", "path": "/x"}, "route": {"cluster": ""}},
                    {"match": {"prefx": "/"}, "direct_response": {"status": 99, "body": {}}},
                    {
                        "match": {
                            "safe_regex": {"regex": "(?=x)", "google_re2": {"max_program_size": 1}},
                            "case_sensitive": "no",
                            "headers": [
                                {"name": "Bad Name"},
                                {"name": "x", "string_match": {"safe_regex": {"regex": "("}}},
                                {"name": "y", "present_match": 1, "invert_match": "y"},
                                {"name": "z", "string_match": {"exact": 1, "ignore_case": True}},
                                "nope",
                            ],
                        },
                        "route": {
                            "cluster": "c",
                            "timeout": "10",
                            "prefix_rewrite": "/",
                            "host_rewrite_literal": "",
                            "retry_policy": {},
                        },
                        "request_headers_to_add": [
                            {"header": {"key": "host", "value": "h"}},
                            {"header": {"key": "x-a", "value": "%START_TIME%"}},
                            {"header": {"key": "x-b", "value": "50%%"}},
                            {"header": {"key": "x"}, "append_action": "NOPE", "append": "y"},
                            {"header": {}},
                            7,
                        ],
                        "response_headers_to_remove": [":path", "", 3],
                    },
                    {"route": {"cluster": "c"}, "redirect": {}},
                    "not a route",
                ],
                "request_headers_to_add": "nope",
                "cors": {},
            },
            {"name": "a", "domains": [], "routes": {}},
            {"domains": "x"},
            [],
        ],
        "response_headers_to_remove": ["Host"],
        "validate_clusters": False,
    },
    "not a mapping",
    {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"path": 1}}]}]},
]


FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
CORS_POLICY = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
# Every traffic-management field of a route config, well-formed and broken.
TRAFFIC: list[Any] = [
    {
        "virtual_hosts": [
            {
                "name": "v",
                "domains": ["*"],
                "retry_policy": {"retry_on": "5xx", "num_retries": 2},
                "cors": {"allow_methods": "GET"},
                "typed_per_filter_config": {
                    "fault": {"@type": FAULT, "abort": {"http_status": 503}}
                },
                "routes": [
                    {
                        "match": {
                            "prefix": "/",
                            "query_parameters": [{"name": "q", "present_match": True}],
                        },
                        "route": {
                            "weighted_clusters": {"clusters": [{"name": "a", "weight": 1}]},
                            "regex_rewrite": {"pattern": {"regex": "x"}, "substitution": "y"},
                            "hash_policy": [{"header": {"header_name": "x-u"}}],
                            "idle_timeout": "1s",
                            "max_stream_duration": {"max_stream_duration": "2s"},
                            "request_mirror_policies": [{"cluster": "m"}],
                            "cors": {"allow_headers": "x"},
                        },
                        "typed_per_filter_config": {"fault": {"@type": FAULT}},
                    },
                    {"match": {"path": "/r"}, "redirect": {"https_redirect": True}},
                ],
            }
        ]
    },
    {
        "virtual_hosts": [
            {
                "name": "v",
                "domains": ["*"],
                "retry_policy": {"retry_on": "nope"},
                "cors": {"allow_origin_string_match": [{"exact": 1}]},
                "typed_per_filter_config": {"missing": {}, "cors": {"@type": CORS_POLICY}},
                "routes": [
                    {
                        "match": {"prefix": "/", "query_parameters": [{"name": "q"}, 3]},
                        "route": {
                            "cluster": "c",
                            "weighted_clusters": {"clusters": [{"weight": -1}]},
                            "hash_policy": [{"cookie": {"name": "s", "path": "/"}}],
                            "max_stream_duration": {"grpc_timeout_header_max": "1s"},
                            "request_mirror_policies": "x",
                            "cors": [],
                        },
                    },
                    {"match": {"safe_regex": {"regex": "x"}}, "redirect": {"prefix_rewrite": "/"}},
                    {"match": {"path": "/r"}, "redirect": {"response_code": "GONE"}, "route": {}},
                ],
            }
        ]
    },
]


@pytest.mark.parametrize("index", range(len(TRAFFIC)))
def test_identical_on_traffic_fields(index: int) -> None:
    py, cy = both(TRAFFIC[index])
    assert py == cy
    assert (py[0] is None) == bool(py[1]) == (index == 1)


@pytest.mark.parametrize("index", range(len(BROKEN)))
def test_identical_problems_on_broken_route_configs(index: int) -> None:
    py, cy = both(BROKEN[index])
    assert py[1], "the case must have problems"
    assert py == cy


def test_broken_case_covers_many_problems() -> None:
    py, _ = both(BROKEN[0])
    assert len(py[1]) >= 30


def _endpoint(address: object, **extra: object) -> dict[str, object]:
    return {"endpoint": {"address": address}, **extra}


def _sock(host: object, port: object, **extra: object) -> dict[str, object]:
    return {"socket_address": {"address": host, "port_value": port, **extra}}


BROKEN_ENDPOINTS: list[Any] = [
    _endpoint(_sock("10.0.0.1", 80), load_balancing_weight=0),
    _endpoint(_sock("10.0.0.1", 0)),
    _endpoint(_sock("10.0.0.1", 65536)),
    _endpoint(_sock("10.0.0.1", "80")),  # proto3 JSON string: accepted by both
    _endpoint(_sock("010.0.0.1", 80)),
    _endpoint(_sock("256.0.0.1", 80)),
    _endpoint(_sock("::1", 80)),
    _endpoint(_sock("fe80::1%eth0", 80)),
    _endpoint(_sock("db.internal", 80)),
    _endpoint(_sock("bad_host!", 80)),
    _endpoint(_sock("", 80)),
    _endpoint(_sock(7, 80)),
    _endpoint(_sock("10.0.0.1", 80, protocol="UDP")),
    _endpoint(_sock("10.0.0.1", 80, resolver_name="x")),
    _endpoint({"pipe": {"path": "/tmp/s"}}),
    _endpoint({"socket_address": "x"}),
    _endpoint(_sock("10.0.0.1", 80), health_status="HEALTHY"),
    {"endpoint": {}},
    {"endpoint": {"address": _sock("10.0.0.1", 80), "hostname": "h"}},
    {},
    "nope",
]


@pytest.mark.parametrize("discovery", ["static", "strict_dns", "logical_dns"])
def test_identical_endpoints_valid_and_broken(discovery: str) -> None:
    la = {
        "cluster_name": "c",
        "endpoints": [
            {"lb_endpoints": BROKEN_ENDPOINTS},
            {"lb_endpoints": "x", "priority": 1},
            "nope",
            {"lb_endpoints": [_endpoint(_sock("1.2.3.4", 1))]},
        ],
    }
    results = []
    for fn in (py_endpoints, compiled_endpoints):
        issues = Issues("x")
        results.append((fn(issues, copy.deepcopy(la), "la", discovery), issues.problems))
    assert results[0] == results[1]
    assert len(results[0][1]) >= 15
    assert results[0][0][0] == {"host": "10.0.0.1", "port": 80}  # the string port
