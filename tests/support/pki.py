"""A throwaway PKI for TLS tests (with `cryptography`): a CA issuing server and client
certificates, revoking them in a CRL, and signing OCSP responses to staple. Everything is
written as files, as Envoy's `DataSource.filename` reads them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponseBuilder
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Leaf:
    """An issued certificate and its key, as files."""

    cert: x509.Certificate
    cert_file: Path
    key_file: Path

    @property
    def serial(self) -> int:
        return int(self.cert.serial_number)

    def tls_certificate(self) -> dict[str, object]:
        """Envoy's `TlsCertificate` naming these files."""
        return {
            "certificate_chain": {"filename": str(self.cert_file)},
            "private_key": {"filename": str(self.key_file)},
        }


class Pki:
    """A CA in `directory` (`ca.pem`) issuing leaves into the same directory: a root, or
    with `parent` an intermediate, whose leaves' files carry it after the leaf."""

    def __init__(self, directory: Path, name: str = "test-ca", parent: Pki | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.chain: list[x509.Certificate] = [] if parent is None else [*parent.chain]
        self.cert: x509.Certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if parent is None else parent.cert.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key if parent is None else parent.key, hashes.SHA256())
        )
        if parent is not None:
            self.chain.insert(0, self.cert)  # what a leaf's file carries after the leaf
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(_pem(self.cert))

    def issue(
        self,
        name: str,
        dns: list[str] | None = None,
        *,
        client: bool = False,
        days: int = 10,
        must_staple: bool = False,
    ) -> Leaf:
        """A leaf for `name` (CN, and DNS SANs `dns`, default `[name]`), for a server, or
        with `client=True` for a client, valid for `days`; `must_staple`: with RFC 7633's
        TLS feature `status_request` (OCSP Must-Staple)."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + days * _DAY)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in (dns or [name])]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if must_staple:
            builder = builder.add_extension(
                x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        stem = name.replace("*", "_wild")
        cert_file = self.directory / f"{stem}.pem"
        key_file = self.directory / f"{stem}.key"
        cert_file.write_bytes(b"".join(_pem(c) for c in (cert, *self.chain)))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Leaf(cert, cert_file, key_file)

    def crl(self, revoked: list[Leaf], name: str = "crl.pem", *, v1: bool = False) -> Path:
        """A PEM CRL revoking `revoked`, written to `name`; `v1`: an old one, without the
        extensions RFC 5280 requires."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(_now() - _DAY)
            .next_update(_now() + 7 * _DAY)
        )
        if not v1:
            builder = builder.add_extension(x509.CRLNumber(1), critical=False).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        for leaf in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(leaf.serial)
                .revocation_date(_now() - _DAY)
                .build()
            )
        path = self.directory / name
        path.write_bytes(
            builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        return path

    def ocsp_staple(self, leaf: Leaf, name: str = "ocsp.der", *, expired: bool = False) -> Path:
        """A DER OCSP response saying `leaf` is good, signed by the CA, written to `name`;
        `expired`: its nextUpdate has passed."""
        this_update = _now() - (3 * _DAY if expired else _DAY)
        response = (
            OCSPResponseBuilder()
            .add_response(
                cert=leaf.cert,
                issuer=self.cert,
                algorithm=hashes.SHA1(),
                cert_status=OCSPCertStatus.GOOD,
                this_update=this_update,
                next_update=this_update + 2 * _DAY,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(x509.ocsp.OCSPResponderEncoding.HASH, self.cert)
            .sign(self.key, hashes.SHA256())
        )
        path = self.directory / name
        path.write_bytes(response.public_bytes(serialization.Encoding.DER))
        return path
