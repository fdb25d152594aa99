"""Our own HTTP/1.1 + h2c upstream: it tells a test exactly what the proxy sent it.

Any path answers 200 with JSON: `name`, `protocol` ("HTTP/1.1" or "HTTP/2"), `method`,
`path` (with query), `headers` (lower-case name -> value, repeats joined by ", "),
`body_length`, `body_sha256`. Special paths:

- `/status/NNN`: that status (same JSON body; 204/304 get no body)
- `/delay/MS`: answer after MS milliseconds
- `/bytes/N`: N bytes of a fixed pattern (`pattern_bytes(N)`)
- `/stream/N`: N chunks (one JSON line each), 10 ms apart, no content-length
- `/echo`: the request body back, byte for byte

Every response carries `x-upstream-name: <name>` and `x-upstream-extra: present`.
HTTP/2 is prior knowledge (h2c): a connection starting with the h2 preface speaks h2.

Use `EchoServer` (a context manager running trio in a thread) from sync tests, or
`await nursery.start(serve_echo, name)` from trio tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11
import trio

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyz"


def pattern_bytes(n: int) -> bytes:
    """The body `/bytes/N` answers with."""
    reps = n // len(_PATTERN) + 1
    return (_PATTERN * reps)[:n]


@dataclass
class SeenRequest:
    """What the upstream received."""

    protocol: str
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    chunks: AsyncIterator[bytes] | None = None
    body: bytes = b""


@dataclass
class EchoState:
    name: str
    requests: list[SeenRequest] = field(default_factory=list)
    connections: int = 0
    errors: list[Exception] = field(default_factory=list)


def _echo_json(state: EchoState, req: SeenRequest) -> bytes:
    headers: dict[str, str] = {}
    for k, v in req.headers:
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    doc: dict[str, Any] = {
        "name": state.name,
        "protocol": req.protocol,
        "method": req.method,
        "path": req.path,
        "headers": headers,
        "body_length": len(req.body),
        "body_sha256": hashlib.sha256(req.body).hexdigest(),
    }
    return json.dumps(doc, sort_keys=True).encode()


async def _reply(state: EchoState, req: SeenRequest) -> Reply:
    state.requests.append(req)
    base = [("x-upstream-name", state.name), ("x-upstream-extra", "present")]
    parts = req.path.split("?", 1)[0].strip("/").split("/")
    head, arg = parts[0], parts[1] if len(parts) > 1 else ""
    if head == "delay" and arg.isdigit():
        await trio.sleep(int(arg) / 1000)
    if head == "status" and arg.isdigit():
        status = int(arg)
        if status in (204, 304) or status < 200:
            return Reply(status, base)
        return Reply(
            status, [*base, ("content-type", "application/json")], body=_echo_json(state, req)
        )
    if head == "bytes" and arg.isdigit():
        return Reply(
            200, [*base, ("content-type", "application/octet-stream")], body=pattern_bytes(int(arg))
        )
    if head == "echo":
        return Reply(200, [*base, ("content-type", "application/octet-stream")], body=req.body)
    if head == "stream" and arg.isdigit():
        count = int(arg)

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(count):
                if i:
                    await trio.sleep(0.01)
                yield json.dumps({"chunk": i}).encode() + b"\n"

        return Reply(200, [*base, ("content-type", "application/x-ndjson")], chunks=chunks())
    return Reply(200, [*base, ("content-type", "application/json")], body=_echo_json(state, req))


# --- HTTP/1.1 ------------------------------------------------------------------------------


async def _serve_h1(state: EchoState, stream: trio.SocketStream, first: bytes) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    conn.receive_data(first)

    async def next_event() -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            return event

    async def send(event: Any) -> None:
        data = conn.send(event)
        if data:
            await stream.send_all(data)

    while True:
        try:
            event = await next_event()
        except h11.RemoteProtocolError:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await send(
                    h11.Response(
                        status_code=400, headers=[("content-length", "0"), ("connection", "close")]
                    )
                )
            return
        if isinstance(event, h11.ConnectionClosed | h11.PAUSED):
            return
        assert isinstance(event, h11.Request), event
        if conn.they_are_waiting_for_100_continue:
            await send(h11.InformationalResponse(status_code=100, headers=[]))
        body = bytearray()
        while True:
            part = await next_event()
            if isinstance(part, h11.Data):
                body += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return
        req = SeenRequest(
            protocol="HTTP/1.1",
            method=event.method.decode(),
            path=event.target.decode(),
            headers=[(k.decode().lower(), v.decode()) for k, v in event.headers],
            body=bytes(body),
        )
        reply = await _reply(state, req)
        headers = list(reply.headers)
        if reply.chunks is None and not (reply.status in (204, 304) or reply.status < 200):
            headers.append(("content-length", str(len(reply.body))))
        await send(h11.Response(status_code=reply.status, headers=headers))
        if reply.chunks is not None:
            async for chunk in reply.chunks:
                await send(h11.Data(data=chunk))
        elif reply.body:
            await send(h11.Data(data=reply.body))
        await send(h11.EndOfMessage())
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


# --- HTTP/2 --------------------------------------------------------------------------------


class _H2Conn:
    def __init__(self, state: EchoState, stream: trio.SocketStream) -> None:
        self.state = state
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.write_lock = trio.Lock()
        self.window_changed = trio.Event()
        self.pending: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}

    async def flush(self) -> None:
        async with self.write_lock:
            data = self.conn.data_to_send()
            if data:
                await self.stream.send_all(data)

    async def run(self, first: bytes) -> None:
        self.conn.initiate_connection()
        await self.flush()
        async with trio.open_nursery() as nursery:
            data = first
            while True:
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    await self.flush()
                    break
                for event in events:
                    self.on_event(event, nursery)
                await self.flush()
                data = await self.stream.receive_some(65536)
                if not data:
                    break
            nursery.cancel_scope.cancel()

    def on_event(self, event: h2.events.Event, nursery: trio.Nursery) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = [(str(k), str(v)) for k, v in event.headers or []]
            self.pending[event.stream_id or 0] = (headers, bytearray())
        elif isinstance(event, h2.events.DataReceived):
            sid = event.stream_id or 0
            if sid in self.pending:
                self.pending[sid][1].extend(event.data or b"")
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        elif isinstance(event, h2.events.StreamEnded):
            sid = event.stream_id or 0
            if sid in self.pending:
                headers, body = self.pending.pop(sid)
                nursery.start_soon(self.respond, sid, headers, bytes(body))
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window_changed.set()
            self.window_changed = trio.Event()
        elif isinstance(event, h2.events.StreamReset):
            self.pending.pop(event.stream_id or 0, None)

    async def send_body(self, sid: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            window = self.conn.local_flow_control_window(sid)
            if window <= 0:
                await self.window_changed.wait()
                continue
            n = min(window, self.conn.max_outbound_frame_size, len(view))
            self.conn.send_data(sid, bytes(view[:n]))
            view = view[n:]
            await self.flush()

    async def respond(self, sid: int, headers: list[tuple[str, str]], body: bytes) -> None:
        pseudo = dict((k, v) for k, v in headers if k.startswith(":"))
        regular = [(k.lower(), v) for k, v in headers if not k.startswith(":")]
        if ":authority" in pseudo:
            regular.insert(0, ("host", pseudo[":authority"]))
        req = SeenRequest(
            "HTTP/2", pseudo.get(":method", ""), pseudo.get(":path", ""), regular, body
        )
        reply = await _reply(self.state, req)
        out = [(":status", str(reply.status)), *reply.headers]
        if reply.chunks is None:
            out.append(("content-length", str(len(reply.body))))
        try:
            no_body = reply.chunks is None and not reply.body
            self.conn.send_headers(sid, out, end_stream=no_body)
            await self.flush()
            if no_body:
                return
            if reply.chunks is not None:
                async for chunk in reply.chunks:
                    await self.send_body(sid, chunk)
            else:
                await self.send_body(sid, reply.body)
            self.conn.end_stream(sid)
            await self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return


# --- server --------------------------------------------------------------------------------


async def _handle(state: EchoState, stream: trio.SocketStream) -> None:
    state.connections += 1
    try:
        first = await stream.receive_some(65536)
        if not first:
            return
        while len(first) < len(H2_PREFACE) and H2_PREFACE.startswith(first):
            more = await stream.receive_some(65536)
            if not more:
                return
            first += more
        if first.startswith(H2_PREFACE):
            await _H2Conn(state, stream).run(first)
        else:
            await _serve_h1(state, stream, first)
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass
    except Exception as exc:  # one bad connection must not take the server down
        state.errors.append(exc)
    finally:
        await stream.aclose()


async def serve_echo(
    state: EchoState,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `await nursery.start(serve_echo, state)` returns the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = int(listeners[0].socket.getsockname()[1])

    async def handler(stream: trio.SocketStream) -> None:
        await _handle(state, stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(bound)


class EchoServer:
    """The echo upstream in a background thread, for sync tests.

    with EchoServer("backend") as upstream:
        ... upstream.port, upstream.requests[-1].header("x-foo") ...
    """

    def __init__(self, name: str = "upstream", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = EchoState(name)
        self.host = host
        self._want_port = port
        self.port = 0
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def requests(self) -> list[SeenRequest]:
        return self.state.requests

    @property
    def connections(self) -> int:
        return self.state.connections

    def start(self) -> EchoServer:
        started: queue.Queue[int | BaseException] = queue.Queue()

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._cancel = scope
                try:
                    async with trio.open_nursery() as nursery:
                        port = await nursery.start(
                            lambda task_status: serve_echo(
                                self.state,
                                host=self.host,
                                port=self._want_port,
                                task_status=task_status,
                            )
                        )
                        started.put(port)
                except BaseException as exc:
                    started.put(exc)
                    raise

        def run() -> None:
            try:
                trio.run(main)
            except BaseException as exc:
                started.put(exc)

        self._thread = threading.Thread(target=run, name=f"echo-{self.name}", daemon=True)
        self._thread.start()
        result = started.get(timeout=10)
        if isinstance(result, BaseException):
            raise RuntimeError(f"echo server {self.name} failed to start") from result
        self.port = result
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._cancel is not None:
            cancel = self._cancel
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(cancel.cancel, trio_token=self._token)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
