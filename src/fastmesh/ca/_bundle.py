"""The trust bundle: every root a workload trusts for one trust domain (old and new during a
root rotation's overlap)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ._certs import certs_pem, load_certs, utcnow

__all__ = ["TrustBundle"]


@dataclass(frozen=True, slots=True)
class TrustBundle:
    trust_domain: str
    #: Newest first.
    roots: tuple[x509.Certificate, ...]

    def pem(self) -> bytes:
        return certs_pem(self.roots)

    def unexpired(self) -> TrustBundle:
        """Without the roots whose validity has ended."""
        now = utcnow()
        return TrustBundle(
            self.trust_domain, tuple(r for r in self.roots if r.not_valid_after_utc > now)
        )

    @classmethod
    def from_pem(cls, trust_domain: str, pem: bytes) -> TrustBundle:
        return cls(trust_domain, tuple(load_certs(pem, "trust bundle")))
