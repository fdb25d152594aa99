"""TLS and HTTPS ports: passed through by the sidecar, one outbound listener per port whose
filter chains match the ClientHello's SNI, one per service (Istio's
`buildSidecarOutboundTLSFilterChainOpts`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from envoy.config.listener.v3 import listener_pb2

from fastmesh.controlplane import (
    CLUSTER,
    LISTENER,
    ProxyInfo,
    load_documents,
    translate,
    translate_snapshot,
)
from fastmesh.controlplane._analyze import analyze
from fastmesh.controlplane._index import MeshIndex
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


def virtual_service(name: str, hosts: str, tls: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: {hosts}
  tls:
{tls}
---"""


def test_tls_routes_match_their_sni_hosts_and_pick_the_route() -> None:
    """Istio's: a chain per `tls` match that applies to the proxy on the port, in order,
    the first of those with the same SNI hosts only; no chain of the service's own then."""
    routing = virtual_service(
        "a-split",
        "[a.example.com]",
        """  - match: [{sniHosts: [a.example.com], sourceLabels: {app: other}}]
    route: [{destination: {host: b.example.com}}]
  - match: [{sniHosts: [a.example.com], port: 443}, {sniHosts: [a.example.com]}]
    route:
    - {destination: {host: a.example.com}, weight: 70}
    - {destination: {host: b.example.com}, weight: 30}
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: b.example.com}}]""",
    )
    listeners, warnings = translated(ENTRIES, routing)
    assert warnings == []
    chains = listeners["127.0.0.1_443"]["filter_chains"]
    assert [c["filter_chain_match"]["server_names"] for c in chains] == [
        ["*.wild.example.com"],
        ["a.example.com"],
        ["b.example.com"],
    ]
    split = chains[1]["filters"][0]["typed_config"]
    assert split["stat_prefix"] == "a-split.default"
    assert split["weighted_clusters"] == {
        "clusters": [
            {"name": "outbound|443||a.example.com", "weight": 70},
            {"name": "outbound|443||b.example.com", "weight": 30},
        ]
    }
    # a proxy labelled app=other takes the first route; its label is part of its kind
    config, _ = load_documents([("m.yaml", "\n".join([ENTRIES, routing]))])
    other = replace(PROXY, labels=(("app", "other"),))
    assert MeshIndex(config).label_key(other) == (("app", "other"),)
    listeners = {d["name"]: d for d in translate(config, other).documents[LISTENER]}
    assert sni_chains(listeners["127.0.0.1_443"])[1] == (
        ["a.example.com"],
        "outbound|443||b.example.com",
    )


def test_a_tls_match_for_several_hosts_is_one_chain() -> None:
    routing = virtual_service(
        "ab",
        "[a.example.com, b.example.com]",
        """  - match: [{sniHosts: [b.example.com, a.example.com]}]
    route: [{destination: {host: a.example.com}}]""",
    )
    listeners, warnings = translated(ENTRIES, routing)
    assert warnings == []
    assert sni_chains(listeners["127.0.0.1_443"]) == [
        (["*.wild.example.com"], "outbound|443||*.wild.example.com"),
        (["a.example.com", "b.example.com"], "outbound|443||a.example.com"),
    ]


def test_an_sni_two_chains_match_stays_with_the_first() -> None:
    """Envoy refuses a listener with two chains for one name: the later chain loses it."""
    routing = virtual_service(
        "wild",
        '["*.example.com"]',
        """  - match: [{sniHosts: [a.example.com, c.example.com]}]
    route: [{destination: {host: b.example.com}}]""",
    )
    wild = entry("wildest", "*.example.com", "{number: 443, name: tls, protocol: TLS}", "NONE")
    listeners, warnings = translated(ENTRIES, wild, routing)
    assert sni_chains(listeners["127.0.0.1_443"]) == [
        (["a.example.com", "c.example.com"], "outbound|443||b.example.com"),
        (["*.wild.example.com"], "outbound|443||*.wild.example.com"),
        (["b.example.com"], "outbound|443||b.example.com"),
    ]
    assert warnings == [
        "m.yaml: ServiceEntry default/a: a.example.com: SNI a.example.com on TLS port 443 is "
        "matched by m.yaml: VirtualService default/wild: spec.tls[0].match[0] already; not here"
    ]


