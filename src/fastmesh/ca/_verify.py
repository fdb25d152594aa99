"""`verify_svid`: is a peer's certificate chain a valid X.509-SVID of the bundle's trust domain?

The SPIFFE X.509-SVID rules checked: exactly one URI SAN, a `spiffe://` ID of the bundle's
trust domain; a leaf with basicConstraints cA=false; a critical KeyUsage with
digitalSignature and without keyCertSign/cRLSign; within its validity; signed, through CA
intermediates, by a root in the bundle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ._bundle import TrustBundle
from ._certs import utcnow
from ._errors import InvalidSpiffeId, SvidError
from ._identity import SpiffeId

__all__ = ["verify_svid"]

_MAX_DEPTH = 8


def verify_svid(
    chain: x509.Certificate | Sequence[x509.Certificate],
    bundle: TrustBundle,
    *,
    now: dt.datetime | None = None,
) -> SpiffeId:
    """The SPIFFE ID of a valid SVID (`chain`: the leaf, then intermediates); else `SvidError`."""
    certs = [chain] if isinstance(chain, x509.Certificate) else list(chain)
    if not certs:
        raise SvidError("no certificate")
    leaf, intermediates = certs[0], certs[1:]
    identity = _leaf_identity(leaf, bundle.trust_domain)
    _check_leaf_extensions(leaf)
    when = now or utcnow()
    for cert in certs:
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise SvidError(
                f"certificate {cert.serial_number:x} is not valid now (valid"
                f" {cert.not_valid_before_utc} to {cert.not_valid_after_utc})"
            )
    _check_chain(leaf, intermediates, bundle)
    return identity


def _leaf_identity(leaf: x509.Certificate, trust_domain: str) -> SpiffeId:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise SvidError("no subjectAltName: an SVID has exactly one URI SAN") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise SvidError(f"{len(uris)} URI SANs ({', '.join(uris)}): an SVID has exactly one")
    try:
        identity = SpiffeId.parse(uris[0])
    except InvalidSpiffeId as exc:
        raise SvidError(str(exc)) from None
    if identity.trust_domain != trust_domain:
        raise SvidError(f"{identity}: not of trust domain {trust_domain!r}")
    return identity


def _check_leaf_extensions(leaf: x509.Certificate) -> None:
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise SvidError("the leaf has basicConstraints cA=true: an SVID leaf must not be a CA")
    try:
        usage_ext = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        raise SvidError("no KeyUsage: an SVID leaf has a critical KeyUsage") from None
    if not usage_ext.critical:
        raise SvidError("KeyUsage is not critical: an SVID leaf's must be")
    usage = usage_ext.value
    if not usage.digital_signature:
        raise SvidError("KeyUsage lacks digitalSignature: an SVID leaf must have it")
    if usage.key_cert_sign or usage.crl_sign:
        raise SvidError("KeyUsage has keyCertSign or cRLSign: an SVID leaf must not")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_chain(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], bundle: TrustBundle
) -> None:
    current = leaf
    for _ in range(_MAX_DEPTH):
        if any(_issued_by(current, root) for root in bundle.roots):
            return
        parent = next((c for c in intermediates if _is_ca(c) and _issued_by(current, c)), None)
        if parent is None:
            break
        current = parent
    raise SvidError(
        f"certificate {leaf.serial_number:x} does not chain to a root of the"
        f" {bundle.trust_domain!r} trust bundle"
    )
