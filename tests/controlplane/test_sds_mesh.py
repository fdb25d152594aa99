"""End to end: two sidecars take their SPIFFE certificates over SDS from our control plane and
talk mTLS; plaintext and wrong identities are refused; short-lived certificates rotate under
traffic. Each pair runs as Envoy/Envoy, fastmesh/fastmesh and mixed both ways."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509

from fastmesh.ca import CertificateAuthority, SpiffeId
from fastmesh.controlplane import ControlPlane
from fastmesh.controlplane._sds import SecretIssuer
from tests.support import EchoServer, ProxyProcess, free_port, run_proxy
from tests.support.envoy_config import HCM_TYPE, ROUTER_TYPE, cluster, socket_address
from tests.support.proxy import Binary

from .harness import ControlPlaneThread, ads_bootstrap, wait_until

pytestmark = pytest.mark.envoy

Json = dict[str, Any]
TD = "cluster.local"
CLIENT_ID = SpiffeId(TD, "default", "productpage")
SERVER_ID = SpiffeId(TD, "default", "reviews")
#: Short enough that a rotation happens during the test (renewal at half life, ~2 s).
TTL = dt.timedelta(seconds=4)
TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
#: SDS over the ADS stream: Istio's `sds_config: {ads: {}}` (the server sidecar's listener).
SDS_VIA_ADS = {"ads": {}, "resource_api_version": "V3"}
#: The separate SDS service (StreamSecrets), as istio-agent serves it (Envoy's client
#: sidecars): `{ads: {}}` in a *static* cluster crashes Envoy 1.40 at startup (the ADS mux
#: does not exist yet when static clusters are built); static listeners take it, clusters do
#: not. fastmesh takes SDS over ADS only, everywhere (it has no such crash).
SDS_SERVICE = {
    "api_config_source": {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
    },
    "resource_api_version": "V3",
}


def tls_context(peer: SpiffeId, sds: Json) -> Json:
    """Istio's: our cert from secret `default`, trust from `ROOTCA`, the peer's SAN exact."""
    return {
        "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": sds}],
        "combined_validation_context": {
            "default_validation_context": {
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"exact": peer.uri}}
                ]
            },
            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": sds},
        },
    }


def hcm(routes: list[Json], **extra: Any) -> Json:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": "http",
            "route_config": {
                "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
            ],
            **extra,
        },
    }


def to(cluster_name: str, prefix: str = "/") -> Json:
    return {"match": {"prefix": prefix}, "route": {"cluster": cluster_name}}


def sidecar(
    identity: SpiffeId, *, xds_port: int, listeners: list[Json], clusters: list[Json]
) -> Json:
    """ADS for SDS (the mesh directory is empty: CDS and LDS bring nothing); the listeners
    and clusters are static (the point is CA + SDS)."""
    node_id = f"sidecar~127.0.0.1~{identity.service_account}-v1.default~default.svc.cluster.local"
    boot = ads_bootstrap(admin_port=free_port(), xds_port=xds_port, node_id=node_id)
    boot["node"]["metadata"]["SERVICE_ACCOUNT"] = identity.service_account
    boot["static_resources"]["listeners"] = listeners
    boot["static_resources"]["clusters"] += clusters
    return boot


def server_sidecar(xds_port: int, inbound_port: int, app_port: int) -> Json:
    """Inbound: mTLS required, only the client's identity accepted, XFCC set for the app."""
    listener = {
        "name": "inbound",
        "address": socket_address(inbound_port),
        "filter_chains": [
            {
                "filters": [
                    hcm(
                        [to("inbound|app")],
                        forward_client_cert_details="SANITIZE_SET",
                        set_current_client_cert_details={"uri": True},
                    )
                ],
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": TLS + "DownstreamTlsContext",
                        "require_client_certificate": True,
                        "common_tls_context": tls_context(CLIENT_ID, SDS_VIA_ADS),
                    },
                },
            }
        ],
    }
    app = cluster("inbound|app", [("127.0.0.1", app_port)])
    return sidecar(SERVER_ID, xds_port=xds_port, listeners=[listener], clusters=[app])


def client_sidecar(
    identity: SpiffeId, xds_port: int, outbound_port: int, server: int, sds: Json
) -> Json:
    """Outbound: `/` to the server expecting its SPIFFE ID, `/wrong-san/` expecting another."""

    def mtls(name: str, expect: SpiffeId) -> Json:
        out = cluster(name, [("127.0.0.1", server)])
        out["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": TLS + "UpstreamTlsContext",
                "common_tls_context": tls_context(expect, sds),
            },
        }
        return out

    listener = {
        "name": "outbound",
        "address": socket_address(outbound_port),
        "filter_chains": [{"filters": [hcm([to("wrong-san", "/wrong-san/"), to("reviews")])]}],
    }
    clusters = [mtls("reviews", SERVER_ID), mtls("wrong-san", SpiffeId(TD, "default", "ratings"))]
    return sidecar(identity, xds_port=xds_port, listeners=[listener], clusters=clusters)


@dataclass
class Mesh:
    cp: ControlPlaneThread
    issuer: SecretIssuer
    app: EchoServer
    server: ProxyProcess
    client: ProxyProcess
    intruder: ProxyProcess
    ports: dict[str, int]
    http: httpx.Client

    def get(self, who: str, path: str = "/") -> httpx.Response:
        return self.http.get(f"http://127.0.0.1:{self.ports[who]}{path}")


