"""`fastmesh.Proxy`: the engine embedded in this process, configured with Envoy config."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import fastmesh
from tests.support import EchoServer, to_yaml

from ._topology import Ports, front_config

pytest.importorskip("fastmesh._native", reason="the engine is not built (scripts/build.sh)")


def test_proxy_from_a_dict_serves_applies_and_stops(echo: EchoServer) -> None:
    ports = Ports.fresh()
    url = f"http://127.0.0.1:{ports.listener}"
    with fastmesh.Proxy(front_config(ports, echo.port), workers=1) as proxy:
        assert proxy.running
        assert proxy.listening() == {"ingress": f"127.0.0.1:{ports.listener}"}
        assert httpx.get(f"{url}/items").json()["path"] == "/items"
        assert proxy.stats()["cluster.echo.upstream_rq_total"] == 1
        assert [c["name"] for c in proxy.clusters()] == ["echo"]
        first = proxy.version

        proxy.apply(front_config(ports, echo.port, healthz="v2\n"))
        assert proxy.version != first
        assert httpx.get(f"{url}/healthz").text == "v2\n"
    assert not proxy.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")


def test_proxy_from_a_file(echo: EchoServer, tmp_path: Path) -> None:
    ports = Ports.fresh()
    cfg = tmp_path / "envoy.yaml"
    cfg.write_text(to_yaml(front_config(ports, echo.port)))
    proxy = fastmesh.Proxy(cfg)
    proxy.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{ports.listener}/healthz").text == "ok\n"
        assert proxy.drain(2.0) is True
    finally:
        proxy.stop()
        proxy.stop()  # idempotent


def test_bad_config_raises_and_keeps_the_old_one(echo: EchoServer) -> None:
    from fastmesh.config import ConfigError

    ports = Ports.fresh()
    bad = front_config(ports, echo.port)
    bad["static_resources"]["clusters"][0]["type"] = "NOPE"
    with pytest.raises(ConfigError, match=r"static_resources\.clusters\[0\]\.type"):
        fastmesh.Proxy(bad).start()
    with fastmesh.Proxy(front_config(ports, echo.port)) as proxy:
        with pytest.raises(ConfigError):
            proxy.apply(bad)
        assert httpx.get(f"http://127.0.0.1:{ports.listener}/healthz").text == "ok\n"


def test_calls_before_start_are_errors() -> None:
    proxy = fastmesh.Proxy({"static_resources": {}})
    with pytest.raises(RuntimeError, match="start"):
        proxy.stats()


def test_stats_of_a_removed_cluster_and_listener_go_and_an_update_keeps_them(
    echo: EchoServer,
) -> None:
    """Envoy's cluster and listener stats live in their scope: an update carries the
    counters on, a removal takes them away (xDS churn must not grow the registry)."""
    ports = Ports.fresh()
    moved = Ports.fresh().listener
    with fastmesh.Proxy(front_config(ports, echo.port), workers=1) as proxy:
        assert httpx.get(f"http://127.0.0.1:{ports.listener}/a").status_code == 200
        old_listener = f"listener.127.0.0.1_{ports.listener}.downstream_cx_total"
        assert proxy.stats()[old_listener] == 1

        changed = front_config(ports, echo.port)
        changed["static_resources"]["clusters"][0]["connect_timeout"] = "2s"
        address = changed["static_resources"]["listeners"][0]["address"]["socket_address"]
        address["port_value"] = moved
        proxy.apply(changed)
        assert httpx.get(f"http://127.0.0.1:{moved}/b").status_code == 200
        stats = _wait_for(proxy, lambda s: old_listener not in s)
        assert stats["cluster.echo.upstream_rq_total"] == 2, "carried over the update"
        assert stats[f"listener.127.0.0.1_{moved}.downstream_cx_total"] == 1

        without = front_config(ports, echo.port)
        without["static_resources"]["clusters"] = []
        without["static_resources"]["listeners"] = []
        proxy.apply(without)
        stats = _wait_for(proxy, lambda s: not any(k.startswith("cluster.echo.") for k in s))
        assert not [k for k in stats if k.startswith("listener.127.0.0.1_")]

        proxy.apply(front_config(ports, echo.port))
        assert proxy.stats()["cluster.echo.upstream_rq_total"] == 0, "added back, from zero"


def _wait_for(
    proxy: fastmesh.Proxy, done: Callable[[dict[str, int]], bool], within: float = 5.0
) -> dict[str, int]:
    """The proxy's stats once `done` holds of them (a drained listener goes with its
    last connection)."""
    deadline = time.monotonic() + within
    while not done(stats := proxy.stats()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done(stats), sorted(stats)
    return stats
