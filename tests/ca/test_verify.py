"""`verify_svid` refuses every certificate that breaks a SPIFFE X.509-SVID rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fastmesh.ca import CertificateAuthority, SpiffeId, SvidError, new_workload_key, verify_svid

TD = "cluster.local"
ALICE = SpiffeId(TD, "shop", "alice")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.init(Path(tmp_path_factory.mktemp("ca")) / "ca", TD)[0]


def usage(**flags: bool) -> x509.KeyUsage:
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def forge(
    ca: CertificateAuthority,
    *,
    uris: tuple[str, ...] = (ALICE.uri,),
    ca_flag: bool | None = False,
    key_usage: x509.KeyUsage | bool | None = None,
    key_usage_critical: bool = True,
    expired: bool = False,
    signer: Any = None,
) -> x509.Certificate:
    """A leaf like the CA's, with one thing changed."""
    now = dt.datetime.now(dt.UTC)
    start = now - (dt.timedelta(days=2) if expired else dt.timedelta(minutes=1))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]))
        .issuer_name(ca.cert.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=1))
    )
    if ca_flag is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True
        )
    if key_usage is not False:
        ku = key_usage if isinstance(key_usage, x509.KeyUsage) else usage(digital_signature=True)
        builder = builder.add_extension(ku, critical=key_usage_critical)
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(signer or ca.key, hashes.SHA256())


def test_a_well_formed_forgery_of_ours_verifies(ca: CertificateAuthority) -> None:
    assert verify_svid(forge(ca), ca.bundle) == ALICE  # the baseline the cases below break
    assert verify_svid(forge(ca, ca_flag=None), ca.bundle) == ALICE  # cA=false by omission


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"uris": ()}, "no subjectAltName"),
        ({"uris": (ALICE.uri, "spiffe://cluster.local/ns/shop/sa/bob")}, "2 URI SANs"),
        ({"uris": ("spiffe://evil.example/ns/shop/sa/alice",)}, "not of trust domain"),
        ({"uris": ("https://alice.shop",)}, "not a spiffe:// URI"),
        ({"ca_flag": True}, "cA=true"),
        ({"key_usage": usage(key_encipherment=True)}, "lacks digitalSignature"),
        ({"key_usage_critical": False}, "not critical"),
        ({"key_usage": usage(digital_signature=True, key_cert_sign=True)}, "keyCertSign"),
        ({"expired": True}, "not valid now"),
        ({"signer": ec.generate_private_key(ec.SECP256R1())}, "does not chain"),
    ],
)
def test_each_broken_rule_is_refused(
    ca: CertificateAuthority, change: dict[str, Any], error: str
) -> None:
    with pytest.raises(SvidError, match=error):
        verify_svid(forge(ca, **change), ca.bundle)


def test_a_leaf_without_key_usage_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(SvidError, match="no KeyUsage"):
        verify_svid(forge(ca, key_usage=False), ca.bundle)


def test_a_real_svid_is_refused_by_another_trust_domain(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other, _ = CertificateAuthority.init(tmp_path / "other", "other.example")
    svid = ca.sign_csr(new_workload_key(ALICE).csr_pem(), ALICE)
    with pytest.raises(SvidError, match=r"not of trust domain 'other\.example'"):
        verify_svid(svid.cert, other.bundle)
