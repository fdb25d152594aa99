"""`connection_balance_config: {exact_balance: {}}` against the oracle: at two workers,
long-lived connections end up split evenly, and Envoy's per-worker listener stats say so
with the same names in `/stats` and `/stats/prometheus`."""

from __future__ import annotations

import socket

import httpx

from tests.support import EchoServer, read_response, run_proxy

from ._topology import Ports, front_config

CONNECTIONS = 12


def test_exact_balance_splits_connections_evenly(binary: str, echo: EchoServer) -> None:
    ports = Ports.fresh()
    config = front_config(ports, echo.port)
    config["static_resources"]["listeners"][0]["connection_balance_config"] = {"exact_balance": {}}
    with run_proxy(config, binary=binary, concurrency=2) as p:
        held = []
        try:
            # Each served once and kept open; the kernel's SO_REUSEPORT hash alone would
            # split twelve 6/6 less than a quarter of the time.
            for _ in range(CONNECTIONS):
                s = socket.create_connection(("127.0.0.1", ports.listener), timeout=5)
                held.append(s)
                s.sendall(b"GET /items HTTP/1.1\r\nhost: x\r\n\r\n")
                assert read_response(s.makefile("rb")).status == 200
            at = f"listener.127.0.0.1_{ports.listener}"
            for worker in (0, 1):
                name = f"{at}.worker_{worker}.downstream_cx_active"
                assert p.counter(name) == CONNECTIONS // 2, name
            prom = httpx.get(f"{p.admin_url}/stats/prometheus").text.splitlines()
            for worker in (0, 1):
                assert (
                    f'envoy_listener_worker_downstream_cx_total{{envoy_worker_id="{worker}",'
                    f'envoy_listener_address="127.0.0.1_{ports.listener}"}} {CONNECTIONS // 2}'
                ) in prom
        finally:
            for s in held:
                s.close()
