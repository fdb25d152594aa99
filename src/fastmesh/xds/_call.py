"""One bidirectional gRPC call on its own HTTP/2 (h2c) connection, over trio.

The h2 state machine is driven by one reader task; `send` and the reader queue frames on
it, and one writer task (`H2Writer`) puts them on the socket. Messages arrive in order
through `receive`, which raises `CallEnded` once the call is over (trailers, reset, or the
connection gone).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio

from fastmesh import _h2_repr
from fastmesh._grpc import (
    CONTENT_TYPE,
    FrameError,
    MessageDecoder,
    encode_message,
)
from fastmesh._h2_trio import H2Writer, initiate

_h2_repr.install()  # every frame h2 receives is repr()ed; keep that cheap

__all__ = ["CallEnded", "GrpcCall", "open_call"]

_READ_SIZE = 65536


class CallEnded(Exception):
    """The call is over; the message says why (gRPC status, reset, connection lost)."""


class GrpcCall:
    """A client-side streaming call: `send` request messages, `receive` response messages."""

    def __init__(self, stream: trio.abc.Stream, authority: str, path: str) -> None:
        self._stream = stream
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._authority = authority
        self._path = path
        self._id = 0
        self._writer = H2Writer(self._h2, stream)
        #: Why the call ended, once it has (a sender waiting for window must not hang).
        self._ended: CallEnded | None = None
        self._decoder = MessageDecoder()
        self._inbox, self._messages = trio.open_memory_channel[bytes | CallEnded](math.inf)

    def start(self) -> None:
        """Queue the preface and the request headers; `run` writes them."""
        initiate(self._h2)
        self._id = self._h2.get_next_available_stream_id()
        self._h2.send_headers(
            self._id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", self._authority),
                (":path", self._path),
                ("content-type", CONTENT_TYPE),
                ("te", "trailers"),
            ],
        )

    async def send(self, message: bytes) -> None:
        """One whole message, in as many DATA frames as flow control allows; raises
        CallEnded if the call or the connection is gone."""
        try:
            await self._writer.send_data(self._id, encode_message(message), check=self._check)
        except (h2.exceptions.ProtocolError, trio.BrokenResourceError, OSError) as exc:
            raise CallEnded(f"cannot send: {exc}") from None

    def _check(self) -> None:
        if self._ended is not None:
            raise self._ended

    async def receive(self) -> bytes:
        item = await self._messages.receive()
        if isinstance(item, CallEnded):
            self._inbox.send_nowait(item)  # every later receive ends the same way
            raise item
        return item

    async def run(self) -> None:
        """Read and write the connection until the call ends; never raises."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop)
            await self._read_loop()
            nursery.cancel_scope.cancel()

    async def _write_loop(self) -> None:
        # A broken socket is the reader's to report; `send` sees it as a failed flush.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self._writer.run()

    async def _read_loop(self) -> None:
        ended = CallEnded("the connection closed")
        try:
            while True:
                data = await self._stream.receive_some(_READ_SIZE)
                if not data:
                    break
                done = None
                for event in self._h2.receive_data(data):
                    reason = self._on_event(event)
                    done = done or reason  # the first reason (trailers before StreamEnded)
                self._writer.wake()
                if done is not None:
                    ended = done
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            ended = CallEnded(f"the connection broke: {exc}")
        except (h2.exceptions.ProtocolError, FrameError) as exc:
            ended = CallEnded(f"protocol error: {exc}")
        self._ended = ended
        self._writer.window_changed()  # a sender waiting for window must not hang
        self._inbox.send_nowait(ended)

    def _on_event(self, event: h2.events.Event) -> CallEnded | None:
        if isinstance(event, h2.events.ResponseReceived):
            headers = _text(event.headers)
            if headers.get(":status") != "200":
                return CallEnded(f"HTTP status {headers.get(':status')}")
            if "grpc-status" in headers:  # trailers-only answer
                return _status(headers)
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            for message in self._decoder.feed(event.data or b""):
                self._inbox.send_nowait(message)
        elif isinstance(event, h2.events.TrailersReceived):
            return _status(_text(event.headers))
        elif isinstance(event, h2.events.StreamEnded):
            return CallEnded("the server ended the call")
        elif isinstance(event, h2.events.StreamReset):
            return CallEnded(f"the server reset the call (error code {event.error_code})")
        elif isinstance(event, h2.events.ConnectionTerminated):
            return CallEnded(f"the server closed the connection ({event.error_code})")
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._writer.window_changed()
        return None


def _text(headers: Any) -> dict[str, str]:
    """h2 headers (str with `header_encoding` set, typed as bytes) as a str dict."""
    return {str(k): str(v) for k, v in headers or []}


def _status(headers: dict[str, str]) -> CallEnded:
    return CallEnded(
        f"grpc-status {headers.get('grpc-status', '?')}: {headers.get('grpc-message', '')}"
    )


@asynccontextmanager
async def open_call(host: str, port: int, path: str) -> AsyncIterator[GrpcCall]:
    """Connect, open the call at `path`, and read it in the background until the block ends."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        call = GrpcCall(stream, f"{host}:{port}", path)
        call.start()
        nursery.start_soon(call.run)
        try:
            yield call
        finally:
            nursery.cancel_scope.cancel()
