"""The mesh hop as files: two sidecars' Envoy YAML (run by Envoy and fastmesh alike) and the
SVIDs they present, minted by fastmesh's CA from each workload's own CSR.

    load generator ──> A :outbound ──mTLS 1.3, HTTP/2──> B :inbound ──HTTP/1.1──> nginx
                       (client SVID spiffe://bench.local/ns/default/sa/client,
                        pins B's SPIFFE ID)    (client certificate required, pins A's,
                                                XFCC set for the app)

B's inbound listener is also the target of the TLS handshake row (`openssl s_time -new`
presenting A's SVID).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fastmesh.ca import CertificateAuthority, SpiffeId, new_workload_key

Json = dict[str, Any]
TRUST_DOMAIN = "bench.local"
_EXT = "type.googleapis.com/envoy.extensions."
_TLS = _EXT + "transport_sockets.tls.v3."
_HCM = _EXT + "filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = _EXT + "filters.http.router.v3.Router"
_HTTP_OPTIONS = _EXT + "upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True)
class MeshPorts:
    a_http: int
    a_admin: int
    b_tls: int
    b_admin: int

    @staticmethod
    def allocate() -> MeshPorts:
        socks = [socket.socket() for _ in range(4)]
        try:
            for s in socks:
                s.bind(("127.0.0.1", 0))
            a_http, a_admin, b_tls, b_admin = (s.getsockname()[1] for s in socks)
        finally:
            for s in socks:
                s.close()
        return MeshPorts(a_http, a_admin, b_tls, b_admin)


@dataclass(frozen=True)
class Svid:
    """One workload's identity and files: certificate chain, key, trust bundle."""

    uri: str
    cert: Path
    key: Path
    roots: Path


def mint(ca: CertificateAuthority, directory: Path, sa: str) -> Svid:
    """An SVID for `sa`: the key is made here (the workload), the CA signs its CSR."""
    identity = SpiffeId(TRUST_DOMAIN, "default", sa)
    key = new_workload_key(identity)
    svid = ca.sign_csr(key.csr_pem(), identity)
    out = Svid(
        identity.uri, directory / f"{sa}.pem", directory / f"{sa}-key.pem", directory / "roots.pem"
    )
    out.cert.write_bytes(svid.chain_pem())
    out.key.write_bytes(key.key_pem())
    out.roots.write_bytes(ca.bundle.pem())
    return out


@dataclass(frozen=True)
class MeshFiles:
    ports: MeshPorts
    client: Svid  # sidecar A's identity
    server: Svid  # sidecar B's identity
    a_yaml: Path
    b_yaml: Path


def _address(port: int) -> Json:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _common_tls(me: Svid, peer: str, alpn: list[str]) -> Json:
    return {
        "tls_certificates": [
            {
                "certificate_chain": {"filename": str(me.cert)},
                "private_key": {"filename": str(me.key)},
            }
        ],
        "validation_context": {
            "trusted_ca": {"filename": str(me.roots)},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": peer}}],
        },
        "alpn_protocols": alpn,
    }


def _cluster(name: str, port: int) -> Json:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(port)}}]}],
        },
    }


def _listener(name: str, port: int, cluster: str, **hcm_extra: Any) -> Json:
    hcm = {
        "@type": _HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                }
            ],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
        **hcm_extra,
    }
    return {
        "name": name,
        "address": _address(port),
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _bootstrap(admin: int, listener: Json, cluster: Json) -> Json:
    return {
        "admin": {"address": _address(admin)},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }


def outbound(ports: MeshPorts, me: Svid, peer: Svid) -> Json:
    """Sidecar A: plaintext HTTP in, mTLS + HTTP/2 to B. TLS 1.3 is allowed explicitly:
    Envoy's client stops at 1.2 by default, fastmesh's does not."""
    upstream = _cluster("inbound_b", ports.b_tls)
    upstream["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": _HTTP_OPTIONS,
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    common = _common_tls(me, peer.uri, ["h2"])
    common["tls_params"] = {"tls_maximum_protocol_version": "TLSv1_3"}
    upstream["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {"@type": _TLS + "UpstreamTlsContext", "common_tls_context": common},
    }
    return _bootstrap(ports.a_admin, _listener("outbound", ports.a_http, "inbound_b"), upstream)


def inbound(ports: MeshPorts, me: Svid, peer: Svid, app_port: int) -> Json:
    """Sidecar B: mTLS in (A's SVID required), XFCC for the app, HTTP/1.1 to nginx."""
    listener = _listener(
        "inbound",
        ports.b_tls,
        "app",
        forward_client_cert_details="SANITIZE_SET",
        set_current_client_cert_details={"uri": True},
    )
    listener["filter_chains"][0]["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TLS + "DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": _common_tls(me, peer.uri, ["h2", "http/1.1"]),
        },
    }
    # Each worker of A holds one HTTP/2 connection to B: few, long-lived connections that the
    # kernel's SO_REUSEPORT hash may put on one worker of B, for either proxy, a coin toss per
    # run. Both balance them exactly (Istio's INBOUND_LISTENER_EXACT_BALANCE).
    listener["connection_balance_config"] = {"exact_balance": {}}
    return _bootstrap(ports.b_admin, listener, _cluster("app", app_port))


def mesh_files(workdir: Path, nginx_port: int) -> MeshFiles:
    """A fresh CA, both SVIDs and both YAML files under `workdir/mesh`."""
    directory = workdir / "mesh"
    directory.mkdir(parents=True, exist_ok=True)
    ca, _ = CertificateAuthority.init(directory / "ca", TRUST_DOMAIN)
    client, server = mint(ca, directory, "client"), mint(ca, directory, "server")
    ports = MeshPorts.allocate()
    a_yaml, b_yaml = directory / "sidecar-a.yaml", directory / "sidecar-b.yaml"
    a_yaml.write_text(yaml.safe_dump(outbound(ports, client, server), sort_keys=False))
    b_yaml.write_text(yaml.safe_dump(inbound(ports, server, client, nginx_port), sort_keys=False))
    return MeshFiles(ports, client, server, a_yaml, b_yaml)
