"""The ADS client against a scripted stream: ACK/NACK for what translates or not, what the
engine refuses, EDS/RDS subscriptions, and warming (complete snapshots only, bounded)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, json_format

from fastmesh.config import DynamicResources, translate_bootstrap
from fastmesh.config._compile import Compiled, compile_bootstrap
from fastmesh.xds import AdsClient, node_message
from fastmesh.xds._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from tests.controlplane.harness import ads_bootstrap
from tests.xds.test_translate import rds_listener, route_config

BOOTSTRAP = ads_bootstrap(admin_port=9901, xds_port=15010, node_id="sidecar~1~a.default~x")
MESSAGES = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}


class ScriptedCall:
    """Stands in for the gRPC call: the test pushes responses, the client's requests pile up."""

    def __init__(self) -> None:
        self.push, self._responses = trio.open_memory_channel[bytes](math.inf)
        self.requests: list[Any] = []

    async def receive(self) -> bytes:
        return await self._responses.receive()

    async def send(self, message: bytes) -> None:
        self.requests.append(discovery_pb2.DiscoveryRequest.FromString(message))

    def respond(self, type_url: str, version: str, *messages: dict[str, Any]) -> None:
        resources = []
        for doc in messages:
            packed = any_pb2.Any()
            packed.Pack(json_format.ParseDict(doc, MESSAGES[type_url]()))
            resources.append(packed)
        response = discovery_pb2.DiscoveryResponse(
            type_url=type_url, version_info=version, nonce=f"n-{version}", resources=resources
        )
        self.push.send_nowait(response.SerializeToString())


class Target:
    """Translates in process; `refuse` makes the engine refuse the next snapshots."""

    def __init__(self) -> None:
        self.applied: list[Compiled] = []
        self.refuse = ""

    async def translate(self, dynamic: DynamicResources) -> Compiled:
        return compile_bootstrap(translate_bootstrap(BOOTSTRAP, "boot", dynamic=dynamic), BOOTSTRAP)

    async def apply(self, compiled: Compiled) -> None:
        if self.refuse:
            raise ValueError(self.refuse)
        self.applied.append(compiled)


def eds_cluster(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"}},
        **extra,
    }


def assignment(name: str, port: int) -> dict[str, Any]:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    return {
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }


def endpoints_of(compiled: Compiled, cluster: str) -> list[dict[str, Any]]:
    import json

    [found] = [c for c in json.loads(compiled.snapshot_json)["clusters"] if c["name"] == cluster]
    return list(found["endpoints"])


async def settle(call: ScriptedCall, type_url: str, count: int) -> list[Any]:
    """The requests of `type_url` sent so far, once there are `count` of them."""
    while True:
        sent = [r for r in call.requests if r.type_url == type_url]
        if len(sent) >= count:
            return sent
        await trio.sleep(0.01)


@pytest.fixture
async def conversation(nursery: trio.Nursery) -> tuple[AdsClient, ScriptedCall, Target]:
    target = Target()
    client = AdsClient((("127.0.0.1", 15010),), node_message("n", "c", {}), target, warm_timeout=15)
    call = ScriptedCall()
    nursery.start_soon(client.converse, call)
    await settle(call, CLUSTER, 1)
    return client, call, target


async def test_clusters_first_then_their_endpoints_and_the_listeners(
    conversation: tuple[AdsClient, ScriptedCall, Target],
) -> None:
    _, call, _ = conversation
    assert [r.type_url for r in call.requests] == [CLUSTER]
    call.respond(CLUSTER, "c1", eds_cluster("backend"))
    await settle(call, LISTENER, 1)
    ack, subscribe, listeners = call.requests[1:]
    assert (ack.type_url, ack.version_info, ack.response_nonce) == (CLUSTER, "c1", "n-c1")
    assert (subscribe.type_url, list(subscribe.resource_names)) == (ENDPOINT, ["backend"])
    assert (listeners.type_url, list(listeners.resource_names)) == (LISTENER, [])


async def test_a_cluster_waits_for_its_endpoints_then_applies(
    conversation: tuple[AdsClient, ScriptedCall, Target],
) -> None:
    client, call, target = conversation
    call.respond(CLUSTER, "c1", eds_cluster("backend"))
    await settle(call, LISTENER, 1)
    call.respond(LISTENER, "l1")  # no listeners
    await settle(call, LISTENER, 2)
    assert target.applied == [] and not client.initialized.is_set()  # warming

    call.respond(ENDPOINT, "e1", assignment("backend", 8080))
    ack = (await settle(call, ENDPOINT, 2))[-1]
    assert ack.version_info == "e1" and not ack.HasField("error_detail")
    [applied] = target.applied
    assert endpoints_of(applied, "backend") == [{"host": "127.0.0.1", "port": 8080}]
    assert client.initialized.is_set()
    assert client.stats()["cluster_manager.cds.update_success"] == 1


