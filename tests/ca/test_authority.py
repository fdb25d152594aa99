"""The CA: init/load, intermediate under an operator root, signing rules, root rotation."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fastmesh.ca import (
    CaError,
    CertificateAuthority,
    NotEntitled,
    SpiffeId,
    new_workload_key,
    renew_at,
    verify_svid,
)
from fastmesh.cli import main as fastmesh

TD = "cluster.local"
ALICE = SpiffeId(TD, "shop", "alice")


def csr(
    identity: SpiffeId | None, *uris: str, key: ec.EllipticCurvePrivateKey | None = None
) -> bytes:
    """A CSR for `identity`'s URI, or for exactly `uris` (none: no SAN at all)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = [identity.uri] if identity is not None else list(uris)
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "w")])
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in names]),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    authority, created = CertificateAuthority.init(tmp_path / "ca", TD)
    assert created
    return authority


def test_init_creates_a_root_with_a_private_key_file_and_loads_it_again(tmp_path: Path) -> None:
    assert fastmesh(["ca", "init", "--dir", str(tmp_path / "ca"), "--trust-domain", TD]) == 0
    key_file = tmp_path / "ca" / "ca-key.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    first = CertificateAuthority.load(tmp_path / "ca")
    assert not first.is_intermediate and first.bundle.roots == (first.cert,)
    again, created = CertificateAuthority.init(tmp_path / "ca", TD)
    assert not created and again.cert == first.cert
    with pytest.raises(CaError, match=r"trust domain 'cluster\.local'"):
        CertificateAuthority.init(tmp_path / "ca", "other.example")


def test_signed_svid_follows_the_spiffe_rules(ca: CertificateAuthority) -> None:
    svid = ca.sign_csr(csr(ALICE), ALICE)
    cert = svid.cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/alice"
    ]
    assert list(san) == [x509.UniformResourceIdentifier(ALICE.uri)]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_encipherment
    assert not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(hours=24) <= lifetime <= dt.timedelta(hours=24, minutes=2)
    assert verify_svid(cert, ca.bundle) == ALICE


def test_rsa_workload_keys_get_key_encipherment(ca: CertificateAuthority) -> None:
    key = new_workload_key(ALICE, "rsa")
    cert = ca.sign_csr(key.csr_pem(), ALICE).cert
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    assert verify_svid(cert, ca.bundle) == ALICE


def test_a_csr_without_a_san_gets_the_callers_identity(ca: CertificateAuthority) -> None:
    cert = ca.sign_csr(csr(None), ALICE).cert
    assert verify_svid(cert, ca.bundle) == ALICE


@pytest.mark.parametrize(
    "uris",
    [
        ("spiffe://cluster.local/ns/shop/sa/bob",),  # someone else
        ("spiffe://cluster.local/ns/kube-system/sa/alice",),  # another namespace
        ("spiffe://evil.example/ns/shop/sa/alice",),  # another trust domain
        (ALICE.uri, "spiffe://cluster.local/ns/shop/sa/bob"),  # one more
    ],
)
def test_a_csr_for_an_identity_the_caller_is_not_entitled_to_is_refused(
    ca: CertificateAuthority, uris: tuple[str, ...]
) -> None:
    with pytest.raises(NotEntitled, match=re.escape(f"entitled to {ALICE.uri} only")):
        ca.sign_csr(csr(None, *uris), ALICE)


def test_identities_outside_the_trust_domain_and_weak_keys_are_refused(
    ca: CertificateAuthority,
) -> None:
    stranger = SpiffeId("other.example", "shop", "alice")
    with pytest.raises(NotEntitled, match="trust domain"):
        ca.sign_csr(csr(stranger), stranger)
    p521 = ec.generate_private_key(ec.SECP521R1())
    with pytest.raises(CaError, match="only P-256 and P-384"):
        ca.sign_csr(csr(ALICE, key=p521), ALICE)
    with pytest.raises(CaError, match="not a PEM"):
        ca.sign_csr(b"garbage", ALICE)


def test_intermediate_under_an_operator_root(tmp_path: Path, ca: CertificateAuthority) -> None:
    root_dir = ca.directory
    assert root_dir is not None
    args = ["ca", "init", "--dir", str(tmp_path / "inter"), "--trust-domain", TD]
    operator = ["--root-cert", str(root_dir / "ca-cert.pem")]
    operator += ["--root-key", str(root_dir / "ca-key.pem")]
    assert fastmesh(args + operator) == 0
    inter = CertificateAuthority.load(tmp_path / "inter")
    assert inter.is_intermediate and inter.cert.issuer == ca.cert.subject
    assert inter.bundle.roots == (ca.cert,)
    bc = inter.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    svid = inter.sign_csr(csr(ALICE), ALICE)
    chain = x509.load_pem_x509_certificates(svid.chain_pem())
    assert chain == [svid.cert, inter.cert]
    assert verify_svid(chain, ca.bundle) == ALICE  # trusted through the operator's root
    with pytest.raises(CaError, match="intermediate"):
        inter.rotate()


def test_root_rotation_keeps_the_old_root_trusted_during_the_overlap(
    ca: CertificateAuthority,
) -> None:
    assert ca.directory is not None
    old_root = ca.cert
    before = ca.sign_csr(csr(ALICE), ALICE).cert
    assert fastmesh(["ca", "rotate", "--dir", str(ca.directory)]) == 0
    rotated = CertificateAuthority.load(ca.directory)
    assert rotated.cert != old_root
    assert rotated.bundle.roots == (rotated.cert, old_root)
    assert stat.S_IMODE(os.stat(ca.directory / "ca-key.pem").st_mode) == 0o600
    after = rotated.sign_csr(csr(ALICE), ALICE).cert
    assert after.issuer == rotated.cert.subject
    # during the overlap both the old and the new SVIDs verify against the bundle
    assert verify_svid(before, rotated.bundle) == ALICE
    assert verify_svid(after, rotated.bundle) == ALICE
    # after it, only the new root
    assert fastmesh(["ca", "rotate", "--dir", str(ca.directory), "--end-overlap"]) == 0
    final = CertificateAuthority.load(ca.directory)
    assert final.bundle.roots == (rotated.cert,)
    assert verify_svid(after, final.bundle) == ALICE
    with pytest.raises(CaError, match="does not chain"):
        verify_svid(before, final.bundle)


def test_workload_renews_at_half_life(ca: CertificateAuthority) -> None:
    key = new_workload_key(ALICE)
    cert = ca.sign_csr(key.csr_pem(), ALICE, ttl=dt.timedelta(hours=2)).cert
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    assert renew_at(cert) == start + (end - start) / 2
    # the key stays with the workload: the CSR carries only its public half
    assert cert.public_key() == key.key.public_key()
    assert b"PRIVATE" not in key.csr_pem()


def test_spiffe_ids_parse_and_refuse_bad_ones() -> None:
    assert SpiffeId.parse(ALICE.uri) == ALICE
    for bad in (
        "http://cluster.local/ns/a/sa/b",
        "spiffe://cluster.local/a/b",
        "spiffe://UP/ns/a/sa/b",
    ):
        with pytest.raises(CaError):
            SpiffeId.parse(bad)
