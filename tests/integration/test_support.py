"""The test helpers themselves, without a proxy: if these fail, fix tests/support first."""

from __future__ import annotations

import socket

import grpc
import httpx
import trio

from tests.support import (
    EchoServer,
    EchoState,
    GrpcEchoServer,
    NginxServer,
    TcpEchoServer,
    connect,
    pattern_bytes,
    read_until_close,
    serve_echo,
    unary_call,
)


def test_echo_server_http1_and_h2c(echo: EchoServer) -> None:
    base = f"http://127.0.0.1:{echo.port}"
    r = httpx.post(f"{base}/p?q=1", content=b"abc", headers={"x-a": "1"})
    doc = r.json()
    assert (doc["protocol"], doc["method"], doc["path"]) == ("HTTP/1.1", "POST", "/p?q=1")
    assert doc["headers"]["x-a"] == "1"
    assert doc["body_length"] == 3
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(f"{base}/x").json()["protocol"] == "HTTP/2"
        assert client.get(f"{base}/bytes/100000").content == pattern_bytes(100_000)
        assert client.post(f"{base}/echo", content=pattern_bytes(1 << 20)).content == (
            pattern_bytes(1 << 20)
        )
    assert httpx.get(f"{base}/status/418").status_code == 418
    assert echo.requests[0].header("x-a") == "1"
    assert echo.state.errors == []


async def test_echo_server_in_a_trio_nursery() -> None:
    state = EchoState("trio")
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_echo, state)
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/delay/10")
        assert r.json()["name"] == "trio"
        nursery.cancel_scope.cancel()


def test_tcp_echo_half_close() -> None:
    with TcpEchoServer(on_eof=b"bye") as server, connect(server.port) as sock:
        sock.sendall(b"hi")
        sock.shutdown(socket.SHUT_WR)
        assert read_until_close(sock) == b"hibye"


def test_grpc_echo_server() -> None:
    with (
        GrpcEchoServer() as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        assert unary_call(channel)(b"x", timeout=5) == b"x"


def test_nginx_runner() -> None:
    with NginxServer() as nginx:
        assert httpx.get(f"http://127.0.0.1:{nginx.port}/small").text == "hello"
