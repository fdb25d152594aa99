"""fastmesh-only: a live reload that keeps a listener drains the connections of every filter
chain the new config does not have unchanged (Envoy's filter-chain-only update), and keeps
the others. The case that motivates it: a listener goes from PERMISSIVE (a TLS chain and a
plaintext chain) to STRICT (the TLS chain alone), and plaintext connections opened before
must not be served on.

Real Envoy does not re-read its static_resources, so this runs against fastmesh-proxy;
tests/controlplane/test_mesh_security.py shows both proxies under xDS.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import pytest
from hpack import Decoder
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, PingFrame

from tests.support import (
    EchoServer,
    ProxyProcess,
    TcpEchoServer,
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
    socket_address,
    tcp_listener,
    virtual_host,
)
from tests.support.envoy_config import Json
from tests.support.pki import Leaf, Pki
from tests.tls._tls import TLS_INSPECTOR, downstream_tls

SERVER_NAME = "inbound.test"


def inbound(port: int, leaf: Leaf, *, permissive: bool) -> Json:
    """The HTTP listener as the control plane writes it: PERMISSIVE is a TLS chain and a
    plaintext chain told apart by the TLS inspector, STRICT the TLS chain alone."""
    app = [virtual_host("app", ["*"], [route(prefix("/"), cluster="app")])]
    filters = http_listener("inbound", port, app)["filter_chains"][0]["filters"]
    tls: Json = {"filters": filters, "transport_socket": downstream_tls(leaf.tls_certificate())}
    listener: Json = {"name": "inbound", "address": socket_address(port), "filter_chains": [tls]}
    if permissive:
        tls["filter_chain_match"] = {"transport_protocol": "tls"}
        plain = {"filters": filters, "filter_chain_match": {"transport_protocol": "raw_buffer"}}
        listener["filter_chains"].append(plain)
        listener["listener_filters"] = [TLS_INSPECTOR]
    return listener


@dataclass
class Setup:
    app: EchoServer
    pki: Pki
    leaf: Leaf
    echo_port: int
    port: int = field(default_factory=free_port)
    tcp_port: int = field(default_factory=free_port)
    tcp_kept_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    proxy: ProxyProcess = field(init=False)

    def config(self, *, strict: bool) -> Json:
        changed = tcp_listener("tcp", self.tcp_port, "echo")
        if strict:  # the same update changes this TCP chain too
            changed["filter_chains"][0]["filters"][0]["typed_config"]["idle_timeout"] = "30s"
        return bootstrap(
            admin_port=self.admin_port,
            listeners=[
                inbound(self.port, self.leaf, permissive=not strict),
                changed,
                tcp_listener("tcp_kept", self.tcp_kept_port, "echo"),
            ],
            clusters=[
                cluster("app", [("127.0.0.1", self.app.port)]),
                cluster("echo", [("127.0.0.1", self.echo_port)]),
            ],
        )

    def go_strict(self) -> None:
        """Write the STRICT config and wait until a new plaintext connection is refused."""
        self.proxy.write_config(self.config(strict=True))
        deadline = time.monotonic() + 10
        while plaintext_served(self.port):
            assert time.monotonic() < deadline, "the STRICT config was never applied"
            time.sleep(0.05)

    def tls_connection(self) -> socket.socket:
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        return context.wrap_socket(connect(self.port), server_hostname=SERVER_NAME)


def setup(tmp_path: Path, drain_time_s: float) -> Iterator[Setup]:
    require_binary("fastmesh-proxy")
    pki = Pki(tmp_path / "pki")
    leaf = pki.issue(SERVER_NAME)
    with EchoServer("app") as app, TcpEchoServer() as echo:
        s = Setup(app, pki, leaf, echo.port)
        args = ["--config-reload-interval-s", "0.1", "--drain-time-s", str(drain_time_s)]
        with run_proxy(s.config(strict=False), extra_args=args) as proxy:
            s.proxy = proxy
            yield s


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[Setup]:
    yield from setup(tmp_path, drain_time_s=30)


def get(sock: socket.socket, path: str = "/") -> tuple[int, str | None]:
    """One keep-alive GET on `sock` -> (status, its Connection header)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: app\r\n\r\n".encode())
    response = read_response(sock.makefile("rb"))
    return response.status, response.header("connection")


