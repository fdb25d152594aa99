"""Envoy's admin formats (`/stats`, `/stats/prometheus`, `/clusters`) from plain data."""

from __future__ import annotations

import json

import pytest

from fastmesh.observe import (
    format_clusters_json,
    format_clusters_text,
    format_prometheus,
    format_stats_json,
    format_stats_text,
    is_gauge,
    prometheus_name,
)
from fastmesh.observe.prometheus import extract_tags

STATS = {
    "cluster.catalog.upstream_rq_total": 5,
    "cluster.catalog.upstream_rq_200": 4,
    "cluster.catalog.upstream_rq_503": 1,
    "cluster.catalog.upstream_rq_2xx": 4,
    "cluster.catalog.upstream_rq_5xx": 1,
    "cluster.catalog.upstream_rq_active": 0,
    "cluster.catalog.membership_total": 2,
    "http.ingress_http.downstream_rq_total": 6,
    "http.ingress_http.downstream_rq_4xx": 1,
    "listener.127.0.0.1_10000.downstream_cx_total": 3,
    "tcp.db.downstream_cx_total": 2,
    "server.live": 1,
}


def test_stats_text_is_sorted_name_colon_value() -> None:
    text = format_stats_text(STATS)
    lines = text.splitlines()
    assert lines == sorted(lines)
    assert "cluster.catalog.upstream_rq_total: 5" in lines
    assert text.endswith("\n")


def test_stats_text_filter_and_usedonly() -> None:
    assert format_stats_text(STATS, filter_re=r"^server\.") == "server.live: 1\n"
    assert "upstream_rq_active" not in format_stats_text(STATS, used_only=True)


def test_stats_json_matches_envoy_shape() -> None:
    doc = json.loads(format_stats_json({"b": 2, "a": 1}))
    assert doc == {"stats": [{"name": "a", "value": 1}, {"name": "b", "value": 2}]}


@pytest.mark.parametrize(
    ("stat", "name", "tags"),
    [
        (
            "cluster.up.upstream_rq_total",
            "cluster.upstream_rq_total",
            [("envoy_cluster_name", "up")],
        ),
        (
            "cluster.up.upstream_rq_200",
            "cluster.upstream_rq",
            [("envoy_response_code", "200"), ("envoy_cluster_name", "up")],
        ),
        (
            "http.ingress_http.downstream_rq_2xx",
            "http.downstream_rq_xx",
            [
                ("envoy_response_code_class", "2"),
                ("envoy_http_conn_manager_prefix", "ingress_http"),
            ],
        ),
        (
            "listener.0.0.0.0_10000.downstream_cx_total",
            "listener.downstream_cx_total",
            [("envoy_listener_address", "0.0.0.0_10000")],
        ),
        (
            "listener.[__1]_80.downstream_cx_total",
            "listener.downstream_cx_total",
            [("envoy_listener_address", "[__1]_80")],
        ),
        (
            "listener.127.0.0.1_80.worker_12.downstream_cx_active",
            "listener.worker_downstream_cx_active",
            [("envoy_worker_id", "12"), ("envoy_listener_address", "127.0.0.1_80")],
        ),
        ("tcp.db.downstream_cx_total", "tcp.downstream_cx_total", [("envoy_tcp_prefix", "db")]),
        ("server.live", "server.live", []),
        (
            "listener.127.0.0.1_443.ssl.versions.TLSv1.3",
            "listener.ssl.versions",
            [("envoy_ssl_version", "TLSv1.3"), ("envoy_listener_address", "127.0.0.1_443")],
        ),
        (
            "cluster.up.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256",
            "cluster.ssl.ciphers",
            [("cipher_suite", "ECDHE-RSA-AES128-GCM-SHA256"), ("envoy_cluster_name", "up")],
        ),
        (
            "cluster.up.ssl.sigalgs.ed25519",
            "cluster.ssl.sigalgs",
            [("envoy_ssl_sigalg", "ed25519"), ("envoy_cluster_name", "up")],
        ),
        ("cluster.up.ssl.handshake", "cluster.ssl.handshake", [("envoy_cluster_name", "up")]),
        (
            # As Envoy 1.40 prints it; a secret's name may have dots.
            "listener.127.0.0.1_443.ssl.certificate.my.cert.expiration_unix_time_seconds",
            "listener.ssl.certificate.expiration_unix_time_seconds",
            [("envoy_tls_certificate", "my.cert"), ("envoy_listener_address", "127.0.0.1_443")],
        ),
    ],
)
def test_tag_extraction_follows_envoy(stat: str, name: str, tags: list[tuple[str, str]]) -> None:
    assert extract_tags(stat) == (name, tags)


