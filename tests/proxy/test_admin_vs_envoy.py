"""The admin API against the oracle: the same config and traffic under real Envoy and
fastmesh-proxy must answer the admin endpoints scripts and dashboards depend on alike."""

from __future__ import annotations

import httpx

from tests.support import EchoServer, run_proxy

from ._topology import Ports, front_config


def test_admin_answers_like_envoy(binary: str, echo: EchoServer) -> None:
    ports = Ports.fresh()
    with run_proxy(front_config(ports, echo.port), binary=binary) as p:
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{ports.listener}/items").status_code == 200
        admin = p.admin_url

        ready = httpx.get(f"{admin}/ready")
        assert (ready.status_code, ready.text) == (200, "LIVE\n")

        stats = httpx.get(f"{admin}/stats").text.splitlines()
        assert "cluster.echo.upstream_rq_total: 3" in stats
        assert "http.ingress_http.downstream_rq_2xx: 3" in stats
        assert "server.live: 1" in stats
        json_stats = httpx.get(f"{admin}/stats?format=json").json()["stats"]
        assert {"name": "cluster.echo.upstream_rq_total", "value": 3} in json_stats

        prom = httpx.get(f"{admin}/stats/prometheus").text.splitlines()
        for line in (
            "# TYPE envoy_cluster_upstream_rq_total counter",
            'envoy_cluster_upstream_rq_total{envoy_cluster_name="echo"} 3',
            'envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",'
            'envoy_cluster_name="echo"} 3',
            "# TYPE envoy_http_downstream_rq_xx counter",
            'envoy_http_downstream_rq_xx{envoy_response_code_class="2",'
            'envoy_http_conn_manager_prefix="ingress_http"} 3',
            "# TYPE envoy_server_live gauge",
            "envoy_server_live{} 1",
        ):
            assert line in prom, line

        clusters = httpx.get(f"{admin}/clusters").text.splitlines()
        host = f"echo::127.0.0.1:{echo.port}"
        assert "echo::observability_name::echo" in clusters
        assert f"{host}::rq_total::3" in clusters
        assert f"{host}::rq_error::0" in clusters
        assert f"{host}::health_flags::healthy" in clusters
        assert f"{host}::weight::1" in clusters
        statuses = httpx.get(f"{admin}/clusters?format=json").json()["cluster_statuses"]
        echo_status = next(s for s in statuses if s["name"] == "echo")
        address = echo_status["host_statuses"][0]["address"]["socket_address"]
        assert address == {"address": "127.0.0.1", "port_value": echo.port}

        dump = httpx.get(f"{admin}/config_dump").json()["configs"]
        assert any(
            c["@type"] == "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump" for c in dump
        )

        missing = httpx.get(f"{admin}/no/such/page")
        assert missing.status_code == 404
        assert missing.text.startswith("invalid path. admin commands are:\n")

        get_quit = httpx.get(f"{admin}/quitquitquit")
        assert (get_quit.status_code, get_quit.text) == (
            405,
            "Method GET not allowed, POST required.",
        )

        assert httpx.post(f"{admin}/healthcheck/fail").text == "OK\n"
        failed = httpx.get(f"{admin}/ready")
        assert (failed.status_code, failed.text) == (503, "DRAINING\n")
        assert httpx.post(f"{admin}/healthcheck/ok").text == "OK\n"

        quit_ = httpx.post(f"{admin}/quitquitquit")
        assert (quit_.status_code, quit_.text) == (200, "OK\n")
        assert p.wait_exit(timeout=30) == 0
