"""`verify_certificate_hash` and `verify_certificate_spki` (certificate pinning) in a
validation context, both ways: a peer whose leaf matches no hash and no pin is refused and
counted in `ssl.fail_verify_cert_hash`, under Envoy and fastmesh-proxy alike; pins work
without a trusted CA; a bad digest is a config error at its path."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization

from fastmesh.config import ConfigError, translate_bootstrap
from tests.conftest import StartProxy
from tests.support import bootstrap, cluster, free_port, http_listener, prefix, route, virtual_host
from tests.support.pki import Leaf, Pki

from ._tls import Json, answering_chain, curl, downstream_tls, tls_listener, upstream_tls


def fingerprint(leaf: Leaf) -> str:
    """`openssl x509 -noout -fingerprint -sha256`: 32 colon-separated upper-case pairs."""
    return leaf.cert.fingerprint(hashes.SHA256()).hex(":").upper()


def spki_pin(leaf: Leaf) -> str:
    """HPKP's pin: base64 of the SHA-256 of the DER SubjectPublicKeyInfo."""
    spki = leaf.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _ssl_stats(admin_url: str, ssl: str) -> dict[str, int]:
    lines = httpx.get(f"{admin_url}/stats", timeout=10).text.splitlines()
    pairs = (line.partition(": ") for line in lines)
    keep = ("handshake", "connection_error", "fail_verify_cert_hash", "fail_verify_no_cert")
    return {
        k.removeprefix(ssl + "."): int(v) for k, _, v in pairs if k in {f"{ssl}.{n}" for n in keep}
    }


@pytest.mark.parametrize("pin", ["hash", "spki"])
def test_a_listener_accepts_only_pinned_client_certificates(
    binary: str, start_proxy: StartProxy, tmp_path: Path, pin: str
) -> None:
    pki = Pki(tmp_path / "pki")
    pinned, other = pki.issue("pinned", client=True), pki.issue("other", client=True)
    # By hash with the CA; by key pin alone (no CA: the pin is the whole check).
    validation: Json = (
        {
            "trusted_ca": {"filename": str(pki.ca_file)},
            "verify_certificate_hash": [fingerprint(pinned)],
        }
        if pin == "hash"
        else {"verify_certificate_spki": ["A" * 43 + "=", spki_pin(pinned)]}
    )
    # No require_client_certificate: as Envoy, pins make a client certificate mandatory.
    socket = downstream_tls(
        pki.issue("server.test").tls_certificate(), validation_context=validation
    )
    port, admin = free_port(), free_port()
    listener = tls_listener("l", port, [answering_chain("pinned", "l", socket)])
    p = start_proxy(bootstrap(admin_port=admin, listeners=[listener], clusters=[]), binary=binary)

    def with_cert(leaf: Leaf) -> tuple[int, str]:
        return curl(port, "server.test", "--cert", str(leaf.cert_file), "--key", str(leaf.key_file))

    assert with_cert(pinned) == (0, "pinned")
    assert with_cert(other)[0] != 0
    assert curl(port, "server.test")[0] != 0
    assert _ssl_stats(p.admin_url, f"listener.127.0.0.1_{port}.ssl") == {
        "handshake": 1,
        "connection_error": 0,
        "fail_verify_cert_hash": 1,
        "fail_verify_no_cert": 1,
    }