def test_prometheus_names_are_sanitized_with_envoy_prefix() -> None:
    assert prometheus_name("cluster.a-b.upstream_cx_total") == "envoy_cluster_upstream_cx_total"
    assert prometheus_name("server.weird-name.x") == "envoy_server_weird_name_x"


def test_prometheus_text_like_envoy() -> None:
    text = format_prometheus(STATS)
    lines = text.splitlines()
    # Exactly the lines Envoy 1.40 prints for the same counters.
    assert "# TYPE envoy_cluster_upstream_rq counter" in lines
    assert (
        'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="catalog"} 4'
        in lines
    )
    assert (
        'envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="catalog"} 1'
        in lines
    )
    assert (
        'envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="catalog"} 1'
        in lines
    )
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="catalog"} 5' in lines
    assert (
        'envoy_http_downstream_rq_xx{envoy_response_code_class="4",'
        'envoy_http_conn_manager_prefix="ingress_http"} 1'
    ) in lines
    assert 'envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_10000"} 3' in lines
    assert 'envoy_tcp_downstream_cx_total{envoy_tcp_prefix="db"} 2' in lines
    assert "# TYPE envoy_server_live gauge" in lines
    assert "envoy_server_live{} 1" in lines
    assert "# TYPE envoy_cluster_membership_total gauge" in lines


def test_prometheus_each_family_has_one_type_line_before_its_samples() -> None:
    seen: set[str] = set()
    current = ""
    for line in format_prometheus(STATS).splitlines():
        if line.startswith("# TYPE "):
            _, _, metric, kind = line.split(" ")
            assert metric not in seen
            assert kind in ("counter", "gauge")
            seen.add(metric)
            current = metric
        else:
            assert line.startswith(current + "{")
    # Counters come before gauges, as in Envoy's output.
    kinds = [ln.rsplit(" ", 1)[1] for ln in format_prometheus(STATS).splitlines() if ln[0] == "#"]
    assert kinds == sorted(kinds)


def test_prometheus_escapes_label_values() -> None:
    text = format_prometheus({'cluster.a"b.upstream_rq_total': 1})
    assert 'envoy_cluster_name="a\\"b"' in text


def test_gauge_classification() -> None:
    assert is_gauge("cluster.x.upstream_rq_active")
    assert is_gauge("cluster.x.membership_healthy")
    assert is_gauge("server.uptime")
    assert is_gauge("cluster.x.ssl.certificate.unnamed_cert_e3b0c442.expiration_unix_time_seconds")
    assert is_gauge("server.days_until_first_cert_expiring")
    assert is_gauge("server.seconds_until_first_ocsp_response_expiring")
    assert not is_gauge("listener.a.ssl.ocsp_staple_requests")
    assert not is_gauge("cluster.x.upstream_rq_active_overflow")
    assert not is_gauge("cluster.x.upstream_rq_total")


CLUSTERS = [
    {
        "name": "catalog",
        "endpoints": [
            {
                "address": "127.0.0.1:8001",
                "weight": 1,
                "rq_total": 4,
                "rq_error": 1,
                "rq_active": 0,
            },
            {"address": "[::1]:8002", "weight": 3, "rq_total": 0},
        ],
    }
]


def test_clusters_text_like_envoy() -> None:
    lines = format_clusters_text(CLUSTERS).splitlines()
    assert lines[0] == "catalog::observability_name::catalog"
    assert "catalog::127.0.0.1:8001::rq_total::4" in lines
    assert "catalog::127.0.0.1:8001::rq_error::1" in lines
    assert "catalog::127.0.0.1:8001::health_flags::healthy" in lines
    assert "catalog::[::1]:8002::weight::3" in lines
    # Envoy's order: rq_active before rq_error before rq_total.
    order = [ln.split("::")[2] for ln in lines if ln.startswith("catalog::127.0.0.1:8001::rq_")]
    assert order == ["rq_active", "rq_error", "rq_success", "rq_total"]


