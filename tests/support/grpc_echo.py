"""A grpcio echo server without codegen: generic handlers on raw bytes.

Service `fastmesh.test.Echo`:
- `Unary`: returns the request bytes. A request `b"error:CODE:DETAILS"` aborts with
  that status (`CODE` a `grpc.StatusCode` name) and details, with trailing metadata
  `x-trailer: error`; otherwise trailing metadata `x-trailer: ok`.
- `Bidi`: streams every request message back as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc

SERVICE = "fastmesh.test.Echo"
UNARY = f"/{SERVICE}/Unary"
BIDI = f"/{SERVICE}/Bidi"


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request.startswith(b"error:"):
        _, code, details = request.decode().split(":", 2)
        context.set_trailing_metadata((("x-trailer", "error"),))
        context.abort(grpc.StatusCode[code], details)
    context.set_trailing_metadata((("x-trailer", "ok"),))
    return request


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from requests


class GrpcEchoServer:
    """with GrpcEchoServer() as server: ... server.port ..."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(_unary),
                "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
            },
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"{host}:0")

    def __enter__(self) -> GrpcEchoServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


def unary_call(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    """Raw-bytes stub for `Unary` (no serializers: bytes in, bytes out)."""
    return channel.unary_unary(UNARY)


def bidi_call(channel: grpc.Channel) -> grpc.StreamStreamMultiCallable[bytes, bytes]:
    return channel.stream_stream(BIDI)
