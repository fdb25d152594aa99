"""Certificates from the mesh CA, and builders of Envoy's TLS transport sockets (plain dicts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastmesh.ca import CertificateAuthority, SpiffeId, new_workload_key

TLS_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
TD = "cluster.local"
SERVER_ID = SpiffeId(TD, "default", "reviews")
CLIENT_ID = SpiffeId(TD, "default", "productpage")


@dataclass(frozen=True)
class Pem:
    """One workload's certificate chain and key, and the mesh's roots, as PEM text."""

    chain: str
    key: str
    roots: str


class Pki:
    """A mesh CA (kept in `directory`) that issues workload certificates."""

    def __init__(self, directory: Path) -> None:
        self.ca, _ = CertificateAuthority.init(directory / "ca", TD)

    def issue(self, identity: SpiffeId) -> Pem:
        key = new_workload_key(identity)
        svid = self.ca.sign_csr(key.csr_pem(), identity)
        return Pem(svid.chain_pem().decode(), key.key_pem().decode(), self.ca.bundle.pem().decode())

    def write(self, identity: SpiffeId, directory: Path) -> dict[str, Path]:
        """Issue and write `cert.pem`, `key.pem` and `roots.pem` into `directory`; returns
        their paths ("chain", "key", "roots")."""
        pem = self.issue(identity)
        paths = {
            "chain": directory / "cert.pem",
            "key": directory / "key.pem",
            "roots": directory / "roots.pem",
        }
        paths["chain"].write_text(pem.chain)
        paths["key"].write_text(pem.key)
        paths["roots"].write_text(pem.roots)
        return paths


def file(path: Path | str) -> dict[str, str]:
    return {"filename": str(path)}


def inline(text: str) -> dict[str, str]:
    return {"inline_string": text}


def certificate(chain: dict[str, str], key: dict[str, str]) -> dict[str, Any]:
    return {"certificate_chain": chain, "private_key": key}


def uri_san(exact: str) -> dict[str, Any]:
    return {"san_type": "URI", "matcher": {"exact": exact}}


def transport_socket(kind: str, **context: Any) -> dict[str, Any]:
    """`envoy.transport_sockets.tls` with a `DownstreamTlsContext` or `UpstreamTlsContext`."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {"@type": TLS_TYPES + kind, **context},
    }


def downstream(**context: Any) -> dict[str, Any]:
    return transport_socket("DownstreamTlsContext", **context)


def upstream(**context: Any) -> dict[str, Any]:
    return transport_socket("UpstreamTlsContext", **context)
