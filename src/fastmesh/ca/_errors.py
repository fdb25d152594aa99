"""The CA's errors: one base class, and one per refusal a caller may want to tell apart."""

from __future__ import annotations

__all__ = ["CaError", "InvalidSpiffeId", "NotEntitled", "SvidError"]


class CaError(Exception):
    """Something the CA cannot do; the message says what and why."""


class InvalidSpiffeId(CaError, ValueError):
    """A string that is not a SPIFFE ID of the form `spiffe://TD/ns/NS/sa/SA`."""


class NotEntitled(CaError):
    """A CSR asks for an identity other than the one its caller was authenticated as."""


class SvidError(CaError):
    """A certificate breaks the SPIFFE X.509-SVID rules or does not chain to the bundle."""