async def test_warming_is_bounded_by_the_initial_fetch_timeout(
    conversation: tuple[AdsClient, ScriptedCall, Target], autojump_clock: trio.testing.MockClock
) -> None:
    client, call, target = conversation
    start = trio.current_time()
    call.respond(CLUSTER, "c1", eds_cluster("backend"))
    call.respond(LISTENER, "l1")
    await client.initialized.wait()  # no EDS ever comes
    assert trio.current_time() - start == pytest.approx(15, abs=0.1)
    [applied] = target.applied
    assert applied.warming == ("ClusterLoadAssignment backend",)
    assert endpoints_of(applied, "backend") == []


async def test_what_the_translator_refuses_is_nacked_with_its_reason(
    conversation: tuple[AdsClient, ScriptedCall, Target],
) -> None:
    client, call, target = conversation
    call.respond(CLUSTER, "c1", eds_cluster("backend"))
    call.respond(ENDPOINT, "e1", assignment("backend", 8080))
    await settle(call, ENDPOINT, 2)
    call.respond(CLUSTER, "c2", eds_cluster("backend", lb_policy="CLUSTER_PROVIDED"))
    nack = (await settle(call, CLUSTER, 3))[-1]
    assert (nack.version_info, nack.response_nonce) == ("c1", "n-c2")
    assert (
        "Cluster[backend].lb_policy: CLUSTER_PROVIDED is not supported" in nack.error_detail.message
    )
    assert len(target.applied) == 1
    assert client.stats()["cluster_manager.cds.update_rejected"] == 1


async def test_what_the_engine_refuses_is_nacked_and_not_kept(
    conversation: tuple[AdsClient, ScriptedCall, Target],
) -> None:
    _, call, target = conversation
    call.respond(CLUSTER, "c1", eds_cluster("backend"))
    call.respond(ENDPOINT, "e1", assignment("backend", 8080))
    await settle(call, ENDPOINT, 2)
    target.refuse = "listener x: address in use"
    call.respond(ENDPOINT, "e2", assignment("backend", 9090))
    nack = (await settle(call, ENDPOINT, 3))[-1]
    assert (nack.version_info, nack.response_nonce) == ("e1", "n-e2")
    assert (
        nack.error_detail.message == "the engine refused the snapshot: listener x: address in use"
    )
    # the next update is translated from the last accepted endpoints, not the refused ones
    target.refuse = ""
    call.respond(CLUSTER, "c2", eds_cluster("backend", connect_timeout="2s"))
    await settle(call, CLUSTER, 3)
    assert endpoints_of(target.applied[-1], "backend") == [{"host": "127.0.0.1", "port": 8080}]


async def test_initialized_needs_an_answer_for_listeners_too(
    conversation: tuple[AdsClient, ScriptedCall, Target],
) -> None:
    client, call, target = conversation
    call.respond(CLUSTER, "c1", eds_cluster("backend"))
    call.respond(ENDPOINT, "e1", assignment("backend", 8080))
    await settle(call, ENDPOINT, 2)
    assert len(target.applied) == 1 and not client.initialized.is_set()
    call.respond(LISTENER, "l1", {"name": "bad"})  # NACKed (no address): still an answer
    nack = (await settle(call, LISTENER, 2))[-1]
    assert nack.HasField("error_detail")
    assert client.initialized.is_set()


class ScriptedDeltaCall(ScriptedCall):
    """The same, speaking incremental xDS."""

    async def send(self, message: bytes) -> None:
        self.requests.append(discovery_pb2.DeltaDiscoveryRequest.FromString(message))

    def respond_delta(
        self, type_url: str, nonce: str, *messages: dict[str, Any], removed: tuple[str, ...] = ()
    ) -> None:
        resources = []
        for doc in messages:
            packed = any_pb2.Any()
            packed.Pack(json_format.ParseDict(doc, MESSAGES[type_url]()))
            name = doc.get("name") or doc["cluster_name"]
            resources.append(discovery_pb2.Resource(name=name, version=nonce, resource=packed))
        response = discovery_pb2.DeltaDiscoveryResponse(
            type_url=type_url,
            system_version_info=f"v-{nonce}",
            nonce=nonce,
            resources=resources,
            removed_resources=removed,
        )
        self.push.send_nowait(response.SerializeToString())


