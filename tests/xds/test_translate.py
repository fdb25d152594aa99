"""A bootstrap with `dynamic_resources` plus what ADS delivered -> one native snapshot, under
the translator's strict rules: every error names its field (or its resource)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fastmesh.config import ConfigError, DynamicResources, translate_bootstrap
from fastmesh.config._compile import compile_bootstrap, decode, encode
from tests.controlplane.harness import ads_bootstrap

BOOTSTRAP = ads_bootstrap(admin_port=9901, xds_port=15010, node_id="sidecar~1~a.default~x")
ADS = {"ads": {}, "resource_api_version": "V3"}
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def problems(doc: dict[str, Any], dynamic: DynamicResources | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        translate_bootstrap(doc, "boot", dynamic=dynamic)
    return {p.path: p.message for p in info.value.problems}


def eds_cluster(name: str) -> dict[str, Any]:
    return {"name": name, "type": "EDS", "eds_cluster_config": {"eds_config": ADS}}


def rds_listener(name: str, port: int, route_config: str) -> dict[str, Any]:
    hcm = {
        "@type": f"{HCM}.HttpConnectionManager",
        "stat_prefix": name,
        "rds": {"route_config_name": route_config, "config_source": ADS},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "traffic_direction": "OUTBOUND",
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def route_config(name: str, cluster: str) -> dict[str, Any]:
    return {
        "name": name,
        "validate_clusters": False,
        "virtual_hosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
            }
        ],
    }


def assignment(name: str, *ports: int) -> dict[str, Any]:
    eps = [
        {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": p}}}}
        for p in ports
    ]
    return {"cluster_name": name, "endpoints": [{"lb_endpoints": eps}]}


def test_the_bootstrap_alone_names_the_ads_server_and_serves_its_static_part() -> None:
    boot = translate_bootstrap(BOOTSTRAP, "boot")
    assert boot.ads is not None and boot.ads.addresses == (("127.0.0.1", 15010),)
    assert [c["name"] for c in boot.snapshot["clusters"]] == ["xds-grpc"]
    assert boot.warming == ()


def test_dynamic_resources_join_the_static_ones_in_one_snapshot() -> None:
    dynamic = DynamicResources(
        clusters={"web": eds_cluster("web")},
        listeners={"out": rds_listener("out", 9080, "9080")},
        assignments={"web": assignment("web", 80, 81)},
        route_configs={"9080": route_config("9080", "web")},
    )
    boot = translate_bootstrap(BOOTSTRAP, "boot", dynamic=dynamic)
    web = next(c for c in boot.snapshot["clusters"] if c["name"] == "web")
    assert web["discovery"] == "static"
    assert web["endpoints"] == [{"host": "10.0.0.1", "port": 80}, {"host": "10.0.0.1", "port": 81}]
    [listener] = boot.snapshot["listeners"]
    routes = listener["filter"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["action"]["forward"]["cluster"] == "web"
    assert (boot.eds_names, boot.rds_names, boot.warming) == (("web",), ("9080",), ())
    assert boot.rds_stat_prefixes == {"9080": "out"}  # the HCM's, for the RDS stats


def test_what_has_not_arrived_is_named_and_translated_empty() -> None:
    dynamic = DynamicResources(
        clusters={"web": eds_cluster("web")}, listeners={"out": rds_listener("out", 1, "r")}
    )
    boot = translate_bootstrap(BOOTSTRAP, "boot", dynamic=dynamic)
    assert boot.warming == ("ClusterLoadAssignment web", "RouteConfiguration r")
    web = next(c for c in boot.snapshot["clusters"] if c["name"] == "web")
    assert web["endpoints"] == []
    assert boot.snapshot["listeners"][0]["filter"]["route_config"]["virtual_hosts"] == []


def test_errors_in_resources_name_the_resource() -> None:
    rc = route_config("r", "nowhere")
    dynamic = DynamicResources(
        clusters={"web": {**eds_cluster("web"), "lb_policy": "CLUSTER_PROVIDED"}},
        listeners={"out": rds_listener("out", 1, "r")},
        assignments={"web": assignment("web", 0)},
        route_configs={"r": rc},
    )
    found = problems(BOOTSTRAP, dynamic)
    assert found == {
        "Cluster[web].lb_policy": "CLUSTER_PROVIDED is not supported by fastmesh yet "
        "(see docs/envoy-subset.md)",
        "ClusterLoadAssignment[web].endpoints[0].lb_endpoints[0].endpoint.address"
        ".socket_address.port_value": "expected an integer 1..65535, got 0",
        "RouteConfiguration[r].virtual_hosts[0].routes[0].route.cluster": "unknown cluster "
        "'nowhere' (no cluster of that name is defined)",
    }


def test_the_ads_source_must_be_grpc_v3_to_a_static_http2_cluster() -> None:
    doc = copy.deepcopy(BOOTSTRAP)
    dyn = doc["dynamic_resources"]
    dyn["ads_config"]["api_type"] = "REST"
    dyn["lds_config"] = {"path": "/etc/lds.yaml"}
    dyn["cds_config"]["resource_api_version"] = "V2"
    assert problems(doc) == {
        "dynamic_resources.ads_config.api_type": "expected GRPC or DELTA_GRPC, got 'REST'",
        "dynamic_resources.lds_config.path": "not supported by fastmesh yet "
        "(see docs/envoy-subset.md); supported here: ads, resource_api_version",
        "dynamic_resources.lds_config": "expected {ads: {}}: fastmesh takes xDS resources "
        "over ADS only",
        "dynamic_resources.cds_config.resource_api_version": "expected V3, got 'V2'",
    }

    doc = copy.deepcopy(BOOTSTRAP)
    del doc["static_resources"]["clusters"][0]["typed_extension_protocol_options"]
    where = "dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name"
    assert problems(doc) == {
        where: "cluster 'xds-grpc' must speak HTTP/2 (gRPC): set http2_protocol_options"
    }
    doc["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"] = "x"
    assert problems(doc) == {
        where: "unknown cluster 'x' (the ADS cluster must be a static cluster)"
    }


def test_delta_grpc_makes_the_ads_stream_incremental() -> None:
    delta = ads_bootstrap(
        admin_port=9901, xds_port=15010, node_id="sidecar~1~a.default~x", delta=True
    )
    boot = translate_bootstrap(delta, "boot")
    assert boot.ads is not None and boot.ads.delta
    compiled = compile_bootstrap(boot, delta)
    assert compiled.ads_delta and decode(encode(compiled), 0).ads_delta  # across the child
    sotw = translate_bootstrap(BOOTSTRAP, "boot")
    assert sotw.ads is not None and not sotw.ads.delta


def test_eds_and_rds_need_dynamic_resources() -> None:
    doc = copy.deepcopy(BOOTSTRAP)
    del doc["dynamic_resources"]
    doc["static_resources"]["clusters"].append(eds_cluster("web"))
    doc["static_resources"]["listeners"] = [rds_listener("out", 1, "r")]
    found = problems(doc)
    assert found["static_resources.clusters[1].type"] == (
        "EDS needs dynamic_resources.ads_config in the bootstrap"
    )
    assert found["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.rds"] == (
        "rds needs dynamic_resources.ads_config in the bootstrap"
    )