def test_tls_route_destinations_are_resolved_and_imported() -> None:
    routing = virtual_service(
        "a",
        "[a.example.com]",
        """  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: ghost.example.com}}]""",
    )
    _, warnings = translated(ENTRIES, routing)
    assert warnings == [
        "m.yaml: VirtualService default/a: spec.tls[0].route[0].destination.host: unknown "
        "service ghost.example.com"
    ]
    # a Sidecar importing a only still gets the cluster its tls route goes to
    routing = virtual_service(
        "a",
        "[a.example.com]",
        """  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: b.example.com}}]""",
    )
    sidecar = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec: {egress: [{hosts: [default/a.example.com]}]}
"""
    config, problems = load_documents([("m.yaml", "\n".join([ENTRIES, routing, sidecar]))])
    assert problems == []
    documents = translate(config, PROXY, scoped=True).documents
    assert sorted(c["name"] for c in documents[CLUSTER]) == [
        "outbound|443||a.example.com",
        "outbound|443||b.example.com",
    ]
    [listener] = documents[LISTENER]
    assert sni_chains(listener) == [(["a.example.com"], "outbound|443||b.example.com")]


def test_tls_route_problems_name_the_field() -> None:
    routing = virtual_service(
        "bad",
        "[a.example.com, reviews]",
        """  - route: [{destination: {host: a.example.com}}]
  - match: []
    route: [{destination: {host: a.example.com}}]
  - match:
    - {sniHosts: []}
    - {sniHosts: [b.example.com, "bad name", reviews.default.svc.cluster.local]}
    - {sniHosts: [a.example.com], sourceSubnet: 10.0.0.0/8}
    route: [{destination: {host: a.example.com}}]""",
    )
    _, problems = load_documents([("v.yaml", routing)])
    prefix = "v.yaml: VirtualService default/bad: spec.tls"
    assert [str(p).removeprefix(prefix) for p in problems] == [
        "[0].match: is required",
        "[1].match: a TLS route needs at least one match (as in Istio)",
        "[2].match[0].sniHosts: a TLS match needs at least one SNI host (as in Istio)",
        "[2].match[1].sniHosts[0]: SNI host 'b.example.com' is none of the VirtualService's "
        "hosts, nor under a *.suffix one (a.example.com, reviews.default.svc.cluster.local)",
        "[2].match[1].sniHosts[1]: expected a DNS name or *.suffix, got 'bad name'",
        "[2].match[2].sourceSubnet: unsupported field (supported: destinationSubnets, "
        "gateways, port, sniHosts, sourceLabels, sourceNamespace)",
    ]


def test_analyze_reports_the_tls_findings() -> None:
    routing = virtual_service(
        "wild",
        '["*.example.com"]',
        """  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: b.example.com}}]""",
    )
    wild = entry("wildest", "*.example.com", "{number: 443, name: tls, protocol: TLS}", "NONE")
    tcp = entry("db", "db.example.com", "{number: 8443, name: tcp, protocol: TCP}")
    lone = entry("c", "c.example.com", "{number: 8443, name: tls, protocol: TLS}")
    config, problems = load_documents([("m.yaml", "\n".join([ENTRIES, wild, routing, tcp, lone]))])
    assert problems == []
    assert [f.render() for f in analyze(config, []) if f.code in ("FM0002", "FM0015")] == [
        "Warning [FM0002] TLS port 8443 of c.example.com is shared with TCP services "
        "db.example.com (SNI filter chains need every service of a port to be TLS); no TLS or "
        "TCP listener for it",
        "Warning [FM0015] m.yaml: ServiceEntry default/a: a.example.com: SNI a.example.com on "
        "TLS port 443 is matched by m.yaml: VirtualService default/wild: spec.tls[0].match[0] "
        "already; not here",
    ]
