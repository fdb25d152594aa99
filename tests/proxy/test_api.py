"""`fastmesh.Proxy`: the engine embedded in this process, configured with Envoy config."""

from __future__ import annotations

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
