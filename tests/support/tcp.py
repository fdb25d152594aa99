"""A threaded TCP echo server, for TCP proxy tests."""

from __future__ import annotations

import socket
import socketserver
import threading


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        self.server.connections += 1
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                sock.sendall(data)
            # The peer half-closed: prove bytes still flow the other way, then close.
            if self.server.on_eof:
                sock.sendall(self.server.on_eof)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    on_eof: bytes = b""
    connections: int = 0


class TcpEchoServer:
    """Echoes every byte back; when the client half-closes, sends `on_eof` and closes.

    with TcpEchoServer(on_eof=b"bye\\n") as echo: ... echo.port ...
    """

    def __init__(self, *, host: str = "127.0.0.1", on_eof: bytes = b"") -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.on_eof = on_eof
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def connections(self) -> int:
        return self._server.connections

    def __enter__(self) -> TcpEchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