def served_serial(port: int) -> str:
    """The serial (lower-case hex) of the certificate a TLS listener presents. TLS 1.3 sends
    it before the server asks for ours, so no client certificate is needed to see it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return f"{x509.load_der_x509_certificate(der).serial_number:x}"


#: (client sidecars, server sidecar): each proxy with itself, and mixed both ways.
PAIRS: list[tuple[Binary, Binary]] = [
    ("envoy", "envoy"),
    ("fastmesh-proxy", "fastmesh-proxy"),
    ("fastmesh-proxy", "envoy"),
    ("envoy", "fastmesh-proxy"),
]


@pytest.fixture(scope="module", params=PAIRS, ids=lambda pair: "-to-".join(pair))
def mesh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    client_binary, server_binary = request.param
    base = tmp_path_factory.mktemp("sds")
    ca, _ = CertificateAuthority.init(base / "ca", TD)
    (base / "mesh").mkdir()
    issuer = SecretIssuer(ca, ttl=TTL)
    cp = ControlPlaneThread(base / "mesh")
    cp.plane = ControlPlane(cp.registry, debounce=0.05, secrets=issuer)
    ports = {name: free_port() for name in ("inbound", "client", "intruder")}
    sds = SDS_SERVICE if client_binary == "envoy" else SDS_VIA_ADS
    mallory = SpiffeId(TD, "default", "mallory")
    with ExitStack() as stack:
        app = stack.enter_context(EchoServer("reviews-app"))
        stack.enter_context(cp)
        configs = [
            (server_binary, server_sidecar(cp.port, ports["inbound"], app.port)),
            (
                client_binary,
                client_sidecar(CLIENT_ID, cp.port, ports["client"], ports["inbound"], sds),
            ),
            (
                client_binary,
                client_sidecar(mallory, cp.port, ports["intruder"], ports["inbound"], sds),
            ),
        ]
        server, client, intruder = (
            stack.enter_context(run_proxy(config, binary=binary, workdir=base))
            for binary, config in configs
        )
        http = stack.enter_context(httpx.Client(timeout=5.0))
        yield Mesh(cp, issuer, app, server, client, intruder, ports, http)


def test_request_flows_over_mtls_and_the_app_sees_the_client_spiffe_id(mesh: Mesh) -> None:
    wait_until("a request through both sidecars", lambda: mesh.get("client").is_success)
    seen = mesh.app.requests[-1].header("x-forwarded-client-cert")
    assert seen is not None and f"URI={CLIENT_ID.uri}" in seen.split(";"), seen
    assert f"By={SERVER_ID.uri}" in seen.split(";"), seen
    issued = mesh.cp.call(lambda: set(mesh.issuer.issued))
    assert issued == {CLIENT_ID, SERVER_ID, SpiffeId(TD, "default", "mallory")}
    # every sidecar took its secrets over SDS (ADS; StreamSecrets for Envoy's clusters)
    statuses = mesh.cp.proxy_status()
    assert {s.node_id.split("~")[2].split("-")[0] for s in statuses if "SDS" in s.types} == {
        "reviews",
        "productpage",
        "mallory",
    }
    assert all(s.nacks == () for s in statuses), statuses


def test_plaintext_to_the_mtls_listener_is_refused(mesh: Mesh) -> None:
    wait_until("mTLS to work", lambda: mesh.get("client").is_success)
    before = len(mesh.app.requests)
    with pytest.raises(httpx.TransportError):
        mesh.get("inbound")
    assert len(mesh.app.requests) == before


def test_wrong_identities_are_refused(mesh: Mesh) -> None:
    wait_until("mTLS to work", lambda: mesh.get("client").is_success)
    before = len(mesh.app.requests)
    # the server presents reviews, the client's cluster expects ratings: SAN match fails
    assert mesh.get("client", "/wrong-san/").status_code == 503
    # mallory's certificate is valid but not the identity the server accepts
    assert mesh.get("intruder").status_code == 503
    assert len(mesh.app.requests) == before

    def handshake_failures(proxy: ProxyProcess, stat: str) -> int:
        _, text = proxy.admin_get(f"/stats?filter={stat}")
        return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.strip())

    assert handshake_failures(mesh.client, r"cluster\.wrong-san\.ssl\.fail_verify_san$") >= 1
    assert handshake_failures(mesh.server, r"listener\..*\.ssl\.fail_verify_san$") >= 1


def test_short_lived_certificates_rotate_under_traffic(mesh: Mesh) -> None:
    wait_until("mTLS to work", lambda: mesh.get("client").is_success)
    inbound = mesh.ports["inbound"]
    first = served_serial(inbound)
    failures: list[int] = []

    def rotated() -> bool:
        response = mesh.get("client")
        if response.status_code != 200:
            failures.append(response.status_code)
        return served_serial(inbound) != first

    wait_until("the server sidecar to present a renewed certificate", rotated, timeout=15)
    current = mesh.cp.call(lambda: mesh.issuer.issued[SERVER_ID].serial)
    now_served = served_serial(inbound)
    assert now_served != first
    # it is one our CA issued (the current one, or the one just before a renewal raced us)
    assert now_served == f"{current:x}" or wait_until(
        "the newest serial to be served", lambda: served_serial(inbound) == f"{current:x}"
    )
    assert failures == []
    for _ in range(20):
        assert mesh.get("client").status_code == 200
    # Envoy's per-secret SDS stats, the same on either binary as the server
    assert mesh.server.counter("sds.default.update_success") >= 2  # renewed at least once
    assert mesh.server.counter("sds.ROOTCA.update_success") >= 1
    assert mesh.server.counter("sds.default.update_rejected") == 0