def test_clusters_accepts_the_engine_names() -> None:
    engine_view = [
        {
            "name": "c",
            "endpoints": [
                {"address": "10.0.0.1:80", "weight": 2, "active_requests": 1, "requests": 7,
                 "failures": 2, "connect_failures": 1},
            ],
        }
    ]  # fmt: skip
    lines = format_clusters_text(engine_view).splitlines()
    for expected in ("rq_active::1", "rq_total::7", "rq_error::2", "rq_success::5",
                     "cx_connect_fail::1", "weight::2"):  # fmt: skip
        assert f"c::10.0.0.1:80::{expected}" in lines


def test_clusters_json_like_envoy() -> None:
    doc = json.loads(format_clusters_json(CLUSTERS))
    status = doc["cluster_statuses"][0]
    assert status["name"] == "catalog"
    host = status["host_statuses"][0]
    assert host["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 8001}}
    stats = {s["name"]: s for s in host["stats"]}
    assert stats["rq_total"]["value"] == "4"
    assert "value" not in stats["rq_active"]  # protobuf JSON omits zeros
    assert stats["rq_active"]["type"] == "GAUGE"
    assert status["host_statuses"][1]["address"]["socket_address"]["address"] == "::1"


#: What `Engine.clusters()` returns for a cluster with outlier detection and health checks.
CHECKED = [
    {
        "name": "web",
        "outlier": {"success_rate_average": 90.0, "success_rate_ejection_threshold": 52.0},
        "endpoints": [
            {"address": "10.0.0.1:80", "weight": 1, "priority": 0, "requests": 10,
             "failures": 5, "health_flags": "/failed_active_hc/failed_outlier_check",
             "success_rate": 50.0, "outlier_ejections": 2},
            {"address": "10.0.0.2:80", "weight": 1, "priority": 1, "requests": 3,
             "failures": 0, "health_flags": "healthy", "success_rate": -1.0,
             "outlier_ejections": 0},
        ],
    }
]  # fmt: skip


def test_clusters_text_prints_host_health_in_envoys_order() -> None:
    lines = format_clusters_text(CHECKED).splitlines()
    host = "web::10.0.0.1:80"
    tail = lines[lines.index(f"{host}::hostname::") :][:10]
    assert tail == [
        f"{host}::hostname::",
        f"{host}::health_flags::/failed_active_hc/failed_outlier_check",
        f"{host}::weight::1",
        f"{host}::region::",
        f"{host}::zone::",
        f"{host}::sub_zone::",
        f"{host}::canary::false",
        f"{host}::priority::0",
        f"{host}::success_rate::50",
        f"{host}::local_origin_success_rate::-1",
    ]
    assert "web::10.0.0.2:80::health_flags::healthy" in lines
    assert "web::10.0.0.2:80::priority::1" in lines
    assert "web::10.0.0.2:80::success_rate::-1" in lines
    # Neither priority nor the ejection count is a host stat.
    assert not any("::outlier_ejections::" in ln for ln in lines)
    assert sum("::priority::" in ln for ln in lines) == 2


def test_clusters_text_prints_the_outlier_averages_after_the_name() -> None:
    lines = format_clusters_text(CHECKED).splitlines()
    assert lines[:6] == [
        "web::observability_name::web",
        "web::outlier::success_rate_average::90",
        "web::outlier::success_rate_ejection_threshold::52",
        "web::outlier::local_origin_success_rate_average::-1",
        "web::outlier::local_origin_success_rate_ejection_threshold::-1",
        "web::added_via_api::false",
    ]
    # Without outlier detection Envoy prints no outlier lines.
    assert not any("::outlier::" in ln for ln in format_clusters_text(CLUSTERS).splitlines())


def test_success_rates_print_like_envoys_fmt() -> None:
    view = [{"name": "c", "endpoints": [{"address": "10.0.0.1:80", "success_rate": 97.5}]}]
    assert "c::10.0.0.1:80::success_rate::97.5" in format_clusters_text(view).splitlines()


def test_clusters_json_reports_health_like_envoy() -> None:
    status = json.loads(format_clusters_json(CHECKED))["cluster_statuses"][0]
    assert status["success_rate_ejection_threshold"] == {"value": 52.0}
    failed, healthy = status["host_statuses"]
    assert failed["health_status"] == {
        "failed_active_health_check": True,
        "failed_outlier_check": True,
        "eds_health_status": "HEALTHY",
    }
    assert failed["success_rate"] == {"value": 50.0}
    assert "priority" not in failed  # protobuf JSON omits zero
    assert healthy["health_status"] == {"eds_health_status": "HEALTHY"}
    assert healthy["priority"] == 1
    assert "success_rate" not in healthy
    assert healthy["locality"] == {}
