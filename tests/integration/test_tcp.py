"""TCP proxy with a raw socket peer: echo, large transfers, half-close, dead upstream."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import (
    BINARY_PARAMS,
    ProxyProcess,
    TcpEchoServer,
    bootstrap,
    cluster,
    connect,
    free_port,
    pattern_bytes,
    read_until_close,
    require_binary,
    run_proxy,
    tcp_listener,
)


@dataclass
class Topology:
    proxy: ProxyProcess
    port: int
    dead_port: int
    echo: TcpEchoServer


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    binary: str = request.param
    require_binary(binary)
    with TcpEchoServer(on_eof=b"bye\n") as echo:
        port, dead_port = free_port(), free_port()
        cfg = bootstrap(
            admin_port=free_port(),
            listeners=[tcp_listener("tcp", port, "echo"), tcp_listener("dead", dead_port, "dead")],
            clusters=[
                cluster("echo", [("127.0.0.1", echo.port)]),
                cluster("dead", [("127.0.0.1", free_port())]),
            ],
        )
        with run_proxy(cfg, binary=binary) as proxy:
            yield Topology(proxy, port, dead_port, echo)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += data
    return bytes(out)


def test_echo_round_trips(topo: Topology) -> None:
    with connect(topo.port) as sock:
        for message in (b"hello\n", b"\x00\xff binary \r\n", b"x" * 10_000):
            sock.sendall(message)
            assert recv_exactly(sock, len(message)) == message


def test_half_close_still_delivers_the_reply(topo: Topology) -> None:
    """The client shuts its write side; the upstream's reply after EOF must still arrive."""
    with connect(topo.port) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert read_until_close(sock) == b"last wordsbye\n"


def test_four_megabytes_full_duplex(topo: Topology) -> None:
    payload = pattern_bytes(4 << 20)
    with connect(topo.port) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = recv_exactly(sock, len(payload))
        sender.join(timeout=10)
    assert received == payload


def test_unreachable_upstream_closes_the_connection(topo: Topology) -> None:
    with connect(topo.dead_port) as sock:
        sock.settimeout(5)
        assert read_until_close(sock) == b""