def wait_for_request(app: EchoServer, path: str) -> None:
    deadline = time.monotonic() + 5
    while not any(r.path == path for r in app.requests):
        assert time.monotonic() < deadline, f"{path} never reached the app"
        time.sleep(0.01)


def plaintext_served(port: int) -> bool:
    try:
        with connect(port, timeout=5) as sock:
            return get(sock)[0] == 200
    except (OSError, EOFError, ValueError, IndexError):  # a TLS alert is no status line
        return False


def test_strict_drains_an_open_plaintext_http1_connection_and_keeps_the_tls_one(
    topo: Setup,
) -> None:
    with connect(topo.port) as plain, topo.tls_connection() as tls:
        assert get(plain) == (200, None)
        assert get(tls) == (200, None)

        topo.go_strict()
        assert is_closed(plain, timeout=5), "the idle plaintext connection was not closed"
        # The TLS chain is the same in both configs: its connection goes on as before.
        assert get(tls) == (200, None)
        assert get(tls, "/again") == (200, None)
    assert topo.proxy.counter("http.inbound.downstream_cx_drain_close") >= 1


def test_a_request_in_flight_on_a_drained_http1_connection_gets_connection_close(
    topo: Setup,
) -> None:
    with connect(topo.port) as plain:
        plain.sendall(b"GET /delay/1500 HTTP/1.1\r\nhost: app\r\n\r\n")
        wait_for_request(topo.app, "/delay/1500")
        topo.go_strict()
        response = read_response(plain.makefile("rb"))
        assert (response.status, response.header("connection")) == (200, "close")
        assert is_closed(plain)


def test_strict_sends_goaway_to_an_h2c_connection_and_its_stream_in_flight_finishes(
    topo: Setup,
) -> None:
    """Frames read with hyperframe: h2's state machine refuses the PING that follows a
    graceful GOAWAY, as if GOAWAY ended the connection."""
    with connect(topo.port) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "GET"), (":path", "/delay/2000"), (":scheme", "http")]
        conn.send_headers(1, [*headers, (":authority", "app")], end_stream=True)
        sock.sendall(conn.data_to_send())
        wait_for_request(topo.app, "/delay/2000")

        topo.go_strict()
        seen: list[str] = []
        status = None
        sock.settimeout(10)
        for frame in frames(sock):
            if isinstance(frame, GoAwayFrame):
                # Graceful: the first names the highest stream id, the last stream 1.
                assert (frame.error_code, frame.last_stream_id >= 1) == (0, True), frame
                if "goaway" not in seen:
                    seen.append("goaway")
            elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                sock.sendall(PingFrame(0, frame.opaque_data, flags=["ACK"]).serialize())
            elif isinstance(frame, HeadersFrame) and frame.stream_id == 1:
                status = dict(Decoder().decode(frame.data, raw=True)).get(b":status")
            if frame.stream_id == 1 and "END_STREAM" in frame.flags:
                seen.append("ended")
                break
        assert seen == ["goaway", "ended"], f"GOAWAY first, then the stream ends: {seen}"
        assert status == b"200"
        assert is_closed(sock)


def frames(sock: socket.socket) -> Iterator[Frame]:
    """The HTTP/2 frames `sock` receives, until it closes."""
    buf = b""
    while True:
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            yield frame
        data = sock.recv(65536)
        if not data:
            return
        buf += data


def test_a_drained_tcp_connection_closes_after_the_drain_time(tmp_path: Path) -> None:
    drain = 2.0
    for topo in setup(tmp_path, drain_time_s=drain):
        with connect(topo.tcp_port) as changed, connect(topo.tcp_kept_port) as kept:
            for sock in (changed, kept):
                sock.sendall(b"ping")
                assert sock.recv(4) == b"ping"
            topo.go_strict()
            drained_at = time.monotonic()
            changed.sendall(b"still")
            assert changed.recv(5) == b"still", "a drained connection works for the drain time"
            assert is_closed(changed, timeout=drain + 5)
            assert time.monotonic() - drained_at >= drain - 0.5
            kept.sendall(b"kept")
            assert kept.recv(4) == b"kept", "the unchanged TCP listener's connection was closed"
