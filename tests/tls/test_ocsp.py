"""`TlsCertificate.ocsp_staple` and `ocsp_staple_policy`: the listener staples the OCSP
response for clients that ask (`openssl s_client -status`); an expired one is left out
(LENIENT_STAPLING) or fails the handshake (STRICT_STAPLING, MUST_STAPLE, and any policy for
an OCSP must-staple certificate, which also needs a staple), under Envoy and fastmesh-proxy
alike."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fastmesh.config import ConfigError, translate_bootstrap
from tests.conftest import StartProxy
from tests.support import bootstrap, free_port, run_proxy
from tests.support.pki import Pki

from ._tls import Json, answering_chain, downstream_tls, s_client, tls_listener

STAPLED = "OCSP Response Status: successful"
NOT_STAPLED = "OCSP response: no response sent"


def _config(port: int, admin: int, certificate: Json, **context: object) -> Json:
    socket = downstream_tls(certificate, **context)
    chain = answering_chain("stapled", "stapled", socket)
    return bootstrap(admin_port=admin, listeners=[tls_listener("l", port, [chain])], clusters=[])


@pytest.mark.parametrize("policy", [None, "STRICT_STAPLING", "MUST_STAPLE"])
def test_a_current_staple_is_sent_to_clients_that_ask(
    binary: str, start_proxy: StartProxy, tmp_path: Path, policy: str | None
) -> None:
    pki = Pki(tmp_path / "pki")
    leaf = pki.issue("stapled.test")
    cert = {**leaf.tls_certificate(), "ocsp_staple": {"filename": str(pki.ocsp_staple(leaf))}}
    context = {} if policy is None else {"ocsp_staple_policy": policy}
    port, admin = free_port(), free_port()
    start_proxy(_config(port, admin, cert, **context), binary=binary)
    asked = s_client(port, "stapled.test", "-status")
    assert asked.ok, asked.output
    assert STAPLED in asked.output and "Cert Status: good" in asked.output
    not_asked = s_client(port, "stapled.test")
    assert not_asked.ok and "OCSP" not in not_asked.output, not_asked.output


@pytest.mark.parametrize(
    ("policy", "served"), [("LENIENT_STAPLING", True), ("STRICT_STAPLING", False)]
)
def test_an_expired_staple_is_left_out_or_fails_the_handshake(
    binary: str, start_proxy: StartProxy, tmp_path: Path, policy: str, served: bool
) -> None:
    pki = Pki(tmp_path / "pki")
    leaf = pki.issue("stapled.test")
    staple = pki.ocsp_staple(leaf, expired=True)
    cert = {**leaf.tls_certificate(), "ocsp_staple": {"filename": str(staple)}}
    port, admin = free_port(), free_port()
    start_proxy(_config(port, admin, cert, ocsp_staple_policy=policy), binary=binary)
    shake = s_client(port, "stapled.test", "-status")
    assert shake.ok == served, shake.output
    if served:
        assert NOT_STAPLED in shake.output, shake.output


@pytest.mark.parametrize(
    ("staple", "policy", "error"),
    [
        (
            None,
            "MUST_STAPLE",
            "ocsp_staple_policy: MUST_STAPLE needs the certificate's ocsp_staple",
        ),
        (
            "other",
            None,
            "ocsp_staple: {file}: the OCSP response is not for the certificate_chain's leaf",
        ),
        (
            "text",
            None,
            "ocsp_staple.inline_string: a DER OCSP response: use filename or inline_bytes",
        ),
        ("garbage", None, "ocsp_staple: {file}: not a DER OCSP response"),
    ],
)
def test_a_bad_staple_or_policy_is_refused_with_its_path(
    tmp_path: Path, staple: str | None, policy: str | None, error: str
) -> None:
    pki = Pki(tmp_path / "pki")
    leaf = pki.issue("stapled.test")
    cert: Json = leaf.tls_certificate()
    file = tmp_path / "staple.der"
    if staple == "other":
        file = pki.ocsp_staple(pki.issue("other.test"))
    elif staple == "garbage":
        file.write_bytes(b"\x30\x03abc")
    if staple == "text":
        cert["ocsp_staple"] = {"inline_string": "x"}
    elif staple is not None:
        cert["ocsp_staple"] = {"filename": str(file)}
    context = {} if policy is None else {"ocsp_staple_policy": policy}
    with pytest.raises(ConfigError) as exc:
        translate_bootstrap(_config(1, 2, cert, **context), "envoy.yaml")
    base = (
        "envoy.yaml: static_resources.listeners[0].filter_chains[0].transport_socket.typed_config"
    )
    cert_at = ".common_tls_context.tls_certificates[0]."
    where = base + ("." if staple is None else cert_at)
    assert where + error.format(file=file) in str(exc.value)


def _ocsp_stats(admin_url: str, port: int) -> dict[str, int]:
    ssl = f"listener.127.0.0.1_{port}.ssl."
    lines = httpx.get(f"{admin_url}/stats", timeout=10).text.splitlines()
    pairs = (line.partition(": ") for line in lines)
    return {
        k.removeprefix(ssl): int(v)
        for k, _, v in pairs
        if k.startswith(ssl) and ("ocsp_staple" in k or k.endswith(("handshake", "_error")))
    }


@pytest.mark.parametrize("expired", [False, True])
def test_a_must_staple_certificate_is_served_as_under_must_staple(
    binary: str, start_proxy: StartProxy, tmp_path: Path, expired: bool
) -> None:
    """RFC 7633's must-staple certificate under the default LENIENT_STAPLING: an expired
    staple fails the handshake of a client that asks, as Envoy upgrades the policy."""
    pki = Pki(tmp_path / "pki")
    leaf = pki.issue("must.test", must_staple=True)
    cert = {
        **leaf.tls_certificate(),
        "ocsp_staple": {"filename": str(pki.ocsp_staple(leaf, expired=expired))},
    }
    port, admin = free_port(), free_port()
    p = start_proxy(_config(port, admin, cert), binary=binary)
    asked = s_client(port, "must.test", "-status")
    assert asked.ok == (not expired), asked.output
    assert s_client(port, "must.test").ok  # a client that does not ask is served
    assert _ocsp_stats(p.admin_url, port) == {
        "handshake": 1 if expired else 2,
        "connection_error": 1 if expired else 0,
        "fail_verify_error": 0,
        "ocsp_staple_requests": 1,
        "ocsp_staple_responses": 0 if expired else 1,
        "ocsp_staple_omitted": 0,
        "ocsp_staple_failed": 1 if expired else 0,
    }


def test_a_must_staple_certificate_without_a_staple_is_refused(binary: str, tmp_path: Path) -> None:
    """As Envoy ("OCSP response is required for must-staple certificate"), whatever the
    policy: neither proxy starts; fastmesh's translator names the certificate."""
    pki = Pki(tmp_path / "pki")
    cert = pki.issue("must.test", must_staple=True).tls_certificate()
    config = _config(free_port(), free_port(), cert)
    with run_proxy(config, binary=binary, workdir=tmp_path, wait_ready=False) as p:
        assert p.wait_exit(timeout=20) != 0, p.log_tail()
    with pytest.raises(ConfigError) as exc:
        translate_bootstrap(config, "envoy.yaml")
    assert (
        "envoy.yaml: static_resources.listeners[0].filter_chains[0].transport_socket."
        "typed_config.common_tls_context.tls_certificates[0]: the certificate is OCSP "
        "must-staple (TLS feature status_request): it needs an ocsp_staple"
    ) in str(exc.value)
