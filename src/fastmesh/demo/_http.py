"""Just enough HTTP/1.1 on trio for the demo: a tiny server and a tiny client."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

__all__ = ["Request", "Response", "http_request", "serve_http"]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Request], Awaitable[tuple[int, Any]]]


async def _read_head(stream: trio.abc.Stream, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buffer += chunk
        if len(buffer) > 65536:
            return None
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    return head


def _parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


async def _serve_connection(handler: Handler, stream: trio.SocketStream) -> None:
    buffer = bytearray()
    async with stream:
        while True:
            head = await _read_head(stream, buffer)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = _parse_headers(lines[1:])
            length = int(headers.get("content-length", "0") or 0)
            while len(buffer) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
            del buffer[:length]
            status, payload = await handler(Request(method, path, headers))
            body = (json.dumps(payload, indent=1) + "\n").encode()
            close = headers.get("connection", "").lower() == "close"
            out = (
                f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                f"{'connection: close' + chr(13) + chr(10) if close else ''}\r\n"
            ).encode()
            await stream.send_all(out + body)
            if close:
                return


async def serve_http(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler(request) -> (status, json_payload)`; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(int(listeners[0].socket.getsockname()[1]))

    async def on_connection(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, ValueError):
            await _serve_connection(handler, stream)

    await trio.serve_listeners(on_connection, listeners)


async def http_request(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    authority: str | None = None,
    timeout: float = 10.0,
) -> Response:
    """One request on a fresh connection (`connection: close`); the whole response. The host
    header is `authority`, by default `host:port`."""
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
            request = (
                f"{method} {path} HTTP/1.1\r\nhost: {authority or f'{host}:{port}'}\r\n{extra}"
                "content-length: 0\r\nconnection: close\r\n\r\n"
            )
            await stream.send_all(request.encode())
            buffer = bytearray()
            head = await _read_head(stream, buffer)
            if head is None:
                raise ConnectionError(f"no response from {host}:{port}{path}")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            resp_headers = _parse_headers(lines[1:])
            while True:
                if "content-length" in resp_headers and len(buffer) >= int(
                    resp_headers["content-length"]
                ):
                    break
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                buffer += chunk
            body = bytes(buffer)
            if resp_headers.get("transfer-encoding", "").lower() == "chunked":
                body = _dechunk(body)
            return Response(status, body, resp_headers)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
