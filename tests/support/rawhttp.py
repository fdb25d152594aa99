"""HTTP/1.1 over a raw socket: for pipelining, malformed requests and exact framing."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import BinaryIO


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None


def connect(port: int, host: str = "127.0.0.1", *, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def read_response(reader: BinaryIO, *, head: bool = False) -> RawResponse:
    """Read one response from a socket's `makefile("rb")`. Raises EOFError on a clean close."""
    status_line = reader.readline()
    if not status_line:
        raise EOFError("connection closed before a status line")
    parts = status_line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        headers.append((key.strip().lower(), value.strip()))
    lookup = {k: v for k, v in headers}
    if head or status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, headers, b"")
    if lookup.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(reader.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += reader.read(size)
            reader.readline()
        return RawResponse(status, headers, bytes(body))
    if "content-length" in lookup:
        return RawResponse(status, headers, reader.read(int(lookup["content-length"])))
    return RawResponse(status, headers, reader.read())


def read_until_close(sock: socket.socket, *, limit: int = 1 << 24) -> bytes:
    """Everything the peer sends until it closes (or `limit` bytes); a reset ends it too."""
    out = bytearray()
    try:
        while len(out) < limit:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except ConnectionResetError:
        pass
    return bytes(out)


def is_closed(sock: socket.socket, *, timeout: float = 5.0) -> bool:
    """True if the peer closes (EOF or reset) within `timeout`, after any pending data."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