async def test_delta_subscribes_by_changes_and_applies_removals(nursery: trio.Nursery) -> None:
    target = Target()
    node = node_message("n", "c", {})
    client = AdsClient((("127.0.0.1", 15010),), node, target, delta=True)
    call = ScriptedDeltaCall()
    nursery.start_soon(client.converse, call)
    [cds] = await settle(call, CLUSTER, 1)
    assert isinstance(cds, discovery_pb2.DeltaDiscoveryRequest) and cds.node.id == "n"

    call.respond_delta(CLUSTER, "1", eds_cluster("a"), eds_cluster("b"))
    await settle(call, LISTENER, 1)
    ack, eds, lds = call.requests[1:]
    assert (ack.type_url, ack.response_nonce, list(ack.resource_names_subscribe)) == (
        CLUSTER,
        "1",
        [],
    )
    assert (eds.type_url, list(eds.resource_names_subscribe)) == (ENDPOINT, ["a", "b"])
    assert (lds.type_url, list(lds.resource_names_subscribe)) == (LISTENER, [])
    call.respond_delta(ENDPOINT, "2", assignment("a", 8080), assignment("b", 8081))
    call.respond_delta(LISTENER, "3")
    await client.initialized.wait()
    assert endpoints_of(target.applied[-1], "b") == [{"host": "127.0.0.1", "port": 8081}]

    call.respond_delta(CLUSTER, "4", removed=("b",))  # "a" is kept: only "b" goes
    unsubscribe = (await settle(call, ENDPOINT, 3))[-1]  # after the subscribe and an ACK
    assert list(unsubscribe.resource_names_unsubscribe) == ["b"]
    assert client.session.dynamic().clusters.keys() == {"a"}
    assert endpoints_of(target.applied[-1], "a") == [{"host": "127.0.0.1", "port": 8080}]
    describe = client.describe()
    assert describe["protocol"] == "DELTA_GRPC"
    assert describe["subscriptions"]["EDS"] == {"version": "v-2", "resource_names": ["a"]}


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_eds_and_rds_updates_are_counted_per_cluster_and_route_config(
    nursery: trio.Nursery, delta: bool
) -> None:
    """Envoy's stats of each EDS (`cluster.<name>.`) and RDS subscription
    (`http.<stat_prefix>.rds.<name>.`), the same over either protocol: a response counts
    for the resources it carries, a NACK for every subscription of its type."""
    target = Target()
    client = AdsClient((("127.0.0.1", 15010),), node_message("n", "c", {}), target, delta=delta)
    call = ScriptedDeltaCall() if delta else ScriptedCall()
    respond = call.respond_delta if isinstance(call, ScriptedDeltaCall) else call.respond
    nursery.start_soon(client.converse, call)
    await settle(call, CLUSTER, 1)

    respond(CLUSTER, "c1", eds_cluster("a"), eds_cluster("b"))
    respond(ENDPOINT, "e1", assignment("a", 8080))  # "b" still warming
    respond(LISTENER, "l1", rds_listener("ingress", 15001, "r1"))
    await settle(call, ROUTE, 1)
    respond(ROUTE, "r1", route_config("r1", "a"))
    respond(ENDPOINT, "e2", assignment("b", 8081))
    await settle(call, ENDPOINT, 3)
    assert len(target.applied) == 1  # complete
    target.refuse = "listener ingress: address in use"
    respond(ENDPOINT, "e3", assignment("a", 9090))
    nack = (await settle(call, ENDPOINT, 4))[-1]
    assert nack.HasField("error_detail")

    per_subscription = {
        name: value
        for name, value in client.stats().items()
        if name.startswith(("cluster.", "http.")) and value
    }
    assert per_subscription == {
        "cluster.a.update_attempt": 2,
        "cluster.a.update_success": 1,
        "cluster.a.update_rejected": 1,
        "cluster.b.update_attempt": 2,
        "cluster.b.update_success": 1,
        "cluster.b.update_rejected": 1,
        "http.ingress.rds.r1.update_attempt": 1,
        "http.ingress.rds.r1.update_success": 1,
    }
    stats = client.stats()
    assert stats["cluster_manager.cds.update_success"] == 1
    assert stats["listener_manager.lds.update_success"] == 1
    assert stats["http.ingress.rds.r1.update_rejected"] == 0  # there while subscribed

    target.refuse = ""
    if isinstance(call, ScriptedDeltaCall):
        call.respond_delta(CLUSTER, "c2", removed=("b",))
    else:
        call.respond(CLUSTER, "c2", eds_cluster("a"))
    await settle(call, ENDPOINT, 5)  # "b" unsubscribed: its stats go with it
    assert not [name for name in client.stats() if name.startswith("cluster.b.")]
    assert client.stats()["cluster.a.update_success"] == 1
