"""The admin listener of a real `fastmesh-proxy`: Envoy's endpoints, Envoy's formats."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support import EchoServer, ProxyProcess, run_proxy

from ._topology import Ports, front_config


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[tuple[ProxyProcess, Ports, EchoServer]]:
    ports = Ports.fresh()
    with run_proxy(front_config(ports, echo.port)) as running:
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{ports.listener}/items").status_code == 200
        yield running, ports, echo


def test_ready_is_live(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    r = httpx.get(f"{p.admin_url}/ready")
    assert (r.status_code, r.text) == (200, "LIVE\n")
    assert r.headers["content-type"] == "text/plain; charset=UTF-8"


def test_healthcheck_fail_and_ok_flip_ready(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, ports, _ = proxy
    assert httpx.post(f"{p.admin_url}/healthcheck/fail").text == "OK\n"
    r = httpx.get(f"{p.admin_url}/ready")
    assert (r.status_code, r.text) == (503, "DRAINING\n")
    # Failing health checks does not stop traffic.
    assert httpx.get(f"http://127.0.0.1:{ports.listener}/healthz").status_code == 200
    assert httpx.post(f"{p.admin_url}/healthcheck/ok").text == "OK\n"
    assert httpx.get(f"{p.admin_url}/ready").status_code == 200


def test_stats_text(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    r = httpx.get(f"{p.admin_url}/stats")
    lines = r.text.splitlines()
    assert lines == sorted(lines)
    stats = dict(line.split(": ", 1) for line in lines)
    assert stats["cluster.echo.upstream_rq_total"] == "3"
    assert stats["server.live"] == "1"
    assert stats["server.concurrency"] == "1"
    assert int(stats["server.uptime"]) >= 0
    assert stats["server.config_reload_success"] == "0"
    filtered = httpx.get(f"{p.admin_url}/stats", params={"filter": "^server\\.live$"})
    assert filtered.text == "server.live: 1\n"


def test_stats_json(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    r = httpx.get(f"{p.admin_url}/stats", params={"format": "json"})
    assert r.headers["content-type"] == "application/json"
    stats = {row["name"]: row["value"] for row in r.json()["stats"]}
    assert stats["cluster.echo.upstream_rq_total"] == 3


def test_stats_prometheus(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    text = httpx.get(f"{p.admin_url}/stats/prometheus").text
    lines = text.splitlines()
    assert "# TYPE envoy_cluster_upstream_rq_total counter" in lines
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="echo"} 3' in lines
    assert (
        'envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",'
        'envoy_cluster_name="echo"} 3' in lines
    )
    assert "envoy_server_live{} 1" in lines
    assert httpx.get(f"{p.admin_url}/stats", params={"format": "prometheus"}).text == text


def test_clusters(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, echo = proxy
    lines = httpx.get(f"{p.admin_url}/clusters").text.splitlines()
    host = f"echo::127.0.0.1:{echo.port}"
    assert "echo::observability_name::echo" in lines
    assert f"{host}::rq_total::3" in lines
    assert f"{host}::health_flags::healthy" in lines
    doc = httpx.get(f"{p.admin_url}/clusters", params={"format": "json"}).json()
    (status,) = doc["cluster_statuses"]
    assert status["name"] == "echo"
    address = status["host_statuses"][0]["address"]["socket_address"]
    assert address == {"address": "127.0.0.1", "port_value": echo.port}


def test_config_dump(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, ports, _ = proxy
    configs = httpx.get(f"{p.admin_url}/config_dump").json()["configs"]
    boot, native = configs
    assert boot["@type"] == "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
    assert boot["bootstrap"]["static_resources"]["clusters"][0]["name"] == "echo"
    assert len(native["version"]) == 12
    listener = native["snapshot"]["listeners"][0]
    assert listener["address"] == f"127.0.0.1:{ports.listener}"
    assert native["snapshot"]["version"] == native["version"]


def test_server_info_and_listeners(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, ports, _ = proxy
    info = httpx.get(f"{p.admin_url}/server_info").json()
    assert info["state"] == "LIVE"
    assert info["version"].startswith("fastmesh/")
    assert info["command_line_options"]["concurrency"] == 1
    assert httpx.get(f"{p.admin_url}/listeners").text == f"ingress::127.0.0.1:{ports.listener}\n"


def test_unknown_path_lists_the_endpoints(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    r = httpx.get(f"{p.admin_url}/nope")
    assert r.status_code == 404
    assert r.text.startswith("invalid path. admin commands are:\n")
    for endpoint in ("/ready", "/stats/prometheus", "/clusters", "/config_dump", "/quitquitquit"):
        assert f"  {endpoint}" in r.text


def test_post_only_endpoints_refuse_get(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    r = httpx.get(f"{p.admin_url}/quitquitquit")
    assert (r.status_code, r.text) == (405, "Method GET not allowed, POST required.")
    assert p.alive()


def test_keep_alive_serves_many_requests_on_one_connection(
    proxy: tuple[ProxyProcess, Ports, EchoServer],
) -> None:
    p, _, _ = proxy
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(f"{p.admin_url}/ready").status_code == 200


def test_quitquitquit_exits_gracefully(echo: EchoServer) -> None:
    ports = Ports.fresh()
    with run_proxy(front_config(ports, echo.port), log_level="info") as p:
        r = httpx.post(f"{p.admin_url}/quitquitquit")
        assert (r.status_code, r.text) == (200, "OK\n")
        assert p.wait_exit(timeout=20) == 0
        assert "shutting down: admin /quitquitquit" in p.log()


def test_json_bodies_are_valid_json(proxy: tuple[ProxyProcess, Ports, EchoServer]) -> None:
    p, _, _ = proxy
    for path in ("/config_dump", "/server_info", "/clusters?format=json", "/stats?format=json"):
        json.loads(httpx.get(f"{p.admin_url}{path}").text)
