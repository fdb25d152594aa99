"""The ADS server over real loopback sockets, with grpcio as an independent gRPC client and a
raw h2 client for what grpcio hides (status codes, trailers)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import h2.connection
import h2.events
import pytest
import trio
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from fastmesh.controlplane import (
    CLUSTER,
    ENDPOINT,
    ControlPlane,
    MeshConfig,
    fetch_syncz,
    load_documents,
)
from fastmesh.controlplane._registry import Publish

NODE = {"id": "sidecar~127.0.0.1~client.default~default.svc.cluster.local"}


class StaticRegistry:
    """A Registry fed by the test: proves the interface takes other sources than files."""

    def __init__(self, config: MeshConfig) -> None:
        self.config = config
        self._publish: Publish | None = None

    async def run(
        self, publish: Publish, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._publish = publish
        publish(self.config)
        task_status.started()
        await trio.sleep_forever()

    def replace(self, config: MeshConfig) -> None:
        assert self._publish is not None
        self._publish(config)


def services(n: int, *, first_port: int = 20000) -> MeshConfig:
    docs = [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}}}\n"
        f"spec: {{selector: {{app: svc-{i}}}, "
        f"ports: [{{name: http, port: {first_port + i % 50}}}]}}\n"
        f"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        f"metadata: {{name: svc-{i}-a}}\nspec: {{address: 127.0.0.1, labels: {{app: svc-{i}}}}}\n"
        for i in range(n)
    ]
    config, problems = load_documents([("gen.yaml", "---\n".join(docs))])
    assert not problems
    return config


def grpc_client(port: int, registry: StaticRegistry, token: trio.lowlevel.TrioToken) -> list[Any]:
    """Subscribe to CDS, ACK, ask for EDS, then have the config change and see the push."""
    outbox: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[Any]:
        while (item := outbox.get()) is not None:
            yield item

    seen: list[Any] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        stream = stub.StreamAggregatedResources(requests(), timeout=20)
        outbox.put(discovery_pb2.DiscoveryRequest(node=NODE, type_url=CLUSTER))
        cds = next(stream)
        seen.append(cds)
        outbox.put(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER, version_info=cds.version_info, response_nonce=cds.nonce
            )
        )
        outbox.put(
            discovery_pb2.DiscoveryRequest(
                type_url=ENDPOINT,
                resource_names=["outbound|20000||svc-0.default.svc.cluster.local"],
            )
        )
        eds = next(stream)
        seen.append(eds)
        outbox.put(
            discovery_pb2.DiscoveryRequest(
                type_url=ENDPOINT,
                version_info=eds.version_info,
                response_nonce=eds.nonce,
                resource_names=["outbound|20000||svc-0.default.svc.cluster.local"],
            )
        )
        trio.from_thread.run_sync(registry.replace, services(3), trio_token=token)
        seen.append(next(stream))  # CDS push: fewer clusters
        outbox.put(None)  # half-close: the server ends the call
        rest = list(stream)  # no EDS push: svc-0's endpoints did not change
        assert rest == [], rest
        assert stream.code() == grpc.StatusCode.OK
    return seen


async def test_grpcio_client_subscribes_acks_and_receives_pushes() -> None:
    registry = StaticRegistry(services(800))  # a CDS response far above the 64 KiB window
    plane = ControlPlane(registry, debounce=0.01)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(plane.run)
        token = trio.lowlevel.current_trio_token()
        cds, eds, pushed = await trio.to_thread.run_sync(grpc_client, port, registry, token)
        assert cds.type_url == CLUSTER and len(cds.resources) == 800
        assert cds.ByteSize() > 65535
        first = cluster_pb2.Cluster()
        cds.resources[0].Unpack(first)
        assert first.name.startswith("outbound|")
        assert eds.type_url == ENDPOINT and len(eds.resources) == 1
        assert pushed.type_url == CLUSTER and len(pushed.resources) == 3
        assert pushed.version_info != cds.version_info and pushed.nonce != cds.nonce
        nursery.cancel_scope.cancel()


class RawCall:
    """One gRPC call on a raw h2 client connection: what grpcio hides, visible."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h2 = h2.connection.H2Connection()
        self.headers: dict[str, str] = {}
        self.trailers: dict[str, str] = {}
        self.data = b""
        self.ended = False

    async def start(self, path: str, body: bytes = b"", *, end: bool = True) -> int:
        self.h2.initiate_connection()
        stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(
            stream_id,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", "xds"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        self.h2.send_data(stream_id, body, end_stream=end)
        await self.stream.send_all(self.h2.data_to_send())
        return stream_id

    async def until(self, done: Any) -> None:
        with trio.fail_after(10):
            while not done():
                data = await self.stream.receive_some(65536)
                assert data, "connection closed"
                for event in self.h2.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived):
                        self.headers = {k.decode(): v.decode() for k, v in event.headers}
                    elif isinstance(event, h2.events.TrailersReceived):
                        self.trailers = {k.decode(): v.decode() for k, v in event.headers}
                    elif isinstance(event, h2.events.DataReceived):
                        self.data += event.data
                        self.h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        self.ended = True
                await self.stream.send_all(self.h2.data_to_send())


