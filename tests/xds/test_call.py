"""The gRPC call under the ADS client, against this repo's ADS server: messages both ways,
and every way a call ends surfaces as CallEnded (never a hang, never another exception)."""

from __future__ import annotations

import pytest
import trio
from envoy.service.discovery.v3 import discovery_pb2

from fastmesh._h2_trio import RECEIVE_WINDOW
from fastmesh.controlplane import AdsServer, MeshConfig, SnapshotHub
from fastmesh.xds import ADS_PATH, node_message
from fastmesh.xds._call import CallEnded, open_call
from fastmesh.xds._resources import CLUSTER


async def start_server(nursery: trio.Nursery) -> tuple[int, trio.CancelScope]:
    hub = SnapshotHub()
    hub.publish(MeshConfig())
    scope = trio.CancelScope()

    async def serve(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await AdsServer(hub).serve(task_status=task_status)

    port: int = await nursery.start(serve)
    return port, scope


def cds_request() -> bytes:
    request = discovery_pb2.DiscoveryRequest(type_url=CLUSTER)
    request.node.CopyFrom(node_message("sidecar~1", "a", {}))
    blob: bytes = request.SerializeToString()
    return blob


async def test_request_response_then_the_server_going_away_ends_the_call(
    nursery: trio.Nursery,
) -> None:
    port, server = await start_server(nursery)
    async with open_call("127.0.0.1", port, ADS_PATH) as call:
        await call.send(cds_request())
        response = discovery_pb2.DiscoveryResponse.FromString(await call.receive())
        assert response.type_url == CLUSTER and response.nonce
        server.cancel()
        with pytest.raises(CallEnded):
            await call.receive()
        with pytest.raises(CallEnded):  # and stays ended
            await call.receive()
        with pytest.raises(CallEnded):
            await call.send(cds_request())


async def test_a_request_larger_than_the_flow_control_window_gets_through(
    nursery: trio.Nursery,
) -> None:
    """Sending waits for the server's window updates (a sidecar's ACK of 10k names is
    ~460 KiB, well within the server's 16 MiB window; this one is not)."""
    port, _ = await start_server(nursery)
    async with open_call("127.0.0.1", port, ADS_PATH) as call:
        request = discovery_pb2.DiscoveryRequest.FromString(cds_request())
        request.resource_names.extend(f"cluster-{i:06d}-{'x' * 40}" for i in range(400_000))
        assert request.ByteSize() > RECEIVE_WINDOW
        for _ in range(2):
            with trio.fail_after(10):
                await call.send(request.SerializeToString())
                response = discovery_pb2.DiscoveryResponse.FromString(await call.receive())
            assert response.type_url == CLUSTER
            request.response_nonce = ""  # answered in full again


async def test_an_unknown_method_ends_with_its_grpc_status(nursery: trio.Nursery) -> None:
    port, _ = await start_server(nursery)
    async with open_call("127.0.0.1", port, "/no.Such/Method") as call:
        with pytest.raises(CallEnded, match="grpc-status 12"):
            await call.receive()


async def test_a_refused_connection_is_an_oserror() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(OSError):
            async with open_call("127.0.0.1", port, ADS_PATH):
                pass
