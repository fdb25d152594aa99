"""Several `envoy.filters.network.rbac` filters in one chain (Istio's DENY filter, then its
ALLOW filter, both under `tcp.`, then its dry-run filter with `shadow_rules_stat_prefix`, and
a shadow-only one of another prefix): real Envoy and fastmesh-proxy, on the same config, let
the same connections through, close the same ones, and count the same `<stat_prefix>rbac.*`
values."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from tests.conftest import StartProxy
from tests.support import TcpEchoServer, bootstrap, cluster, free_port, require_binary, tcp_listener

RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
#: Where each connection comes from (loopback's /8 routes them all to the proxy).
ALLOWED, DENIED_BY_DENY, NOT_ALLOWED = "127.0.0.1", "127.0.0.2", "127.0.0.3"


def _peers(action: str, *ips: str) -> dict[str, Any]:
    principals = [{"direct_remote_ip": {"address_prefix": ip, "prefix_len": 32}} for ip in ips]
    return {
        "action": action,
        "policies": {"peers": {"permissions": [{"any": True}], "principals": principals}},
    }


def _rbac(stat_prefix: str, **rules: Any) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.rbac",
        "typed_config": {"@type": RBAC_TYPE, "stat_prefix": stat_prefix, **rules},
    }


def _config(port: int, admin: int, echo_port: int) -> dict[str, Any]:
    listener = tcp_listener("tcp", port, "echo")
    listener["filter_chains"][0]["filters"][0:0] = [
        _rbac("tcp.", rules=_peers("DENY", DENIED_BY_DENY)),
        _rbac("tcp.", rules=_peers("ALLOW", ALLOWED, DENIED_BY_DENY)),
        _rbac(
            "tcp.",
            shadow_rules=_peers("ALLOW", ALLOWED),
            shadow_rules_stat_prefix="istio_dry_run_allow_",
        ),
        _rbac("dry", shadow_rules=_peers("ALLOW", NOT_ALLOWED)),
    ]
    return bootstrap(
        admin_port=admin,
        listeners=[listener],
        clusters=[cluster("echo", [("127.0.0.1", echo_port)])],
    )


def _echoed(port: int, source: str) -> bool:
    """Whether a connection from `source` gets its bytes back (else it was closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        try:
            s.sendall(b"ping")
            return s.recv(4) == b"ping"
        except ConnectionResetError:
            return False


def _rbac_stats(admin_url: str) -> dict[str, int]:
    lines = httpx.get(f"{admin_url}/stats", timeout=10).text.splitlines()
    pairs = (line.partition(": ") for line in lines)
    return {k: int(v) for k, _, v in pairs if ".rbac." in k}


def _run(binary: str, start_proxy: StartProxy, echo: TcpEchoServer) -> tuple[list[bool], Any]:
    port = free_port()
    p = start_proxy(_config(port, free_port(), echo.port), binary=binary)
    sources = [ALLOWED, DENIED_BY_DENY, NOT_ALLOWED, ALLOWED]
    return [_echoed(port, s) for s in sources], _rbac_stats(p.admin_url)


@pytest.mark.envoy
def test_filters_judge_in_order_and_count_as_envoy_does(start_proxy: StartProxy) -> None:
    require_binary("envoy")
    with TcpEchoServer() as echo:
        envoy = _run("envoy", start_proxy, echo)
        fastmesh = _run("fastmesh-proxy", start_proxy, echo)
    assert fastmesh == envoy
    outcomes, stats = envoy
    assert outcomes == [True, False, False, True]
    # Both DENY and ALLOW count under `tcp.`: each allowed connection twice; the DENY
    # filter's denial stops the chain, so the ALLOW and shadow filters never see it.
    assert stats == {
        "tcp.rbac.allowed": 5,
        "tcp.rbac.denied": 2,
        "tcp.rbac.shadow_allowed": 0,
        "tcp.rbac.shadow_denied": 0,
        "tcp.rbac.istio_dry_run_allow_.shadow_allowed": 2,
        "tcp.rbac.istio_dry_run_allow_.shadow_denied": 0,
        "dry.rbac.allowed": 0,
        "dry.rbac.denied": 0,
        "dry.rbac.shadow_allowed": 0,
        "dry.rbac.shadow_denied": 2,
    }
