"""Shutdown without loss (as linkerd2-proxy's tests): SIGTERM while work is in flight.

HTTP/2 clients get GOAWAY and every stream they had open completes; idle HTTP/1.1
connections are closed at once; a TCP-proxy stream may go on until the drain time is up.
fastmesh only: Envoy exits on SIGTERM without draining (draining is an admin call there).
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

from tests.support import (
    TcpEchoServer,
    connect,
    is_closed,
    port_refuses,
    read_response,
    run_proxy,
)

from ._h2wire import H2Wire, ping
from ._topology import Ports, front_config
from ._upstreams import RecordingUpstream

STREAMS = 50
BODY = bytes(range(256)) * 64  # 16 KiB
INITIAL_WINDOW_SIZE = 0x4


@dataclass
class Streams:
    """What an h2c client saw of its streams and its connection while the proxy drained.
    (Frames are read by hand: h2's client state machine closes on the first GOAWAY, but a
    graceful GOAWAY leaves the open streams running.)"""

    wire: H2Wire
    decoder: hpack.Decoder = field(default_factory=hpack.Decoder)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: dict[int, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    ended: set[int] = field(default_factory=set)
    reset: set[int] = field(default_factory=set)
    goaways: list[GoAwayFrame] = field(default_factory=list)
    closed: bool = False

    def read(self, *, until: float, done: Callable[[], bool]) -> None:
        """Handle frames until `done()`, the peer closes, or `until` (monotonic) passes."""
        try:
            while not done():
                frame = self.wire.read_frame(until)
                if frame is None:
                    self.closed = True
                    return
                self._on(frame)
        except TimeoutError:
            return

    def _on(self, frame: Frame) -> None:
        sid = frame.stream_id
        if isinstance(frame, HeadersFrame):
            # The proxy's responses fit one HEADERS frame (no CONTINUATION).
            headers = dict(self.decoder.decode(frame.data, raw=True))
            self.statuses[sid] = int(headers[b":status"])
        elif isinstance(frame, DataFrame):
            self.bodies[sid] += frame.data
        elif isinstance(frame, RstStreamFrame):
            self.reset.add(sid)
        elif isinstance(frame, GoAwayFrame):
            self.goaways.append(frame)
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            self.wire.send(ping(frame.opaque_data, ack=True))
        if "END_STREAM" in frame.flags:
            self.ended.add(sid)


def test_sigterm_drains_without_loss() -> None:
    ports = Ports.fresh()
    with (
        RecordingUpstream(body=BODY, gated=True) as up,
        TcpEchoServer() as tcp_up,
    ):
        cfg = front_config(ports, up.port, tcp_upstream_port=tcp_up.port)
        with run_proxy(cfg, extra_args=["--drain-time-s", "10"]) as proxy:
            # 50 HTTP/2 requests, all held at the upstream: provably in flight.
            wire = H2Wire.connect(ports.http, initial={INITIAL_WINDOW_SIZE: 1 << 20})
            sids = list(range(1, 2 * STREAMS, 2))
            wire.send(
                WindowUpdateFrame(0, window_increment=1 << 24).serialize(),
                *(wire.headers(sid, f"/big/{sid}") for sid in sids),
            )
            client = Streams(wire)
            assert up.heads_seen(STREAMS, timeout=10), f"{len(up.requests)} arrived"
            # An idle keep-alive HTTP/1.1 connection (its request answered by the proxy).
            idle = connect(ports.http)
            idle_reader = idle.makefile("rb")
            idle.sendall(b"GET / HTTP/1.1\r\nHost: internal.example\r\n\r\n")
            assert read_response(idle_reader).status == 403
            # A TCP-proxy stream.
            tunnel = connect(ports.tcp)
            tunnel.sendall(b"before\n")
            assert tunnel.recv(64) == b"before\n"

            proxy.send_signal(signal.SIGTERM)

            client.read(until=time.monotonic() + 3, done=lambda: bool(client.goaways))
            assert client.goaways, "no GOAWAY after SIGTERM"
            assert is_closed(idle, timeout=3), "the idle HTTP/1.1 connection stayed open"
            assert port_refuses(ports.http), "still accepting after SIGTERM"
            # Draining, the tunnel still carries bytes both ways.
            tunnel.sendall(b"during\n")
            assert tunnel.recv(64) == b"during\n"

            up.release()
            client.read(
                until=time.monotonic() + 10,
                done=lambda: len(client.ended | client.reset) >= STREAMS,
            )
            assert not client.reset, f"streams reset while draining: {sorted(client.reset)}"
            assert set(sids) <= client.ended, f"{len(client.ended)} of {STREAMS} completed"
            assert all(client.statuses[s] == 200 for s in sids)
            short = [s for s in sids if bytes(client.bodies[s]) != BODY]
            assert not short, f"streams with a truncated body: {short}"

            assert proxy.alive(), "exited before the TCP stream finished"
            tunnel.close()
            idle_reader.close()
            idle.close()
            assert proxy.wait_exit(timeout=10) == 0
            client.read(until=time.monotonic() + 2, done=lambda: False)
            assert client.closed, "the HTTP/2 connection outlived the proxy"
            # Graceful: the last GOAWAY names every stream as processed, and says NO_ERROR.
            assert client.goaways[-1].error_code == 0
            assert client.goaways[-1].last_stream_id >= max(sids)
            wire.close()
