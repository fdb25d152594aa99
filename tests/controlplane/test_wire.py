"""The Envoy-JSON encoder (`_wire`, and its Cython twin `fastmesh_ext.wire`) against
protobuf's own `json_format.ParseDict` + deterministic serialisation, on every document the
translators emit for a mesh using every feature."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from fastmesh.controlplane import load_documents
from fastmesh.controlplane._proxy import ProxyInfo
from fastmesh.controlplane._resources import _MESSAGES, CLUSTER, LISTENER
from fastmesh.controlplane._translate import translate
from fastmesh.controlplane._translate_inbound import translate_inbound
from fastmesh.controlplane._wire import EncodeError, encode, plan_for

from .test_load import BOOKINFO
from .test_translate import ACTIONS, POLICY, V2

compiled = pytest.importorskip("fastmesh_ext.wire", reason="pip install ./ext").encode

SECURITY = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls: {9080: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/*"], notIpBlocks: [10.9.0.0/16]}}]
    to: [{operation: {methods: [GET], paths: ["/api/*"], notPorts: ["15000"]}}]
    when: [{key: "request.headers[x-team]", values: [blue]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
"""


def mesh_documents() -> list[tuple[str, dict[str, Any]]]:
    """Bookinfo with routing actions, mTLS and authorization; and with traffic policies."""
    out = []
    service, *_ = BOOKINFO.split("---")  # the routing resources come from the extras
    for extra in ([ACTIONS, SECURITY], [POLICY]):
        config, problems = load_documents(
            [("svc.yaml", service), *(("x.yaml", e) for e in [V2, *extra])]
        )
        assert problems == []
        proxy = ProxyInfo("sidecar", "shop", workload="reviews-v2")
        documents = translate(config, proxy, "cluster.local").documents
        out += [(t, d) for t, docs in documents.items() for d in docs]
        listeners, clusters, _ = translate_inbound(config, proxy, mtls=True)
        out += [(LISTENER, d) for d in listeners] + [(CLUSTER, d) for d in clusters]
    return out


DOCUMENTS = mesh_documents()


def test_the_mesh_uses_what_the_encoder_must_handle() -> None:
    """Guards the corpus: Any, Duration, wrappers, enums, maps and repeated messages."""
    text = repr(DOCUMENTS)
    for needle in ("@type", "transport_socket", "retry_policy", "lb_policy", "rbac", "0s"):
        assert needle in text, needle


@pytest.mark.parametrize("impl", [encode, compiled], ids=["python", "cython"])
def test_every_translated_document_encodes_as_protobuf_serialises_it(impl: Any) -> None:
    assert len(DOCUMENTS) > 20
    for type_url, doc in DOCUMENTS:
        message = _MESSAGES[type_url]
        expected = json_format.ParseDict(doc, message()).SerializeToString(deterministic=True)
        assert impl(plan_for(message.DESCRIPTOR), doc, {}) == expected, doc


@pytest.mark.parametrize("impl", [encode, compiled], ids=["python", "cython"])
def test_a_bad_document_names_the_field(impl: Any) -> None:
    cluster = plan_for(_MESSAGES[CLUSTER].DESCRIPTOR)
    with pytest.raises(EncodeError, match="lb_policy: no enum value 'FASTEST'"):
        impl(cluster, {"name": "c", "lb_policy": "FASTEST"}, None)
    with pytest.raises(EncodeError, match=r"load_assignment.endpoints\[0\]..*no field named"):
        impl(cluster, {"load_assignment": {"endpoints": [{"lb_endpoint": []}]}}, None)
    with pytest.raises(EncodeError, match=r"connect_timeout.*expected a string like '1\.5s'"):
        impl(cluster, {"connect_timeout": 5}, None)


def test_a_shared_document_is_encoded_once_per_memo() -> None:
    route = {"name": "r", "match": {"prefix": "/"}, "route": {"cluster": "c"}}
    vhost = {"name": "v", "domains": ["*"], "routes": [route]}
    plan = plan_for(
        _MESSAGES["type.googleapis.com/envoy.config.route.v3.RouteConfiguration"].DESCRIPTOR
    )
    memo: dict[int, bytes] = {}
    once = encode(plan, {"name": "a", "virtual_hosts": [vhost, vhost]}, memo)
    assert set(memo) == {id(vhost), id(route)}  # each repeated element, once
    assert once == encode(plan, {"name": "a", "virtual_hosts": [vhost, vhost]}, None)
