"""Building blocks: keys, PEM, and the three certificate profiles (root, intermediate, leaf)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._errors import CaError

__all__ = [
    "CA_KEY_TYPES",
    "PrivateKey",
    "PublicKey",
    "ca_certificate",
    "certs_pem",
    "generate_key",
    "key_pem",
    "leaf_certificate",
    "load_certs",
    "load_key",
    "utcnow",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
CA_KEY_TYPES = ("ec", "rsa")
#: Tolerance for clocks that disagree a little: certificates start this long ago (a leaf at
#: most a quarter of its ttl, so a short test ttl keeps a short lifetime).
_BACKDATE = dt.timedelta(minutes=1)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def generate_key(kind: str = "ec") -> PrivateKey:
    """ECDSA P-256 (the default, as Istio's) or RSA 2048."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise CaError(f"key type {kind!r}: expected one of {', '.join(CA_KEY_TYPES)}")


def key_pem(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted (the file's mode protects it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes, what: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"{what}: only ECDSA and RSA keys are supported")
    return key


def certs_pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def load_certs(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CaError(f"{what}: no PEM certificate in it ({exc})") from None
    return certs


def _signing_hash(key: PrivateKey) -> hashes.SHA256:
    """SHA-256 for every key type we make (ECDSA P-256 and RSA 2048)."""
    return hashes.SHA256()


def ca_certificate(
    key: PrivateKey,
    *,
    common_name: str,
    organization: str,
    lifetime: dt.timedelta,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    path_length: int | None = None,
) -> x509.Certificate:
    """A CA certificate: self-signed root when `issuer` is None, else signed by it."""
    now = utcnow()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    issuer_name, signer = (subject, key) if issuer is None else (issuer[0].subject, issuer[1])
    not_after = now + lifetime
    if issuer is not None:
        not_after = min(not_after, issuer[0].not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    return builder.sign(signer, _signing_hash(signer))


def leaf_certificate(
    public_key: PublicKey,
    uri: str,
    *,
    organization: str,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    ttl: dt.timedelta,
) -> x509.Certificate:
    """An X.509-SVID: one URI SAN, cA=false, critical KeyUsage, EKU server+client auth."""
    now = utcnow()
    not_after = min(now + ttl, issuer.not_valid_after_utc)
    backdate = min(_BACKDATE, ttl / 4)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, _signing_hash(issuer_key))
    )
