"""Two sidecars and their workload identities, as Envoy YAML both proxies run.

    client ──plaintext──> A :outbound ──mTLS, HTTP/2, A's SVID──> B :inbound ──> echo
                          (UpstreamTlsContext,                   (DownstreamTlsContext,
                           B's SPIFFE ID pinned)                  client cert required,
                                                                  XFCC set, optional RBAC)

`Workload` mints an X.509-SVID the way a workload gets one: its key is made locally and
only a CSR goes to the CA (`CertificateAuthority.sign_csr`).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509

from fastmesh.ca import CertificateAuthority, SpiffeId, WorkloadKey, new_workload_key
from tests.support import bootstrap, cluster, free_port, http_listener, prefix, route, virtual_host

Json = dict[str, Any]
TRUST_DOMAIN = "cluster.local"
EXT = "type.googleapis.com/envoy.extensions."
TLS = EXT + "transport_sockets.tls.v3."
HTTP_RBAC = EXT + "filters.http.rbac.v3.RBAC"
NETWORK_RBAC = EXT + "filters.network.rbac.v3.RBAC"
TLS_INSPECTOR = EXT + "filters.listener.tls_inspector.v3.TlsInspector"
Mode = Literal["strict", "permissive"]


def spiffe(sa: str, ns: str = "default") -> SpiffeId:
    return SpiffeId(TRUST_DOMAIN, ns, sa)


def _replace(path: Path, data: bytes) -> None:
    """As a rotation agent does: write a sibling, rename it over the old file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class Workload:
    """One identity's key (kept across renewals), its SVID files and the trust bundle."""

    ca: CertificateAuthority
    identity: SpiffeId
    directory: Path
    key: WorkloadKey = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = new_workload_key(self.identity)
        self.key_file.write_bytes(self.key.key_pem())
        self.roots.write_bytes(self.ca.bundle.pem())
        self.renew()

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.directory / "key.pem"

    @property
    def roots(self) -> Path:
        return self.directory / "roots.pem"

    @property
    def uri(self) -> str:
        return self.identity.uri

    def renew(self, ttl: dt.timedelta = dt.timedelta(hours=1)) -> x509.Certificate:
        """A new SVID for the same key, swapped in atomically; returns it."""
        svid = self.ca.sign_csr(self.key.csr_pem(), self.identity, ttl)
        _replace(self.cert, svid.chain_pem())
        return svid.cert

    def client_context(self) -> ssl.SSLContext:
        """A TLS client presenting this SVID and trusting the mesh roots (no host check:
        an SVID names a SPIFFE ID, not a host)."""
        ctx = ssl.create_default_context(cafile=str(self.roots))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(self.cert), str(self.key_file))
        return ctx

    def tls_certificate(self) -> Json:
        return {
            "certificate_chain": {"filename": str(self.cert)},
            "private_key": {"filename": str(self.key_file)},
        }

    def validation(self, peer: str | None) -> Json:
        """Trust the mesh roots; when `peer` is given, accept only that SPIFFE ID."""
        out: Json = {"trusted_ca": {"filename": str(self.roots)}}
        if peer is not None:
            out["match_typed_subject_alt_names"] = [{"san_type": "URI", "matcher": {"exact": peer}}]
        return out


class Mesh:
    """A CA and the workloads it issued SVIDs to, all under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca, _ = CertificateAuthority.init(directory / "ca", TRUST_DOMAIN)

    def workload(self, sa: str) -> Workload:
        return Workload(self.ca, spiffe(sa), self.directory / sa)


def served_serial(port: int, client: Workload) -> int:
    """The serial of the certificate a TLS listener presents to `client` in a new handshake."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.client_context().wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def principal_policy(action: str, principal: str) -> Json:
    """RBAC rules: `action` (ALLOW or DENY) on every request from the SVID `principal`."""
    return {
        "action": action,
        "policies": {
            f"{action.lower()}-{principal.rsplit('/', 1)[-1]}": {
                "permissions": [{"any": True}],
                "principals": [{"authenticated": {"principal_name": {"exact": principal}}}],
            }
        },
    }


