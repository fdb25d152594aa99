"""A real HTTP/1.1 upstream that misbehaves on command: the other side of every resilience test.

    with FlakyServer("a") as a:
        a.answer_status(503, times=2)   # the next 2 requests get 503, then it recovers
        ... send through the proxy ...
        assert a.count("/x") == 3      # exact attempts the proxy made

Each instance answers `200` with the body `<name>\\n` and `x-upstream-name: <name>` on every
response (so splits, hashing and priorities can be counted by the client or by the server).
Special paths: `/delay/MS` answers after MS milliseconds, `/status/NNN` with that status.
The health-check path (`/healthz` by default) answers 200, or 503 after
`set_healthy(False)`, and is never subject to the misbehaviours below.

Misbehaviours, each for the next `times` requests (`None`: until `recover()`):
- `answer_status(status)`: answer with that status;
- `reset()`: read the request, then reset the connection (RST) without answering;
- `hang()`: read the request and never answer (until the peer closes);
- `close_mid_body()`: send headers and half of a Content-Length body, then close (FIN).

Connection-level behaviour:
- `close_idle_after(max_ms)`: the keep-alive race (istio/istio#13205): each connection that
  goes idle after a response is closed after a random 0..max_ms, with no `Connection: close`
  warning. A request that arrives as it closes is lost, as with real servers whose
  keep-alive timeout is shorter than the proxy's pool idle timeout;
- `die()`: stop listening and reset every live connection; `revive()`: listen again on the
  same port.

Every request is counted (by path, by method, in arrival order in `requests`).
"""

from __future__ import annotations

import contextlib
import enum
import queue
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import h11
import trio

from .echo import SeenRequest

T = TypeVar("T")


class Misbehaviour(enum.Enum):
    STATUS = "status"
    RESET = "reset"
    HANG = "hang"
    CLOSE_MID_BODY = "close_mid_body"


@dataclass
class _Armed:
    """The misbehaviour armed now, and how many more requests get it (None: unbounded)."""

    kind: Misbehaviour
    remaining: int | None
    status: int = 503

    def take(self) -> bool:
        """True if this request gets the misbehaviour (and counts it down)."""
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


