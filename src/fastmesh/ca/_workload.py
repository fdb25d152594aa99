"""The workload side: make a key and a CSR (the key never leaves the workload), and know when
to renew (at half of the certificate's lifetime, as Istio's agent does)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ._certs import PrivateKey, generate_key, key_pem
from ._identity import SpiffeId

__all__ = ["WorkloadKey", "new_workload_key", "renew_at"]


class WorkloadKey:
    """A workload's private key and the CSR asking for its identity."""

    def __init__(self, identity: SpiffeId, key: PrivateKey) -> None:
        self.identity = identity
        self.key = key

    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def csr_pem(self) -> bytes:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fastmesh")]))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(self.identity.uri)]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM)


def new_workload_key(identity: SpiffeId, kind: str = "ec") -> WorkloadKey:
    """A fresh key (ECDSA P-256 by default) for `identity`."""
    return WorkloadKey(identity, generate_key(kind))


def renew_at(cert: x509.Certificate) -> dt.datetime:
    """When to ask for a new certificate: half way through this one's lifetime."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) / 2
