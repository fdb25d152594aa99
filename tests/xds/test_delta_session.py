"""The incremental (delta) ADS client session, sans-IO: subscriptions as changes, responses
applied to what is held, removals, NACKs that keep the accepted state, and a new stream
that says what it holds (`initial_resource_versions`)."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2

from fastmesh.controlplane._delta import DeltaSession
from fastmesh.xds import DELTA_ADS_PATH, DeltaAdsSession
from fastmesh.xds._resources import CLUSTER, ENDPOINT, LISTENER
from tests.controlplane.test_session import NODE as CP_NODE
from tests.controlplane.test_session import snapshot as cp_snapshot
from tests.xds.test_session import NODE, cla, packed


def response(type_url: str, nonce: str, *messages: Any, removed: tuple[str, ...] = ()) -> Any:
    def name(message: Any) -> str:
        return str(getattr(message, "name", "") or message.cluster_name)

    return discovery_pb2.DeltaDiscoveryResponse(
        type_url=type_url,
        system_version_info=f"sys-{nonce}",
        nonce=nonce,
        resources=[
            discovery_pb2.Resource(name=name(m), version=f"{name(m)}@{nonce}", resource=packed(m))
            for m in messages
        ],
        removed_resources=removed,
    )


def cluster(name: str) -> Any:
    return cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)


def names(request: Any) -> tuple[list[str], list[str]]:
    return list(request.resource_names_subscribe), list(request.resource_names_unsubscribe)


def test_the_first_stream_is_a_wildcard_for_clusters_then_listeners_with_the_node_once() -> None:
    session = DeltaAdsSession(NODE)
    assert session.path == DELTA_ADS_PATH and session.api_type == "DELTA_GRPC"
    [cds] = session.open_stream()
    lds = session.subscribe_all(LISTENER)
    assert isinstance(cds, discovery_pb2.DeltaDiscoveryRequest) and lds is not None
    assert (cds.type_url, lds.type_url) == (CLUSTER, LISTENER)
    assert names(cds) == names(lds) == ([], [])  # no name: the wildcard
    assert cds.node.id == "sidecar~1" and not lds.HasField("node")
    assert not cds.initial_resource_versions and cds.response_nonce == ""


def test_subscriptions_change_by_the_names_added_and_removed() -> None:
    session = DeltaAdsSession(NODE)
    session.open_stream()
    assert session.subscribe(ENDPOINT, []) is None
    assert names(session.subscribe(ENDPOINT, ["b", "c"])) == (["b", "c"], [])
    assert session.subscribe(ENDPOINT, ["c", "b"]) is None
    request = session.subscribe(ENDPOINT, ["c", "d"])
    assert request is not None and names(request) == (["d"], ["b"])
    assert request.response_nonce == "" and not request.HasField("error_detail")


def test_responses_apply_changes_and_removals_to_what_is_held_and_ack_with_the_nonce() -> None:
    session = DeltaAdsSession(NODE)
    session.open_stream()
    candidate = session.candidate(response(CLUSTER, "1", cluster("a"), cluster("b")))
    assert candidate.resources["a"]["type"] == "EDS"
    ack = session.accept(candidate)
    assert (ack.type_url, ack.response_nonce) == (CLUSTER, "1")
    assert names(ack) == ([], []) and not ack.HasField("error_detail")
    assert not ack.initial_resource_versions

    # a wildcard response holds only what changed: "a" stays, "b" goes, "c" comes
    session.accept(session.candidate(response(CLUSTER, "2", cluster("c"), removed=("b",))))
    assert session.dynamic().clusters.keys() == {"a", "c"}
    assert session.subscriptions[CLUSTER].version == "sys-2"

    session.subscribe(ENDPOINT, ["a", "c"])
    session.accept(session.candidate(response(ENDPOINT, "3", cla("a", 1), cla("c", 2))))
    update = session.candidate(response(ENDPOINT, "4", cla("c", 3), cla("x", 4), removed=("a",)))
    assert update.updated == {"a", "c"}  # what its stats count: "x" is not subscribed
    session.accept(update)
    eds = session.dynamic().assignments
    assert eds.keys() == {"c"}
    assert eds["c"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"port_value": 3}
    }


def test_a_nack_keeps_the_accepted_state_and_says_why() -> None:
    session = DeltaAdsSession(NODE)
    session.open_stream()
    session.accept(session.candidate(response(CLUSTER, "1", cluster("a"))))
    rejected = session.candidate(response(CLUSTER, "2", cluster("b"), removed=("a",)))
    assert rejected.resources.keys() == {"b"}
    assert session.dynamic(rejected).clusters.keys() == {"b"}  # what would be translated
    nack = session.reject(CLUSTER, "clusters[b]: bad")
    assert (nack.type_url, nack.response_nonce) == (CLUSTER, "2")
    assert nack.error_detail.code == 3 and nack.error_detail.message == "clusters[b]: bad"
    assert session.dynamic().clusters.keys() == {"a"}
    assert session.subscriptions[CLUSTER].resource_versions == {"a": "a@1"}
    assert session.subscriptions[CLUSTER].version == "sys-1"


def test_a_new_stream_says_what_is_held_and_subscribes_again() -> None:
    session = DeltaAdsSession(NODE)
    session.open_stream()
    session.accept(session.candidate(response(CLUSTER, "1", cluster("a"), cluster("b"))))
    session.subscribe(ENDPOINT, ["a", "b"])
    session.accept(session.candidate(response(ENDPOINT, "2", cla("a", 1))))  # b not yet
    session.subscribe_all(LISTENER)
    cds, eds, lds = session.open_stream()
    assert [r.type_url for r in (cds, eds, lds)] == [CLUSTER, ENDPOINT, LISTENER]
    assert dict(cds.initial_resource_versions) == {"a": "a@1", "b": "b@1"}
    assert names(cds) == ([], []) and cds.response_nonce == ""
    assert names(eds) == (["a", "b"], []) and dict(eds.initial_resource_versions) == {"a": "a@2"}
    assert not lds.initial_resource_versions
    assert cds.node.id == "sidecar~1" and not eds.HasField("node")


def test_names_no_longer_subscribed_are_forgotten_with_their_versions() -> None:
    session = DeltaAdsSession(NODE)
    session.open_stream()
    session.subscribe(ENDPOINT, ["a", "b"])
    session.accept(session.candidate(response(ENDPOINT, "1", cla("a", 1), cla("b", 2))))
    session.subscribe(ENDPOINT, ["b"])
    assert session.dynamic().assignments.keys() == {"b"}
    _, eds = session.open_stream()
    assert names(eds) == (["b"], []) and dict(eds.initial_resource_versions) == {"b": "b@1"}
    # a resource not subscribed (a late one) is not taken in
    session.accept(session.candidate(response(ENDPOINT, "2", cla("a", 5))))
    assert session.dynamic().assignments.keys() == {"b"}


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        (discovery_pb2.Resource(name="x", resource=packed(cla("x", 1))), "in a"),
        (discovery_pb2.Resource(name="y", resource=packed(cluster("z"))), "sent as 'y'"),
    ],
)
def test_a_response_that_cannot_be_used_is_a_reason_to_nack(resource: Any, reason: str) -> None:
    session = DeltaAdsSession(NODE)
    session.open_stream()
    bad = discovery_pb2.DeltaDiscoveryResponse(type_url=CLUSTER, nonce="n9", resources=[resource])
    with pytest.raises(ValueError, match=reason):
        session.candidate(bad)
    assert session.reject(CLUSTER, "x").response_nonce == "n9"  # the nonce is answered


# --- against the control plane's delta session (both sides sans-IO) -------------------------


def served(server: DeltaSession, client: DeltaAdsSession, requests: list[Any]) -> list[Any]:
    """Deliver `requests` and every ACK they lead to; the responses, in order."""
    responses, pending = [], list(requests)
    while pending:
        for response in server.receive(pending.pop(0)):
            responses.append(response)
            pending.append(client.accept(client.candidate(response)))
    return responses


def pushed(server: DeltaSession, client: DeltaAdsSession, snap: Any) -> list[Any]:
    responses = server.update(snap)
    acks = [client.accept(client.candidate(r)) for r in responses]
    return responses + served(server, client, acks)


def test_the_control_plane_removes_a_leaving_cluster_last_and_skips_what_is_held() -> None:
    server = DeltaSession(snapshots=lambda proxy: cp_snapshot("a", "b"))
    client = DeltaAdsSession(CP_NODE)
    served(server, client, client.open_stream())
    served(server, client, [client.subscribe(ENDPOINT, ["a", "b"])])
    assert client.dynamic().assignments.keys() == {"a", "b"}

    first, eds, last = pushed(server, client, cp_snapshot("a", "c"))
    # make before break: "b" stays until the rest of the update is through
    assert (first.type_url, [r.name for r in first.resources]) == (CLUSTER, ["c"])
    assert list(first.removed_resources) == []
    assert (eds.type_url, list(eds.removed_resources)) == (ENDPOINT, ["b"])
    assert (last.type_url, list(last.removed_resources)) == (CLUSTER, ["b"])
    assert client.dynamic().clusters.keys() == {"a", "c"}

    # a new stream on a replica: what the proxy holds is not sent again
    replica = DeltaSession(snapshots=lambda proxy: cp_snapshot("a", "c"))
    client.subscribe(ENDPOINT, ["a", "c"])
    again = served(replica, client, client.open_stream())
    assert [r.type_url for r in again] == [CLUSTER, ENDPOINT]
    assert not again[0].resources and not again[0].removed_resources
    assert [r.name for r in again[1].resources] == ["c"]  # only EDS "c", newly asked for