async def raw_call(port: int, path: str, body: bytes) -> RawCall:
    call = RawCall(await trio.open_tcp_stream("127.0.0.1", port))
    await call.start(path, body)
    await call.until(lambda: call.ended)
    await call.stream.aclose()
    return call


def framed(message: Any) -> bytes:
    from fastmesh._grpc import encode_message

    return encode_message(message.SerializeToString())


async def test_raw_h2_status_codes_and_trailers() -> None:
    plane = ControlPlane(StaticRegistry(services(2)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(plane.run)

        other = await raw_call(port, "/envoy.service.discovery.v3.Nope/Nope", b"")
        assert other.headers[":status"] == "200"
        assert other.headers["content-type"] == "application/grpc"
        assert other.headers["grpc-status"] == "12"  # trailers-only response

        nodeless = await raw_call(
            port, plane_path(), framed(discovery_pb2.DiscoveryRequest(type_url=CLUSTER))
        )
        assert nodeless.trailers["grpc-status"] == "3"
        assert "node" in nodeless.trailers["grpc-message"]

        compressed = await raw_call(port, plane_path(), b"\x01\x00\x00\x00\x00")
        assert compressed.trailers["grpc-status"] == "3"

        # a well-formed call that half-closes after one request: a response, then OK
        good = await raw_call(
            port,
            plane_path(),
            framed(discovery_pb2.DiscoveryRequest(node=NODE, type_url=CLUSTER)),
        )
        response = discovery_pb2.DiscoveryResponse.FromString(good.data[5:])
        assert len(response.resources) == 2
        assert good.trailers == {"grpc-status": "0"}
        assert plane.server.streams == {}
        nursery.cancel_scope.cancel()


async def test_a_reset_stream_is_forgotten_and_the_server_keeps_serving() -> None:
    plane = ControlPlane(StaticRegistry(services(2)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(plane.run)
        call = RawCall(await trio.open_tcp_stream("127.0.0.1", port))
        request = framed(discovery_pb2.DiscoveryRequest(node=NODE, type_url=CLUSTER))
        stream_id = await call.start(plane_path(), request, end=False)
        await call.until(lambda: len(call.data) > 5)
        [stream] = plane.server.streams.values()
        assert stream.session.describe() == {"CDS": "STALE"}
        call.h2.reset_stream(stream_id)
        await call.stream.send_all(call.h2.data_to_send())
        with trio.fail_after(5):
            while plane.server.streams:
                await trio.sleep(0.01)
        await call.stream.aclose()
        again = await raw_call(port, plane_path(), request)
        assert again.trailers == {"grpc-status": "0"}
        nursery.cancel_scope.cancel()


def plane_path() -> str:
    from fastmesh.controlplane import ADS_PATH

    return ADS_PATH


async def test_a_connection_speaking_garbage_costs_only_itself() -> None:
    plane = ControlPlane(StaticRegistry(services(1)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(plane.run)
        bad = await trio.open_tcp_stream("127.0.0.1", port)
        await bad.send_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        with trio.fail_after(5):
            while await bad.receive_some(65536):
                pass  # the server answers GOAWAY and closes
        await bad.aclose()
        good = await raw_call(
            port, plane_path(), framed(discovery_pb2.DiscoveryRequest(node=NODE, type_url=CLUSTER))
        )
        assert good.trailers == {"grpc-status": "0"}
        nursery.cancel_scope.cancel()


async def test_syncz_lists_connected_proxies_as_json() -> None:
    plane = ControlPlane(StaticRegistry(services(2)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(plane.run)
        assert await fetch_syncz("127.0.0.1", port) == []
        with pytest.raises(ValueError, match="status 404"):
            await fetch_syncz("127.0.0.1", port, path="/debug/nope")
        call = RawCall(await trio.open_tcp_stream("127.0.0.1", port))
        request = framed(discovery_pb2.DiscoveryRequest(node=NODE, type_url=CLUSTER))
        await call.start(plane_path(), request, end=False)
        await call.until(lambda: len(call.data) > 5)
        [entry] = await fetch_syncz("127.0.0.1", port)
        assert entry["node_id"] == NODE["id"]
        assert entry["types"] == {"CDS": "STALE"}  # sent, not yet ACKed
        await call.stream.aclose()
        nursery.cancel_scope.cancel()
