"""The xDS session state machine, messages in and out, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from fastmesh.controlplane import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    ProtocolError,
    ProxyInfo,
    Session,
    Snapshot,
    build_snapshot,
)

NODE = base_pb2.Node(id="sidecar~10.0.0.1~productpage-v1.shop~shop.svc.cluster.local")


def snapshot(*clusters: str, endpoints: dict[str, int] | None = None) -> Snapshot:
    eps = endpoints or {}
    return build_snapshot(
        {
            CLUSTER: [
                {"name": c, "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}}
                for c in clusters
            ],
            ENDPOINT: [
                {
                    "cluster_name": c,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {
                                    "endpoint": {
                                        "address": {
                                            "socket_address": {
                                                "address": "127.0.0.1",
                                                "port_value": eps.get(c, 80),
                                            }
                                        }
                                    }
                                }
                            ]
                        }
                    ],
                }
                for c in clusters
            ],
        }
    )


def request(
    type_url: str,
    names: tuple[str, ...] = (),
    *,
    nonce: str = "",
    version: str = "",
    error: str = "",
    node: bool = False,
) -> Any:
    req = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), response_nonce=nonce, version_info=version
    )
    if node:
        req.node.CopyFrom(NODE)
    if error:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


def names_of(response: Any) -> list[str]:
    out = []
    for packed in response.resources:
        if response.type_url == CLUSTER:
            from envoy.config.cluster.v3 import cluster_pb2

            c = cluster_pb2.Cluster()
            packed.Unpack(c)
            out.append(c.name)
        else:
            from envoy.config.endpoint.v3 import endpoint_pb2

            e = endpoint_pb2.ClusterLoadAssignment()
            packed.Unpack(e)
            out.append(e.cluster_name)
    return out


def started(snap: Snapshot) -> tuple[Session, Any]:
    """A session whose first CDS request was answered with `snap`."""
    seen: list[ProxyInfo] = []

    def lookup(proxy: ProxyInfo) -> Snapshot:
        seen.append(proxy)
        return snap

    session = Session(snapshots=lookup)
    [response] = session.receive(request(CLUSTER, node=True))
    assert seen == [ProxyInfo(NODE.id, "shop", "127.0.0.1")]
    return session, response


def test_first_request_gets_every_cluster_with_version_and_nonce() -> None:
    snap = snapshot("a", "b")
    session, response = started(snap)
    assert response.type_url == CLUSTER
    assert response.version_info == snap.version
    assert response.nonce
    assert names_of(response) == ["a", "b"]
    assert session.describe() == {"CDS": "STALE"}


def test_ack_marks_synced_and_sends_nothing() -> None:
    session, response = started(snapshot("a"))
    assert (
        session.receive(request(CLUSTER, version=response.version_info, nonce=response.nonce)) == []
    )
    state = session.types[CLUSTER]
    assert state.status == "SYNCED"
    assert state.acked_version == response.version_info


def test_nack_is_recorded_and_not_retried_until_the_content_changes() -> None:
    session, response = started(snapshot("a"))
    nack = request(CLUSTER, nonce=response.nonce, error="cluster a: bad lb policy")
    assert session.receive(nack) == []
    assert session.describe() == {"CDS": "NACK"}
    [recorded] = session.nacks
    assert (recorded.version, recorded.message, recorded.code) == (
        response.version_info,
        "cluster a: bad lb policy",
        3,
    )
    # the same content again (a push for another reason) is not re-sent
    assert session.update(snapshot("a")) == []
    # changed content is
    [fixed] = session.update(snapshot("a", "b"))
    assert names_of(fixed) == ["a", "b"] and fixed.nonce != response.nonce
    session.receive(request(CLUSTER, version=fixed.version_info, nonce=fixed.nonce))
    assert session.describe() == {"CDS": "SYNCED"}
    assert session.types[CLUSTER].nack is None and len(session.nacks) == 1


def test_a_repeated_ack_is_a_resubscription_answered_in_full() -> None:
    """Envoy after a CDS update: the warming clusters ask for their unchanged endpoints."""
    session, cds = started(snapshot("a", "b"))
    [eds] = session.receive(request(ENDPOINT, ("a", "b")))
    ack = request(ENDPOINT, ("a", "b"), nonce=eds.nonce, version=eds.version_info)
    assert session.receive(ack) == []
    session.receive(request(CLUSTER, nonce=cds.nonce, version=cds.version_info))
    [cds2] = session.update(snapshot("a", "b", "c"))  # endpoints of a and b unchanged
    assert cds2.type_url == CLUSTER
    [again] = session.receive(ack)
    assert names_of(again) == ["a", "b"] and again.nonce not in (eds.nonce, cds2.nonce)
    ack_again = request(ENDPOINT, ("a", "b"), nonce=again.nonce, version=again.version_info)
    assert session.receive(ack_again) == []
    assert session.describe() == {"CDS": "STALE", "EDS": "SYNCED"}


def test_stale_nonce_is_ignored() -> None:
    session, first = started(snapshot("a"))
    [second] = session.update(snapshot("a", "b"))
    # the ACK of the first response arrives after the second was sent
    assert session.receive(request(CLUSTER, version=first.version_info, nonce=first.nonce)) == []
    assert session.types[CLUSTER].acked_nonce == ""
    assert session.describe() == {"CDS": "STALE"}
    session.receive(request(CLUSTER, version=second.version_info, nonce=second.nonce))
    assert session.describe() == {"CDS": "SYNCED"}


def test_named_subscription_gets_only_the_named_resources_that_exist() -> None:
    session, _ = started(snapshot("a", "b"))
    [eds] = session.receive(request(ENDPOINT, ("b", "missing")))
    assert names_of(eds) == ["b"]
    # the ACK that also asks for a new name is answered with it (the proxy keeps "b")
    [more] = session.receive(
        request(ENDPOINT, ("a", "b"), nonce=eds.nonce, version=eds.version_info)
    )
    assert names_of(more) == ["a"]
    # dropping a name is just an ACK
    assert (
        session.receive(request(ENDPOINT, ("a",), nonce=more.nonce, version=more.version_info))
        == []
    )
    # asking for it again is answered (Envoy re-adds a cluster and waits for its endpoints)
    [again] = session.receive(request(ENDPOINT, ("a", "b"), nonce=more.nonce))
    assert names_of(again) == ["a", "b"]


def test_streams_asking_for_the_same_names_share_one_set_of_them() -> None:
    first, _ = started(snapshot("a", "b"))
    second, _ = started(snapshot("a", "b"))
    [one] = first.receive(request(ENDPOINT, ("a", "b")))
    [two] = second.receive(request(ENDPOINT, ("a", "b")))
    assert first.types[ENDPOINT].names is second.types[ENDPOINT].names == frozenset({"a", "b"})
    # an ACK repeating the names keeps the set; other names make another
    first.receive(request(ENDPOINT, ("a", "b"), nonce=one.nonce, version=one.version_info))
    assert first.types[ENDPOINT].names is second.types[ENDPOINT].names
    second.receive(request(ENDPOINT, ("b",), nonce=two.nonce, version=two.version_info))
    assert second.types[ENDPOINT].names == frozenset({"b"})
    assert first.types[ENDPOINT].names == frozenset({"a", "b"})


def test_wildcard_removal_is_pushed_make_before_break() -> None:
    """A leaving cluster is first kept while the new ones arrive; the rest of the update
    (EDS here, LDS and RDS alike) goes between; the last CDS drops it."""
    session, cds = started(snapshot("a", "b"))
    [eds] = session.receive(request(ENDPOINT, ("a", "b")))
    session.receive(request(CLUSTER, nonce=cds.nonce, version=cds.version_info))
    session.receive(request(ENDPOINT, ("a", "b"), nonce=eds.nonce, version=eds.version_info))
    first, middle, last = session.update(snapshot("a", "c", endpoints={"a": 81}))
    assert (first.type_url, names_of(first)) == (CLUSTER, ["a", "b", "c"])
    assert middle.type_url == ENDPOINT
    assert (last.type_url, names_of(last)) == (CLUSTER, ["a", "c"])
    assert first.version_info != last.version_info


def test_update_pushes_only_types_that_changed_in_type_order() -> None:
    session, cds = started(snapshot("a", "b"))
    [eds] = session.receive(request(ENDPOINT, ("a", "b")))
    session.receive(request(CLUSTER, nonce=cds.nonce, version=cds.version_info))
    session.receive(request(ENDPOINT, ("a", "b"), nonce=eds.nonce, version=eds.version_info))
    # an endpoint moves: EDS only
    [only] = session.update(snapshot("a", "b", endpoints={"b": 8080}))
    assert only.type_url == ENDPOINT
    # a cluster appears and an endpoint moves: CDS first, then EDS
    both = session.update(snapshot("a", "b", "c", endpoints={"b": 9090}))
    assert [r.type_url for r in both] == [CLUSTER, ENDPOINT]
    assert len({r.nonce for r in both}) == 2


def test_no_snapshot_yet_means_no_response_until_one_arrives() -> None:
    session = Session()
    assert session.receive(request(LISTENER, node=True)) == []
    assert session.describe() == {"LDS": "PENDING"}
    [lds] = session.update(build_snapshot({LISTENER: [], ROUTE: []}))
    assert lds.type_url == LISTENER and list(lds.resources) == []


def test_a_nonce_from_an_earlier_stream_opens_the_subscription() -> None:
    session = Session(snapshots=lambda proxy: snapshot("a"))
    [response] = session.receive(request(CLUSTER, nonce="41", version="old", node=True))
    assert names_of(response) == ["a"]


def test_a_repeated_initial_request_is_answered_again() -> None:
    session, first = started(snapshot("a"))
    [again] = session.receive(request(CLUSTER))
    assert names_of(again) == ["a"] and again.nonce != first.nonce


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request(CLUSTER), "must carry the node"),
        (request("", node=True), "type_url"),
    ],
)
def test_protocol_errors(req: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Session().receive(req)


def test_named_types_send_only_what_changed_after_the_first_answer() -> None:
    session, cds = started(snapshot("a", "b", "c"))
    [eds] = session.receive(request(ENDPOINT, ("a", "b", "c")))
    assert names_of(eds) == ["a", "b", "c"]  # the first answer is whole
    session.receive(request(CLUSTER, nonce=cds.nonce, version=cds.version_info))
    session.receive(request(ENDPOINT, ("a", "b", "c"), nonce=eds.nonce, version=eds.version_info))
    [moved] = session.update(snapshot("a", "b", "c", endpoints={"b": 8080}))
    assert names_of(moved) == ["b"]  # one endpoint moved: one assignment
    [repeat] = session.receive(
        request(ENDPOINT, ("a", "b", "c"), nonce=moved.nonce, version=moved.version_info)
    ) or [None]
    assert repeat is None  # ACKed: nothing more