@dataclass
class Sidecar:
    """The ports of one sidecar: its traffic listener and its admin."""

    listener: int = field(default_factory=free_port)
    admin: int = field(default_factory=free_port)


def outbound_config(side: Sidecar, me: Workload, inbound_port: int, peer: str) -> Json:
    """Sidecar A: plaintext HTTP in; out over mTLS + HTTP/2 to B, accepting only `peer`."""
    upstream = cluster("inbound_b", [("127.0.0.1", inbound_port)], http2=True)
    upstream["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS + "UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [me.tls_certificate()],
                "validation_context": me.validation(peer),
                "alpn_protocols": ["h2"],
            },
        },
    }
    listener = http_listener(
        "outbound",
        side.listener,
        [virtual_host("b", ["*"], [route(prefix("/"), cluster="inbound_b")])],
        stat_prefix="outbound",
    )
    return bootstrap(admin_port=side.admin, listeners=[listener], clusters=[upstream])


def inbound_config(
    side: Sidecar,
    me: Workload,
    app_port: int,
    *,
    peer: str | None = None,
    rbac: Json | None = None,
    network_rbac: Json | None = None,
    mode: Mode = "strict",
) -> Json:
    """Sidecar B: mTLS in (client certificate required, only `peer` when given), XFCC set
    to the caller's URI SAN, optional RBAC rules on requests (`rbac`, stats under
    `http.inbound.rbac.`) or connections (`network_rbac`, under `inbound_tcp.rbac.`);
    plaintext to the app.
    `permissive` adds Istio's plaintext chain behind the TLS inspector."""
    listener = http_listener(
        "inbound",
        side.listener,
        [virtual_host("app", ["*"], [route(prefix("/"), cluster="app")])],
        stat_prefix="inbound",
    )
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["forward_client_cert_details"] = "SANITIZE_SET"
    hcm["set_current_client_cert_details"] = {"uri": True}
    if rbac is not None:
        typed: Json = {"@type": HTTP_RBAC, "rules": rbac}
        rbac_filter = {"name": "envoy.filters.http.rbac", "typed_config": typed}
        hcm["http_filters"].insert(0, rbac_filter)
    if network_rbac is not None:
        typed = {"@type": NETWORK_RBAC, "stat_prefix": "inbound_tcp", "rules": network_rbac}
        rbac_filter = {"name": "envoy.filters.network.rbac", "typed_config": typed}
        listener["filter_chains"][0]["filters"].insert(0, rbac_filter)
    tls_chain: Json = {
        "filters": listener["filter_chains"][0]["filters"],
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": TLS + "DownstreamTlsContext",
                "require_client_certificate": True,
                "common_tls_context": {
                    "tls_certificates": [me.tls_certificate()],
                    "validation_context": me.validation(peer),
                    "alpn_protocols": ["h2", "http/1.1"],
                },
            },
        },
    }
    if mode == "strict":
        listener["filter_chains"] = [tls_chain]
    else:
        tls_chain["filter_chain_match"] = {"transport_protocol": "tls"}
        plaintext = {
            "filter_chain_match": {"transport_protocol": "raw_buffer"},
            "filters": tls_chain["filters"],
        }
        listener["filter_chains"] = [tls_chain, plaintext]
        inspector = {"@type": TLS_INSPECTOR}
        listener["listener_filters"] = [
            {"name": "envoy.filters.listener.tls_inspector", "typed_config": inspector}
        ]
    app = cluster("app", [("127.0.0.1", app_port)])
    return bootstrap(admin_port=side.admin, listeners=[listener], clusters=[app])


def listener_stat(port: int, name: str) -> str:
    """Envoy's per-listener TLS stat name, e.g. `listener.127.0.0.1_15006.ssl.handshake`."""
    return f"listener.127.0.0.1_{port}.ssl.{name}"