def test_a_cluster_accepts_only_a_pinned_server(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    server = pki.issue("b.test")
    front, backend, admin = free_port(), free_port(), free_port()
    chain = answering_chain("backend", "backend", downstream_tls(server.tls_certificate()))
    pinned = cluster("pinned", [("127.0.0.1", backend)])
    # Pins without a CA (self-made peers are fine), hex in lower case.
    pinned["transport_socket"] = upstream_tls(
        {"verify_certificate_spki": [spki_pin(server)]}, sni="b.test"
    )
    wrong = cluster("wrong", [("127.0.0.1", backend)])
    wrong["transport_socket"] = upstream_tls(
        {
            "trusted_ca": {"filename": str(pki.ca_file)},
            "verify_certificate_hash": [fingerprint(pki.issue("x.test")).replace(":", "").lower()],
        },
        sni="b.test",
    )
    routes = [route(prefix("/wrong"), cluster="wrong"), route(prefix("/"), cluster="pinned")]
    cfg = bootstrap(
        admin_port=admin,
        listeners=[
            tls_listener("backend", backend, [chain]),
            http_listener("front", front, [virtual_host("all", ["*"], routes)]),
        ],
        clusters=[pinned, wrong],
    )
    p = start_proxy(cfg, binary=binary)
    assert httpx.get(f"http://127.0.0.1:{front}/", timeout=20).text == "backend"
    assert httpx.get(f"http://127.0.0.1:{front}/wrong", timeout=20).status_code == 503
    assert _ssl_stats(p.admin_url, "cluster.pinned.ssl")["fail_verify_cert_hash"] == 0
    assert _ssl_stats(p.admin_url, "cluster.wrong.ssl")["fail_verify_cert_hash"] >= 1


_BASE = "envoy.yaml: static_resources.listeners[0].filter_chains[0].transport_socket.typed_config"
_AT = _BASE + ".common_tls_context.validation_context"


@pytest.mark.parametrize(
    ("validation", "error"),
    [
        (
            {"verify_certificate_hash": ["ab" * 31]},
            ".verify_certificate_hash[0]: expected a hex SHA-256 of the certificate: 64 hex "
            "digits, or 32 colon-separated pairs (openssl x509 -noout -fingerprint -sha256), "
            f"got '{'ab' * 31}'",
        ),
        (
            # Colons are Envoy's only at the fingerprint's length.
            {"verify_certificate_hash": ["ab:" * 31 + "abab"]},
            ".verify_certificate_hash[0]: expected a hex SHA-256",
        ),
        (
            {"verify_certificate_spki": ["x" * 44]},
            ".verify_certificate_spki[0]: expected a base64 SHA-256 of the certificate's "
            "SubjectPublicKeyInfo: 44 characters ending in '=', got '" + "x" * 44 + "'",
        ),
        (
            {"verify_certificate_spki": [7]},
            ".verify_certificate_spki[0]: expected a base64 SHA-256",
        ),
        (
            {
                "verify_certificate_spki": ["A" * 43 + "="],
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "a"}}],
            },
            ": match_typed_subject_alt_names needs trusted_ca",
        ),
    ],
)
def test_a_bad_pin_is_refused_with_its_path(tmp_path: Path, validation: Json, error: str) -> None:
    pki = Pki(tmp_path / "pki")
    socket = downstream_tls(pki.issue("s.test").tls_certificate(), validation_context=validation)
    listener = tls_listener("l", 1, [answering_chain("x", "l", socket)])
    with pytest.raises(ConfigError) as exc:
        translate_bootstrap(
            bootstrap(admin_port=2, listeners=[listener], clusters=[]), "envoy.yaml"
        )
    assert _AT + error in str(exc.value)


def test_pins_alone_verify(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    leaf = pki.issue("s.test")
    socket = downstream_tls(
        leaf.tls_certificate(),
        validation_context={"verify_certificate_hash": [fingerprint(leaf)]},
    )
    listener = tls_listener("l", 1, [answering_chain("x", "l", socket)])
    cfg = bootstrap(admin_port=2, listeners=[listener], clusters=[])
    [tls] = [lst["tls"] for lst in translate_bootstrap(cfg, "e.yaml").snapshot["listeners"]]
    assert tls["validation"] == {"verify_certificate_hash": [fingerprint(leaf)]}


def test_san_matchers_also_make_a_client_certificate_mandatory(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    validation = {
        "trusted_ca": {"filename": str(pki.ca_file)},
        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "c.test"}}],
    }
    socket = downstream_tls(pki.issue("s.test").tls_certificate(), validation_context=validation)
    port, admin = free_port(), free_port()
    listener = tls_listener("l", port, [answering_chain("ok", "l", socket)])
    p = start_proxy(bootstrap(admin_port=admin, listeners=[listener], clusters=[]), binary=binary)
    client = pki.issue("c.test", client=True)
    assert curl(port, "s.test", "--cert", str(client.cert_file), "--key", str(client.key_file)) == (
        0,
        "ok",
    )
    assert curl(port, "s.test")[0] != 0
    assert _ssl_stats(p.admin_url, f"listener.127.0.0.1_{port}.ssl")["fail_verify_no_cert"] == 1
