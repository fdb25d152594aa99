"""An HTTP/1.1 upstream that records every byte the proxy sends it, and can hold its
answers until the test releases them (requests provably in flight).

    with RecordingUpstream(body=b"x" * 16384, gated=True) as up:
        ...                      # requests arrive: up.arrived(50, timeout=5)
        up.release()             # now every held request is answered

`raw` is everything received, connection by connection: a smuggling test asserts that
nothing (or nothing but the expected request) ever reached the backend. Requests are framed
minimally (Content-Length or chunked), which is enough for what a proxy re-serializes.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Received:
    """One request the upstream read to its end."""

    request_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return self.request_line.split(" ")[1]


@dataclass
class _State:
    body: bytes
    gate: threading.Event | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)
    raw: list[bytearray] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    #: Heads read, complete or not; the gate holds answers after this count rises.
    heads: int = 0

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


class _Conn:
    """Buffered reads on one upstream connection, every byte kept in `raw`."""

    def __init__(self, sock: socket.socket, raw: bytearray) -> None:
        self.sock = sock
        self.raw = raw
        self.buf = bytearray()

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.raw += data
        self.buf += data
        return bool(data)

    def line(self) -> bytes | None:
        while (end := self.buf.find(b"\n")) < 0:
            if not self.fill():
                return None
        out = bytes(self.buf[: end + 1])
        del self.buf[: end + 1]
        return out

    def exact(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not self.fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _read_request(conn: _Conn, state: _State) -> Received | None:
    request_line = conn.line()
    if request_line is None:
        return None
    headers: list[tuple[str, str]] = []
    while (line := conn.line()) not in (b"\r\n", b"\n"):
        if line is None:
            return None
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    with state.changed:
        state.heads += 1
        state.changed.notify_all()
    lookup = dict(headers)
    body = bytearray()
    if lookup.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = conn.line()
            if size_line is None:
                return None
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = conn.exact(size + 2)
            if chunk is None:
                return None
            body += chunk[:size]
            if size == 0:
                break
    elif "content-length" in lookup:
        data = conn.exact(int(lookup["content-length"]))
        if data is None:
            return None
        body += data
    return Received(request_line.decode("latin-1").strip(), headers, bytes(body))


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        state = self.server.state
        raw = bytearray()
        with state.lock:
            state.raw.append(raw)
        conn = _Conn(self.request, raw)
        with contextlib.suppress(OSError, ValueError):
            while (req := _read_request(conn, state)) is not None:
                with state.changed:
                    state.requests.append(req)
                    state.changed.notify_all()
                if state.gate is not None:
                    state.gate.wait()
                head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(state.body)}\r\n\r\n"
                self.request.sendall(head.encode() + state.body)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    state: _State


class RecordingUpstream:
    """Answers every request `200` with `body`; with `gated`, only after `release()`."""

    def __init__(self, *, body: bytes = b"ok", gated: bool = False) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(body=body, gate=threading.Event() if gated else None)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def state(self) -> _State:
        return self._server.state

    @property
    def requests(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def raw(self) -> bytes:
        """Every byte received so far, all connections run together."""
        with self.state.lock:
            return b"".join(bytes(r) for r in self.state.raw)

    def heads_seen(self, n: int, *, timeout: float) -> bool:
        """Wait until `n` request heads have arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.state.changed:
            while self.state.heads < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.state.changed.wait(left)
        return True

    def release(self) -> None:
        if self.state.gate is not None:
            self.state.gate.set()

    def __enter__(self) -> RecordingUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
