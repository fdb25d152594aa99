"""SPIFFE IDs of mesh workloads: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import InvalidSpiffeId

__all__ = ["SpiffeId", "check_trust_domain"]

# The SPIFFE ID spec: trust domain [a-z0-9._-], path segments [A-Za-z0-9._-], never . or ..
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def check_trust_domain(trust_domain: str) -> str:
    """`trust_domain` if it is valid (lower-case letters, digits, `.`, `-`, `_`)."""
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise InvalidSpiffeId(
            f"trust domain {trust_domain!r}: only lower-case letters, digits, '.', '-', '_'"
        )
    return trust_domain


def _check_segment(what: str, value: str) -> None:
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise InvalidSpiffeId(f"{what} {value!r}: only letters, digits, '.', '-', '_'")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A workload identity as Istio names it."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        _check_segment("namespace", self.namespace)
        _check_segment("service account", self.service_account)

    @property
    def uri(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """From `spiffe://TD/ns/NS/sa/SA`; anything else raises `InvalidSpiffeId`."""
        scheme, sep, rest = uri.partition("://")
        if scheme != "spiffe" or not sep:
            raise InvalidSpiffeId(f"{uri!r}: not a spiffe:// URI")
        trust_domain, _, path = rest.partition("/")
        parts = path.split("/")
        if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
            raise InvalidSpiffeId(f"{uri!r}: the path must be /ns/<namespace>/sa/<account>")
        return cls(trust_domain, parts[1], parts[3])
