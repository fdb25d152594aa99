"""The mesh CA: a root (or an intermediate under an operator's root) kept in a directory, and
the signing of workload CSRs into X.509-SVIDs.

Directory layout (Istio's plugged-CA file names): `ca-key.pem` (mode 0600), `ca-cert.pem`
(the signing certificate), `root-cert.pem` (the trust bundle, newest root first) and
`ca.json` (`trust_domain`, `mode`: `root` or `intermediate`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ._bundle import TrustBundle
from ._certs import (
    PrivateKey,
    ca_certificate,
    certs_pem,
    generate_key,
    key_pem,
    leaf_certificate,
    load_certs,
    load_key,
)
from ._errors import CaError, NotEntitled
from ._identity import SpiffeId, check_trust_domain

__all__ = ["DEFAULT_TTL", "CertificateAuthority", "Svid"]

DEFAULT_TTL = dt.timedelta(hours=24)
ROOT_LIFETIME = dt.timedelta(days=3650)
INTERMEDIATE_LIFETIME = dt.timedelta(days=365)
KEY_FILE = "ca-key.pem"
CERT_FILE = "ca-cert.pem"
BUNDLE_FILE = "root-cert.pem"
META_FILE = "ca.json"


@dataclass(frozen=True, slots=True)
class Svid:
    """An issued X.509-SVID: the leaf, then the intermediates up to (not including) a root."""

    identity: SpiffeId
    cert: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()

    def chain_pem(self) -> bytes:
        return certs_pem((self.cert, *self.intermediates))


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically (sibling file then rename); the file has `mode` from its creation on."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@dataclass
class CertificateAuthority:
    """Signs CSRs for one trust domain. Make one with `init` (creates or loads) or `load`."""

    trust_domain: str
    key: PrivateKey
    #: The signing certificate: the root itself, or an intermediate under the operator's root.
    cert: x509.Certificate
    bundle: TrustBundle
    directory: Path | None = None

    @property
    def is_intermediate(self) -> bool:
        return self.cert.issuer != self.cert.subject

    # --- lifecycle ---------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        trust_domain: str = "cluster.local",
        *,
        root_cert: Path | None = None,
        root_key: Path | None = None,
        key_type: str = "ec",
    ) -> tuple[CertificateAuthority, bool]:
        """Load the CA in `directory`, or create it there: a self-signed root, or an
        intermediate signed by the operator's `root_cert`/`root_key`. True when created."""
        check_trust_domain(trust_domain)
        if (root_cert is None) != (root_key is None):
            raise CaError("--root-cert and --root-key go together")
        if (directory / KEY_FILE).exists():
            ca = cls.load(directory)
            if ca.trust_domain != trust_domain:
                raise CaError(
                    f"{directory}: holds a CA for trust domain {ca.trust_domain!r},"
                    f" not {trust_domain!r}"
                )
            return ca, False
        key = generate_key(key_type)
        if root_cert is None or root_key is None:
            cert = ca_certificate(
                key,
                common_name="fastmesh root CA",
                organization=trust_domain,
                lifetime=ROOT_LIFETIME,
            )
            bundle = TrustBundle(trust_domain, (cert,))
        else:
            roots = load_certs(root_cert.read_bytes(), str(root_cert))
            operator_key = load_key(root_key.read_bytes(), str(root_key))
            if roots[0].public_key() != operator_key.public_key():
                raise CaError(f"{root_key}: not the key of the first certificate in {root_cert}")
            cert = ca_certificate(
                key,
                common_name="fastmesh intermediate CA",
                organization=trust_domain,
                lifetime=INTERMEDIATE_LIFETIME,
                issuer=(roots[0], operator_key),
                path_length=0,
            )
            bundle = TrustBundle(trust_domain, (roots[-1],))
        ca = cls(trust_domain, key, cert, bundle, directory)
        ca.save()
        return ca, True

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        try:
            meta = json.loads((directory / META_FILE).read_text())
            key = load_key((directory / KEY_FILE).read_bytes(), str(directory / KEY_FILE))
            [cert] = load_certs((directory / CERT_FILE).read_bytes(), str(directory / CERT_FILE))
            bundle_pem = (directory / BUNDLE_FILE).read_bytes()
        except (OSError, ValueError, KeyError) as exc:
            raise CaError(f"{directory}: not a fastmesh CA directory ({exc})") from None
        if cert.public_key() != key.public_key():
            raise CaError(f"{directory / KEY_FILE}: does not match {directory / CERT_FILE}")
        trust_domain = check_trust_domain(str(meta["trust_domain"]))
        bundle = TrustBundle.from_pem(trust_domain, bundle_pem)
        return cls(trust_domain, key, cert, bundle, directory)

    def save(self) -> None:
        if self.directory is None:
            raise CaError("this CA has no directory to save to")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = "intermediate" if self.is_intermediate else "root"
        _write(self.directory / KEY_FILE, key_pem(self.key), 0o600)
        _write(self.directory / CERT_FILE, certs_pem([self.cert]), 0o644)
        _write(self.directory / BUNDLE_FILE, self.bundle.pem(), 0o644)
        meta = {"trust_domain": self.trust_domain, "mode": mode}
        _write(self.directory / META_FILE, json.dumps(meta, indent=1).encode() + b"\n", 0o644)

    def rotate(self, key_type: str = "ec") -> None:
        """A new root signs from now on; the old roots stay in the bundle (the overlap), so
        SVIDs they signed keep working until they are renewed. Saved when it has a directory."""
        if self.is_intermediate:
            raise CaError(
                "this CA is an intermediate under the operator's root: rotate that root, then"
                " run `fastmesh ca init --root-cert/--root-key` again in a fresh directory"
            )
        key = generate_key(key_type)
        cert = ca_certificate(
            key,
            common_name="fastmesh root CA",
            organization=self.trust_domain,
            lifetime=ROOT_LIFETIME,
        )
        old = self.bundle.unexpired().roots
        self.key, self.cert = key, cert
        self.bundle = TrustBundle(self.trust_domain, (cert, *old))
        if self.directory is not None:
            self.save()

    def end_overlap(self) -> None:
        """Trust only the current root (once every SVID has been re-issued under it)."""
        root = self.bundle.roots[-1] if self.is_intermediate else self.cert
        self.bundle = TrustBundle(self.trust_domain, (root,))
        if self.directory is not None:
            self.save()

    # --- signing -----------------------------------------------------------------------

    def sign_csr(self, csr_pem: bytes, identity: SpiffeId, ttl: dt.timedelta = DEFAULT_TTL) -> Svid:
        """Issue an X.509-SVID for `identity` (the caller's authenticated identity).

        The CSR must be well signed with an ECDSA P-256/P-384 or RSA >= 2048 key, and may ask
        for no SAN (the identity is filled in) or exactly the URI SAN of `identity`; any
        other request raises `NotEntitled`.
        """
        if identity.trust_domain != self.trust_domain:
            raise NotEntitled(f"{identity}: not in this CA's trust domain {self.trust_domain!r}")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CaError(f"not a PEM certificate signing request ({exc})") from None
        if not csr.is_signature_valid:
            raise CaError("the CSR's signature does not verify")
        public_key = csr.public_key()
        _check_public_key(public_key)
        self._check_requested_names(csr, identity)
        if ttl <= dt.timedelta(0):
            raise CaError(f"ttl {ttl}: must be positive")
        assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        cert = leaf_certificate(
            public_key,
            identity.uri,
            organization=self.trust_domain,
            issuer=self.cert,
            issuer_key=self.key,
            ttl=ttl,
        )
        return Svid(identity, cert, (self.cert,) if self.is_intermediate else ())

    @staticmethod
    def _check_requested_names(csr: x509.CertificateSigningRequest, identity: SpiffeId) -> None:
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        others = [n for n in san if not isinstance(n, x509.UniformResourceIdentifier)]
        if uris != [identity.uri] or others:
            asked = ", ".join([*uris, *(str(n.value) for n in others)]) or "nothing"
            raise NotEntitled(
                f"the CSR asks for {asked}; the caller is entitled to {identity.uri} only"
            )


def _check_public_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CaError(f"CSR key on curve {key.curve.name}: only P-256 and P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CaError(f"CSR RSA key of {key.key_size} bits: at least 2048")
    else:
        raise CaError(f"CSR key type {type(key).__name__}: only ECDSA and RSA")
