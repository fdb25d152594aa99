"""The ADS client session, sans-IO: what each DiscoveryRequest carries (versions, nonces,
names, node, error_detail) as responses are accepted, rejected and streams reopen."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from fastmesh.xds import AdsSession, node_message
from fastmesh.xds._resources import CLUSTER, ENDPOINT, LISTENER

NODE = node_message("sidecar~1", "productpage", {"NAMESPACE": "default"})


def packed(message: Any) -> Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def response(type_url: str, version: str, nonce: str, *messages: Any) -> Any:
    return discovery_pb2.DiscoveryResponse(
        type_url=type_url,
        version_info=version,
        nonce=nonce,
        resources=[packed(m) for m in messages],
    )


def cla(name: str, port: int) -> Any:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"port_value": port}}}}]}
        ],
    )


def test_first_stream_asks_for_clusters_then_listeners_with_the_node_once() -> None:
    session = AdsSession(NODE)
    [cds] = session.open_stream()
    lds = session.subscribe_all(LISTENER)
    assert lds is not None and session.subscribe_all(LISTENER) is None
    assert (cds.type_url, lds.type_url) == (CLUSTER, LISTENER)
    assert cds.node.id == "sidecar~1" and cds.node.cluster == "productpage"
    assert cds.node.metadata["NAMESPACE"] == "default"
    assert not lds.HasField("node")
    assert cds.version_info == cds.response_nonce == "" and list(cds.resource_names) == []


def test_ack_echoes_version_and_nonce() -> None:
    session = AdsSession(NODE)
    session.open_stream()
    candidate = session.candidate(
        response(CLUSTER, "v1", "n1", cluster_pb2.Cluster(name="a", type=cluster_pb2.Cluster.EDS))
    )
    assert candidate.resources["a"]["type"] == "EDS"
    ack = session.accept(candidate)
    assert (ack.type_url, ack.version_info, ack.response_nonce) == (CLUSTER, "v1", "n1")
    assert not ack.HasField("error_detail")
    assert session.dynamic().clusters.keys() == {"a"}


def test_nack_keeps_the_previous_version_and_resources_and_says_why() -> None:
    session = AdsSession(NODE)
    session.open_stream()
    session.accept(session.candidate(response(CLUSTER, "v1", "n1", cluster_pb2.Cluster(name="a"))))
    session.candidate(response(CLUSTER, "v2", "n2", cluster_pb2.Cluster(name="b")))
    nack = session.reject(CLUSTER, "clusters[b]: bad")
    assert (nack.version_info, nack.response_nonce) == ("v1", "n2")
    assert nack.error_detail.code == 3 and nack.error_detail.message == "clusters[b]: bad"
    assert session.dynamic().clusters.keys() == {"a"}


def test_a_wildcard_response_replaces_its_type_and_a_named_one_merges() -> None:
    session = AdsSession(NODE)
    session.open_stream()
    session.accept(session.candidate(response(CLUSTER, "1", "1", cluster_pb2.Cluster(name="a"))))
    session.accept(session.candidate(response(CLUSTER, "2", "2", cluster_pb2.Cluster(name="b"))))
    assert session.dynamic().clusters.keys() == {"b"}  # CDS: "a" is gone

    subscribe = session.subscribe(ENDPOINT, ["b", "c"])
    assert subscribe is not None and list(subscribe.resource_names) == ["b", "c"]
    session.accept(session.candidate(response(ENDPOINT, "3", "3", cla("b", 1), cla("c", 2))))
    update = session.candidate(response(ENDPOINT, "4", "4", cla("c", 3), cla("x", 4)))
    assert update.updated == {"c"}  # what its stats count: "x" is not subscribed
    session.accept(update)
    eds = session.dynamic().assignments
    assert eds.keys() == {"b", "c"}  # EDS: "b" is kept
    assert eds["c"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"port_value": 3}
    }


def test_subscribe_only_on_change_and_forget_what_is_no_longer_named() -> None:
    session = AdsSession(NODE)
    session.open_stream()
    assert session.subscribe(ENDPOINT, []) is None  # nothing asked, nothing to say
    assert session.subscribe(ENDPOINT, ["b", "c"]) is not None
    session.accept(session.candidate(response(ENDPOINT, "1", "1", cla("b", 1), cla("c", 2))))
    assert session.subscribe(ENDPOINT, ["c", "b"]) is None
    request = session.subscribe(ENDPOINT, ["c"])
    assert request is not None
    assert (request.version_info, request.response_nonce) == ("1", "1")
    assert session.dynamic().assignments.keys() == {"c"}


def test_a_new_stream_resumes_from_the_versions_held_without_nonces() -> None:
    session = AdsSession(NODE)
    session.open_stream()
    session.accept(session.candidate(response(CLUSTER, "c7", "1", cluster_pb2.Cluster(name="a"))))
    session.subscribe(ENDPOINT, ["a"])
    session.subscribe_all(LISTENER)
    cds, eds, lds = session.open_stream()
    assert [r.type_url for r in (cds, eds, lds)] == [CLUSTER, ENDPOINT, LISTENER]
    assert (cds.version_info, cds.response_nonce) == ("c7", "")
    assert list(eds.resource_names) == ["a"] and eds.response_nonce == ""
    assert cds.node.id == "sidecar~1"  # the node again on the new stream's first request


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (endpoint_pb2.ClusterLoadAssignment(cluster_name="x"), "in a"),
        (cluster_pb2.Cluster(), "without name"),
    ],
)
def test_a_response_that_cannot_be_decoded_is_a_reason_to_nack(message: Any, reason: str) -> None:
    session = AdsSession(NODE)
    session.open_stream()
    with pytest.raises(ValueError, match=reason):
        session.candidate(response(CLUSTER, "v1", "n9", message))
    assert session.reject(CLUSTER, "x").response_nonce == "n9"  # the nonce is answered
