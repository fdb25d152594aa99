"""Protocol limits and errors: oversized headers get 431, malformed requests 400 + close."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import (
    BINARY_PARAMS,
    EchoServer,
    ProxyProcess,
    bootstrap,
    cluster,
    connect,
    free_port,
    http_listener,
    is_closed,
    prefix,
    read_response,
    require_binary,
    route,
    run_proxy,
    virtual_host,
)


@dataclass
class Topology:
    proxy: ProxyProcess
    port: int
    upstream: EchoServer


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    binary: str = request.param
    require_binary(binary)
    with EchoServer("up") as up:
        port = free_port()
        vhost = virtual_host("all", ["*"], [route(prefix("/"), cluster="up")])
        cfg = bootstrap(
            admin_port=free_port(),
            listeners=[http_listener("ingress", port, [vhost], max_request_headers_kb=8)],
            clusters=[cluster("up", [("127.0.0.1", up.port)])],
        )
        with run_proxy(cfg, binary=binary) as proxy:
            yield Topology(proxy, port, up)


def test_headers_under_the_limit_pass(topo: Topology) -> None:
    r = httpx.get(topo.proxy.url(topo.port, "/"), headers={"x-big": "v" * 6000}, timeout=10)
    assert r.status_code == 200
    assert r.json()["headers"]["x-big"] == "v" * 6000


def test_oversized_headers_get_431(topo: Topology) -> None:
    before = len(topo.upstream.requests)
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nx-big: " + b"v" * 10_000 + b"\r\n\r\n")
        resp = read_response(reader)
    assert resp.status == 431
    assert len(topo.upstream.requests) == before, "the oversized request reached the upstream"


def test_oversized_headers_h2_rejected(topo: Topology) -> None:
    """Over HTTP/2 the stream is refused (Envoy: 431); it must never reach the upstream."""
    before = len(topo.upstream.requests)
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        try:
            r = client.get(topo.proxy.url(topo.port, "/big"), headers={"x-big": "v" * 10_000})
            assert r.status_code == 431
        except httpx.RemoteProtocolError:
            pass  # a stream or connection reset is also a rejection
    assert len(topo.upstream.requests) == before


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ZZZ\r\nhello\r\n0\r\n\r\n",
    ],
    ids=[
        "request-line",
        "header-line",
        "conflicting-length",
        "bad-chunk-size-get",
        "bad-chunk-size-post",
    ],
)
def test_malformed_request_gets_400_and_close(topo: Topology, garbage: bytes) -> None:
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(garbage)
        resp = read_response(reader)
        assert resp.status == 400
        assert is_closed(sock), "the connection stayed open after a 400"


def test_connection_survives_a_good_request_before_garbage(topo: Topology) -> None:
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        ok = read_response(reader)
        assert ok.status == 200, (ok, topo.upstream.state.errors)
        assert json.loads(ok.body)["path"] == "/ok"
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert read_response(reader).status == 400
