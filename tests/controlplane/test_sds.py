"""SDS without sockets: the issuer's secrets through the hub and an xDS session, and renewal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trio
from cryptography import x509
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from fastmesh.ca import CertificateAuthority, SpiffeId, TrustBundle, verify_svid
from fastmesh.cli import main as fastmesh
from fastmesh.controlplane import MeshConfig, Session, SnapshotHub
from fastmesh.controlplane._resources import SECRET
from fastmesh.controlplane._sds import SecretIssuer

TD = "cluster.local"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "ca", TD)[0]


def node(namespace: str = "shop", account: str = "reviews") -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": namespace, "SERVICE_ACCOUNT": account})
    return base_pb2.Node(id=f"sidecar~10.0.0.1~{account}-v1.{namespace}~x", metadata=metadata)


def ask(names: list[str], *, nonce: str = "", version: str = "") -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(
        node=node(),
        type_url=SECRET,
        resource_names=names,
        response_nonce=nonce,
        version_info=version,
    )


def secrets(response: discovery_pb2.DiscoveryResponse) -> dict[str, secret_pb2.Secret]:
    out = {}
    for packed in response.resources:
        secret = secret_pb2.Secret()
        assert packed.Unpack(secret)
        out[secret.name] = secret
    return out


def chain_pem(secret: secret_pb2.Secret) -> bytes:
    return bytes(secret.tls_certificate.certificate_chain.inline_bytes)


def session_for(ca: CertificateAuthority, ttl: dt.timedelta) -> tuple[Session, SnapshotHub]:
    issuer = SecretIssuer(ca, ttl=ttl)
    hub = SnapshotHub(secrets=issuer)
    hub.publish(MeshConfig())
    issuer.on_change = hub.touch
    return Session(snapshots=hub.snapshot_for), hub


def test_default_and_rootca_for_the_nodes_identity(ca: CertificateAuthority) -> None:
    session, _ = session_for(ca, dt.timedelta(hours=24))
    [response] = session.receive(ask(["default", "ROOTCA", "file-cert:unknown"]))
    got = secrets(response)
    assert set(got) == {"default", "ROOTCA"}  # only names we have are sent
    chain = x509.load_pem_x509_certificates(chain_pem(got["default"]))
    bundle = TrustBundle.from_pem(TD, got["ROOTCA"].validation_context.trusted_ca.inline_bytes)
    assert bundle.roots == ca.bundle.roots
    assert verify_svid(chain, bundle) == SpiffeId(TD, "shop", "reviews")
    assert b"PRIVATE KEY" in got["default"].tls_certificate.private_key.inline_bytes
    # the ACK changes nothing: no new response
    assert session.receive(ask(["default", "ROOTCA"], nonce=response.nonce)) == []
    assert session.describe() == {"SDS": "SYNCED"}


async def test_renewal_at_half_life_pushes_a_new_default_secret(ca: CertificateAuthority) -> None:
    session, hub = session_for(ca, dt.timedelta(seconds=0.4))
    [first] = session.receive(ask(["default", "ROOTCA"]))
    assert session.receive(ask(["default", "ROOTCA"], nonce=first.nonce)) == []
    issuer = hub.secrets
    assert isinstance(issuer, SecretIssuer)
    generation = hub.generation
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(issuer.run)
            await hub.wait_beyond(generation)
            nursery.cancel_scope.cancel()
    assert session.proxy is not None
    [pushed] = session.update(hub.snapshot_for(session.proxy))
    old, new = secrets(first), secrets(pushed)
    assert set(new) == {"default"}  # only what changed: the proxy keeps its ROOTCA
    assert new["default"] != old["default"]
    cert = x509.load_pem_x509_certificate(chain_pem(new["default"]))
    assert cert.serial_number == issuer.issued[SpiffeId(TD, "shop", "reviews")].serial


def test_a_root_rotation_pushes_the_new_bundle(ca: CertificateAuthority) -> None:
    session, hub = session_for(ca, dt.timedelta(hours=24))
    [first] = session.receive(ask(["ROOTCA"]))
    session.receive(ask(["ROOTCA"], nonce=first.nonce))
    ca.rotate()
    hub.touch()
    assert session.proxy is not None
    [pushed] = session.update(hub.snapshot_for(session.proxy))
    roots = x509.load_pem_x509_certificates(
        secrets(pushed)["ROOTCA"].validation_context.trusted_ca.inline_bytes
    )
    assert len(roots) == 2 and roots[0] == ca.cert


def test_serve_refuses_a_missing_ca_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["controlplane", "serve", "--config-dir", str(tmp_path), "--port", "0"]
    assert fastmesh([*args, "--ca-dir", str(tmp_path / "nope")]) == 2
    assert "not a fastmesh CA directory" in capsys.readouterr().err