def _reason(status: int) -> bytes:
    """The standard reason phrase: some clients (h2load) count a response without one as
    failed."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


class _Reset(Exception):
    """Ends a connection with an RST instead of a FIN."""


def _linger_zero(stream: trio.SocketStream) -> None:
    """Make the next close send an RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FlakyServer:
    """The misbehaving upstream in a background trio thread; a context manager."""

    def __init__(
        self,
        name: str = "flaky",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        health_path: str = "/healthz",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.health_path = health_path
        self._lock = threading.Lock()
        self._armed: _Armed | None = None
        self._healthy = True
        self._idle_close_ms: float | None = None
        self._requests: list[SeenRequest] = []
        self._by_path: Counter[str] = Counter()
        self._by_method: Counter[str] = Counter()
        self._connections = 0
        self._live: set[trio.SocketStream] = set()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._generation: trio.CancelScope | None = None
        self._generation_done: trio.Event | None = None

    # --- commands (from the test's thread) ------------------------------------------------

    def answer_status(self, status: int, *, times: int | None = None) -> None:
        self._arm(Misbehaviour.STATUS, times, status)

    def reset(self, *, times: int | None = None) -> None:
        self._arm(Misbehaviour.RESET, times)

    def hang(self, *, times: int | None = None) -> None:
        self._arm(Misbehaviour.HANG, times)

    def close_mid_body(self, *, times: int | None = None) -> None:
        self._arm(Misbehaviour.CLOSE_MID_BODY, times)

    def recover(self) -> None:
        with self._lock:
            self._armed = None

    def set_healthy(self, healthy: bool) -> None:
        with self._lock:
            self._healthy = healthy

    def close_idle_after(self, max_ms: float | None) -> None:
        """Close idle keep-alive connections after a random 0..max_ms (None: never)."""
        with self._lock:
            self._idle_close_ms = max_ms

    def die(self) -> None:
        """Stop listening and reset live connections; returns once the port refuses."""
        self._call(self._die)

    def revive(self) -> None:
        """Listen again on the same port; returns once it accepts."""
        self._call(self._listen)

    def _arm(self, kind: Misbehaviour, times: int | None, status: int = 503) -> None:
        with self._lock:
            self._armed = _Armed(kind, times, status)

    def _call(self, fn: Callable[[], Any]) -> None:
        if self._token is None:
            raise RuntimeError(f"flaky server {self.name} is not running")
        trio.from_thread.run(fn, trio_token=self._token)

    # --- observations ---------------------------------------------------------------------

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request received (health checks included), in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def count(self, path: str | None = None, *, method: str | None = None) -> int:
        """Requests received for `path` (without query) and/or `method`; with neither,
        every request except health checks."""
        with self._lock:
            if path is not None and method is None:
                return self._by_path[path]
            if method is not None and path is None:
                return self._by_method[method]
            if path is None and method is None:
                return sum(self._by_path.values()) - self._by_path[self.health_path]
            return sum(
                1 for r in self._requests if r.path.split("?")[0] == path and r.method == method
            )

    @property
    def health_checks(self) -> int:
        return self.count(self.health_path)

    def clear_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self._by_path.clear()
            self._by_method.clear()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FlakyServer:
        started: queue.Queue[BaseException | None] = queue.Queue()

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._stop = scope
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await self._listen()
                    started.put(None)
                    await trio.sleep_forever()  # die() may leave nothing else running

        def run() -> None:
            try:
                trio.run(main)
            except BaseException as exc:
                started.put(exc)

        self._thread = threading.Thread(target=run, name=f"flaky-{self.name}", daemon=True)
        self._thread.start()
        failed = started.get(timeout=10)
        if failed is not None:
            raise RuntimeError(f"flaky server {self.name} failed to start") from failed
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.cancel, trio_token=self._token)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FlakyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- serving (the trio thread) --------------------------------------------------------

    async def _listen(self) -> None:
        assert self._nursery is not None
        if self._generation is not None:
            raise RuntimeError(f"flaky server {self.name} is already listening")
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = int(listeners[0].socket.getsockname()[1])
        scope, done = trio.CancelScope(), trio.Event()
        self._generation, self._generation_done = scope, done

        async def serve() -> None:
            try:
                with scope:
                    await trio.serve_listeners(self._handle, listeners)
            finally:
                done.set()

        self._nursery.start_soon(serve)

    async def _die(self) -> None:
        if self._generation is None or self._generation_done is None:
            return
        for stream in list(self._live):
            _linger_zero(stream)
        self._generation.cancel()
        await self._generation_done.wait()
        self._generation = self._generation_done = None

    async def _handle(self, stream: trio.SocketStream) -> None:
        with self._lock:
            self._connections += 1
        self._live.add(stream)
        try:
            await self._serve_connection(stream)
        except _Reset:
            _linger_zero(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass
        finally:
            self._live.discard(stream)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        while True:
            request = await self._read_request(stream, conn)
            if request is None:
                return
            with self._lock:
                self._requests.append(request)
                self._by_path[request.path.split("?")[0]] += 1
                self._by_method[request.method] += 1
            if not await self._respond(stream, conn, request):
                return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
            if not await self._wait_for_next_request(stream, conn):
                return

    async def _wait_for_next_request(self, stream: trio.SocketStream, conn: h11.Connection) -> bool:
        """False when the keep-alive race closes this idle connection first."""
        with self._lock:
            max_ms = self._idle_close_ms
        if max_ms is None or conn.trailing_data[0]:
            return True
        with trio.move_on_after(random.uniform(0, max_ms) / 1000):
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            return bool(data)
        return False

    async def _read_request(
        self, stream: trio.SocketStream, conn: h11.Connection
    ) -> SeenRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                head = event
                if conn.they_are_waiting_for_100_continue:
                    await stream.send_all(
                        conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                    )
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return SeenRequest(
                    protocol="HTTP/1.1",
                    method=head.method.decode(),
                    path=head.target.decode(),
                    headers=[(k.decode().lower(), v.decode()) for k, v in head.headers],
                    body=bytes(body),
                )
            else:  # ConnectionClosed, PAUSED
                return None

    def _misbehaviour(self, request: SeenRequest) -> _Armed | None:
        if request.path.split("?")[0] == self.health_path:
            return None
        with self._lock:
            armed = self._armed
            if armed is None or not armed.take():
                return None
            return _Armed(armed.kind, None, armed.status)

    async def _respond(
        self, stream: trio.SocketStream, conn: h11.Connection, request: SeenRequest
    ) -> bool:
        """Answer (or misbehave); False when the connection must end here."""

        async def send(event: Any) -> None:
            data = conn.send(event)
            if data:
                await stream.send_all(data)

        body = f"{self.name}\n".encode()
        status = 200
        parts = request.path.split("?")[0].strip("/").split("/")
        if parts[0] == "delay" and len(parts) > 1 and parts[1].isdigit():
            await trio.sleep(int(parts[1]) / 1000)
        if parts[0] == "status" and len(parts) > 1 and parts[1].isdigit():
            status = int(parts[1])
        if request.path.split("?")[0] == self.health_path:
            with self._lock:
                status = 200 if self._healthy else 503
        armed = self._misbehaviour(request)
        kind = armed.kind if armed is not None else None
        if kind is Misbehaviour.RESET:
            raise _Reset
        if kind is Misbehaviour.HANG:
            while await stream.receive_some(65536):
                pass
            return False
        if armed is not None and kind is Misbehaviour.STATUS:
            status = armed.status
        truncated = kind is Misbehaviour.CLOSE_MID_BODY
        headers = [
            ("x-upstream-name", self.name),
            ("content-type", "text/plain"),
            # close_mid_body promises twice the body it sends
            ("content-length", str(len(body) * (2 if truncated else 1))),
        ]
        await send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        await send(h11.Data(data=body))
        if truncated:
            return False
        await send(h11.EndOfMessage())
        return True
