"""gRPC through the proxy: grpcio client -> proxy (h2c) -> grpcio server (HTTP/2 cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from tests.support import (
    BINARY_PARAMS,
    GrpcEchoServer,
    ProxyProcess,
    bidi_call,
    bootstrap,
    cluster,
    free_port,
    http_listener,
    prefix,
    require_binary,
    route,
    run_proxy,
    unary_call,
    virtual_host,
)


@dataclass
class Topology:
    proxy: ProxyProcess
    channel: grpc.Channel


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    binary: str = request.param
    require_binary(binary)
    with GrpcEchoServer() as server:
        port = free_port()
        cfg = bootstrap(
            admin_port=free_port(),
            listeners=[
                http_listener(
                    "grpc", port, [virtual_host("all", ["*"], [route(prefix("/"), cluster="grpc")])]
                )
            ],
            clusters=[cluster("grpc", [("127.0.0.1", server.port)], http2=True)],
        )
        with (
            run_proxy(cfg, binary=binary) as proxy,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            yield Topology(proxy, channel)


def test_unary_ok_with_trailers(topo: Topology) -> None:
    response, call = unary_call(topo.channel).with_call(b"ping", timeout=10)
    assert response == b"ping"
    assert call.code() == grpc.StatusCode.OK
    assert ("x-trailer", "ok") in tuple(call.trailing_metadata() or ())


def test_unary_large_message(topo: Topology) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    assert unary_call(topo.channel)(payload, timeout=10) == payload


def test_unary_error_status_and_details_arrive_intact(topo: Topology) -> None:
    details = "quota exhausted: 3/3 used, retry after 10s (ünïcødé)"
    with pytest.raises(grpc.RpcError) as info:
        unary_call(topo.channel)(f"error:FAILED_PRECONDITION:{details}".encode(), timeout=10)
    err = info.value
    assert isinstance(err, grpc.Call)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == details
    assert ("x-trailer", "error") in tuple(err.trailing_metadata() or ())


def test_bidi_streaming_echoes_in_order(topo: Topology) -> None:
    messages = [f"message {i}".encode() * (i + 1) for i in range(20)]
    replies = list(bidi_call(topo.channel)(iter(messages), timeout=10))
    assert replies == messages


def test_bidi_streaming_is_interactive(topo: Topology) -> None:
    """Each reply arrives before the next request is sent: no buffering of the stream."""
    import queue

    outbox: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[bytes]:
        while (item := outbox.get(timeout=10)) is not None:
            yield item

    outbox.put(b"first")
    call = bidi_call(topo.channel)(requests(), timeout=10)
    assert next(call) == b"first"
    outbox.put(b"second")
    assert next(call) == b"second"
    outbox.put(None)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK
