"""The ADS gRPC server: HTTP/2 (h2) over trio, one Session per StreamAggregatedResources call."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError

from fastmesh import _h2_repr
from fastmesh._grpc import (
    FrameError,
    MessageDecoder,
    Status,
    message_prefix,
    response_headers,
    trailers,
)
from fastmesh._h2_trio import H2Writer, initiate

from ._delta import DeltaSession
from ._hub import SnapshotHub
from ._session import ProtocolError, Response, Session
from ._status import SYNCZ_PATH, proxy_status, syncz_json

_h2_repr.install()  # every frame h2 receives is repr()ed; keep that cheap

__all__ = ["ADS_PATH", "DELTA_PATH", "SDS_PATH", "AdsServer", "Stream"]

log = logging.getLogger("fastmesh.controlplane")

ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#: Incremental ADS: `DeltaDiscoveryRequest`s, a `DeltaSession`.
DELTA_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
#: The separate SDS service: the same messages and session as ADS, for one type.
SDS_PATH = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
_READ_SIZE = 65536
_REQUEST = discovery_pb2.DiscoveryRequest


@dataclass
class Stream:
    """One ADS call: its xDS session and where it comes from (for proxy-status)."""

    id: int
    peer: str
    session: Session | DeltaSession
    requests: int = 0

    @property
    def protocol(self) -> str:
        return "delta" if isinstance(self.session, DeltaSession) else "SotW"


@dataclass
class _Call:
    stream_id: int
    #: DeltaAggregatedResources (else a state-of-the-world call).
    delta: bool
    #: Each request message, or the FrameError that ended the request stream.
    inbox: trio.MemorySendChannel[bytes | FrameError]
    requests: trio.MemoryReceiveChannel[bytes | FrameError]
    decoder: MessageDecoder = field(default_factory=MessageDecoder)
    headers_sent: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    lock: trio.Lock = field(default_factory=trio.Lock)


class AdsServer:
    """Serves ADS (state of the world and delta) from a SnapshotHub. `streams` holds the
    live calls."""

    def __init__(self, hub: SnapshotHub) -> None:
        self.hub = hub
        self.streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on host:port until cancelled; `nursery.start` returns the bound port."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = int(listeners[0].socket.getsockname()[1])
        log.info("ADS server listening on %s:%d", host, bound)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started(bound)

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            peer = "{}:{}".format(*stream.socket.getpeername()[:2])
        except OSError:
            peer = "?"
        try:
            try:
                await _Connection(self, stream, peer).run()
            except* (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the proxy went away; its streams are gone with it
            except* h2.exceptions.ProtocolError as group:
                log.warning("ADS connection from %s: HTTP/2 error: %s", peer, group.exceptions[0])
        except Exception:  # a bug must cost one connection, never the server
            log.exception("ADS connection from %s failed", peer)


class _Connection:
    """The HTTP/2 connection loop: frames in, gRPC calls out to tasks, frames out through
    one writer task (the loop itself never waits for a write)."""

    def __init__(self, server: AdsServer, stream: trio.SocketStream, peer: str) -> None:
        self.server = server
        self.stream = stream
        self.peer = peer
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config)
        self.calls: dict[int, _Call] = {}
        self.writer = H2Writer(self.h2, stream)

    async def flush(self) -> None:
        await self.writer.flush()

    async def run(self) -> None:
        initiate(self.h2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.writer.run)
            self.writer.wake()
            open_ = True
            while open_:
                data = await self.stream.receive_some(_READ_SIZE)
                if not data:
                    break
                for event in self.h2.receive_data(data):
                    open_ = self._on_event(event, nursery) and open_
                self.writer.wake()
            await self.writer.flush()  # a GOAWAY's answer, the last trailers
            nursery.cancel_scope.cancel()

    def _on_event(self, event: h2.events.Event, nursery: trio.Nursery) -> bool:
        """Handle one h2 event; False when the connection is over."""
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event, nursery)
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            call = self.calls.get(event.stream_id)
            if call is not None and event.data:
                try:
                    for message in call.decoder.feed(event.data):
                        call.inbox.send_nowait(message)
                except FrameError as exc:
                    call.inbox.send_nowait(exc)
                    call.inbox.close()
                except trio.ClosedResourceError:
                    pass  # already failed: the rest of the stream is ignored
        elif isinstance(event, h2.events.StreamEnded):
            call = self.calls.get(event.stream_id)
            if call is not None:
                call.inbox.close()
        elif isinstance(event, h2.events.StreamReset):
            call = self.calls.pop(event.stream_id, None)
            if call is not None:
                call.scope.cancel()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.writer.window_changed()
        elif isinstance(event, h2.events.ConnectionTerminated):
            return False
        return True

    def _on_request(self, event: h2.events.RequestReceived, nursery: trio.Nursery) -> None:
        headers = {str(k): str(v) for k, v in event.headers or []}
        path, method = headers.get(":path", ""), headers.get(":method", "")
        if path == SYNCZ_PATH and method == "GET":
            nursery.start_soon(self._serve_syncz, event.stream_id)
            return
        if method != "POST":  # not gRPC at all
            self.h2.send_headers(event.stream_id, [(":status", "404")], end_stream=True)
            return
        if path not in (ADS_PATH, SDS_PATH, DELTA_PATH):
            self.h2.send_headers(
                event.stream_id,
                response_headers() + trailers(Status.UNIMPLEMENTED, f"no method {path}"),
                end_stream=True,
            )
            return
        inbox, requests = trio.open_memory_channel[bytes | FrameError](math.inf)
        call = _Call(event.stream_id, path == DELTA_PATH, inbox, requests)
        self.calls[event.stream_id] = call
        nursery.start_soon(self._serve_call, call)

    def _end(self, call: _Call, status: int, message: str = "") -> None:
        """Trailers with the status (trailers-only when no response headers went out yet)."""
        self.calls.pop(call.stream_id, None)
        block = trailers(status, message)
        if not call.headers_sent:
            block = response_headers() + block
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2.send_headers(call.stream_id, block, end_stream=True)

    async def _serve_syncz(self, stream_id: int) -> None:
        """`GET /debug/syncz`: every connected proxy's status, as JSON."""
        body = syncz_json(proxy_status(self.server.streams.values()))
        self.h2.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ],
        )
        await self.writer.send_data(stream_id, body)
        self.h2.end_stream(stream_id)
        await self.flush()

    async def _send(self, stream_id: int, response: Response | Any) -> None:
        """One whole gRPC message: a `Response` from its shared pieces, else a protobuf."""
        chunks = (
            response.chunks() if isinstance(response, Response) else [response.SerializeToString()]
        )
        size = sum(len(c) for c in chunks)
        # the frames are views of the chunks: a push shared by 100 proxies is never copied
        await self.writer.send_data(stream_id, message_prefix(size), *chunks)

    async def _serve_call(self, call: _Call) -> None:
        hub = self.server.hub
        session = (DeltaSession if call.delta else Session)(snapshots=hub.snapshot_for)
        record = Stream(next(self.server._ids), self.peer, session)
        self.server.streams[record.id] = record
        status, message = Status.OK, ""
        with call.scope:
            try:
                self.h2.send_headers(call.stream_id, response_headers())
                call.headers_sent = True
                await self.flush()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump_updates, call, record.session)
                    status, message = await self._pump_requests(call, record)
                    nursery.cancel_scope.cancel()
            finally:
                del self.server.streams[record.id]
                log.info("ADS stream %d (%s) closed", record.id, _who(record))
        if call.stream_id in self.calls:
            self._end(call, status, message)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.flush()

    async def _pump_requests(self, call: _Call, record: Stream) -> tuple[int, str]:
        """Answer requests until the client half-closes; the gRPC status to end with."""
        try:
            async for raw in call.requests:
                if isinstance(raw, FrameError):
                    raise raw
                message = discovery_pb2.DeltaDiscoveryRequest if call.delta else _REQUEST
                request = message.FromString(raw)
                record.requests += 1
                if record.requests == 1 and request.HasField("node"):
                    log.info("ADS stream %d: %s", record.id, _who(record, request.node))
                async with call.lock:
                    for response in record.session.receive(request):
                        await self._send(call.stream_id, response)
        except (ProtocolError, DecodeError, FrameError) as exc:
            log.warning("ADS stream %d from %s: %s", record.id, self.peer, exc)
            return Status.INVALID_ARGUMENT, str(exc)
        except h2.exceptions.StreamClosedError:
            return Status.CANCELLED, "stream closed"
        return Status.OK, ""

    async def _pump_updates(self, call: _Call, session: Session | DeltaSession) -> None:
        hub = self.server.hub
        seen = hub.generation
        while True:
            seen = await hub.wait_beyond(seen)
            async with call.lock:
                if session.proxy is None:
                    continue
                for response in session.update(hub.snapshot_for(session.proxy)):
                    await self._send(call.stream_id, response)


def _who(record: Stream, node: Any = None) -> str:
    node = node if node is not None else record.session.node
    name = str(node.id) if node is not None else "unknown proxy"
    return f"{name} from {record.peer}"
