"""TLS and HTTPS ports: passed through by the sidecar, one outbound listener per port whose
filter chains match the ClientHello's SNI, one per service (Istio's
`buildSidecarOutboundTLSFilterChainOpts`)."""

from __future__ import annotations

from typing import Any

from envoy.config.listener.v3 import listener_pb2

from fastmesh.controlplane import LISTENER, ProxyInfo, load_documents, translate, translate_snapshot
from fastmesh.controlplane._model import Protocol

PROXY = ProxyInfo("sidecar~10.0.0.9~client.default~default.svc.cluster.local")
INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3."
        "TlsInspector"
    },
}


def entry(name: str, host: str, port: str, resolution: str = "DNS") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: ["{host}"]
  resolution: {resolution}
  ports: [{port}]
---"""


#: Three TLS services on 443 (one a wildcard), one with its port only named `https`.
ENTRIES = "".join(
    [
        entry("b", "b.example.com", "{number: 443, name: tls, protocol: TLS}"),
        entry("a", "a.example.com", "{number: 443, name: https-a}"),
        entry("wild", "*.wild.example.com", "{number: 443, name: x, protocol: HTTPS}", "NONE"),
    ]
)


def translated(*docs: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    config, problems = load_documents([("m.yaml", "\n".join(docs))])
    assert problems == []
    result = translate(config, PROXY)
    return {d["name"]: d for d in result.documents[LISTENER]}, [str(w) for w in result.warnings]


def sni_chains(listener: dict[str, Any]) -> list[tuple[list[str], str]]:
    """(server_names, tcp_proxy cluster) of each filter chain."""
    out = []
    for chain in listener["filter_chains"]:
        [network_filter] = chain["filters"]
        assert network_filter["name"] == "envoy.filters.network.tcp_proxy"
        names = chain["filter_chain_match"]["server_names"]
        out.append((names, network_filter["typed_config"]["cluster"]))
    return out


def test_a_tls_port_is_one_listener_with_a_chain_per_sni() -> None:
    listeners, warnings = translated(ENTRIES)
    assert warnings == []
    listener = listeners["127.0.0.1_443"]
    assert listener["listener_filters"] == [INSPECTOR]
    # sorted by hostname; no chain without server_names: an unknown SNI matches nothing
    assert sni_chains(listener) == [
        (["*.wild.example.com"], "outbound|443||*.wild.example.com"),
        (["a.example.com"], "outbound|443||a.example.com"),
        (["b.example.com"], "outbound|443||b.example.com"),
    ]
    proxy = listener["filter_chains"][1]["filters"][0]["typed_config"]
    assert proxy["stat_prefix"] == "outbound|443||a.example.com"


def test_a_single_tls_service_is_matched_by_sni_too() -> None:
    """As Istio does for a service without a VIP (every service, to a sidecar bound on its
    own outbound address): a connection for another name is not forwarded to it."""
    listeners, warnings = translated(entry("b", "b.example.com", "{number: 8443, name: tls}"))
    assert warnings == []
    assert sni_chains(listeners["127.0.0.1_8443"]) == [
        (["b.example.com"], "outbound|8443||b.example.com")
    ]


def test_the_listener_encodes_for_envoy() -> None:
    config, problems = load_documents([("m.yaml", ENTRIES)])
    assert problems == []
    listener = listener_pb2.Listener()
    translate_snapshot(config, PROXY).of_type(LISTENER)["127.0.0.1_443"].packed.Unpack(listener)
    assert [list(c.filter_chain_match.server_names) for c in listener.filter_chains] == [
        ["*.wild.example.com"],
        ["a.example.com"],
        ["b.example.com"],
    ]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]


def test_a_port_mixing_tls_with_tcp_or_http_keeps_the_shared_port_warning() -> None:
    tcp = entry("db", "db.example.com", "{number: 443, name: tcp, protocol: TCP}")
    listeners, warnings = translated(ENTRIES, tcp)
    assert "127.0.0.1_443" not in listeners
    assert warnings == [
        "TLS port 443 of *.wild.example.com, a.example.com, b.example.com is shared with TCP "
        "services db.example.com (SNI filter chains need every service of a port to be TLS); "
        "no TLS or TCP listener for it"
    ]
    web = entry("web", "web.example.com", "{number: 443, name: http, protocol: HTTP}")
    listeners, warnings = translated(ENTRIES, tcp, web)
    # the HTTP services keep the port
    [chain] = listeners["127.0.0.1_443"]["filter_chains"]
    assert chain["filters"][0]["name"] == "envoy.filters.network.http_connection_manager"
    assert warnings == [
        "TLS port 443 of *.wild.example.com, a.example.com, b.example.com is shared with TCP "
        "services db.example.com and HTTP services web.example.com (SNI filter chains need "
        "every service of a port to be TLS); no TLS or TCP listener for it"
    ]


def test_https_and_tls_are_tls_wherever_a_protocol_is_named() -> None:
    """ServiceEntry `protocol`, a port name's prefix and a Service's `appProtocol`, as Istio
    parses them; MONGO stays opaque TCP."""
    service = """
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: default}
spec:
  selector: {app: vault}
  ports: [{name: api, port: 8200, appProtocol: https}, {name: tls-peer, port: 8201}]
---"""
    mongo = entry("mongo", "mongo.example.com", "{number: 27017, name: db, protocol: MONGO}")
    config, problems = load_documents([("m.yaml", "\n".join([ENTRIES, service, mongo]))])
    assert problems == []
    protocols = {
        (svc.hostname, p.number): p.protocol
        for svc in (*config.services, *(s for e in config.service_entries for s in e.services()))
        for p in svc.ports
    }
    assert protocols == {
        ("vault.default.svc.cluster.local", 8200): Protocol.TLS,
        ("vault.default.svc.cluster.local", 8201): Protocol.TLS,
        ("b.example.com", 443): Protocol.TLS,
        ("a.example.com", 443): Protocol.TLS,
        ("*.wild.example.com", 443): Protocol.TLS,
        ("mongo.example.com", 27017): Protocol.TCP,
    }


def test_a_sidecar_egress_port_of_protocol_tls_is_an_sni_listener() -> None:
    """Istio builds an egress listener by its `port.protocol`: TLS chains by SNI, whatever
    the services' own protocols."""
    web = entry("web", "web.example.com", "{number: 9443, name: http, protocol: HTTP}")
    sidecar = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - {port: {number: 9443, protocol: HTTPS, name: tls}, hosts: ["*/*"]}
  - {hosts: ["*/*"]}
"""
    config, problems = load_documents([("m.yaml", "\n".join([ENTRIES, web, sidecar]))])
    assert problems == []
    listeners = {d["name"]: d for d in translate(config, PROXY, scoped=True).documents[LISTENER]}
    assert sni_chains(listeners["127.0.0.1_9443"]) == [
        (["web.example.com"], "outbound|9443||web.example.com")
    ]


def test_a_bad_app_protocol_names_the_field() -> None:
    service = """
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: default}
spec: {ports: [{name: api, port: 8200, appProtocol: quic}]}
"""
    _, problems = load_documents([("s.yaml", service)])
    assert [str(p) for p in problems] == [
        "s.yaml: Service default/vault: spec.ports[0].appProtocol: expected one of http, "
        "http2, grpc, https, tls, tcp, got 'quic'"
    ]
