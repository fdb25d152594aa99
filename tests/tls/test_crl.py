"""`CertificateValidationContext.crl`: a peer whose certificate the CRL revokes is refused,
a client by a listener requiring client certificates and a server by a cluster, under
Envoy and fastmesh-proxy alike (the same config, the same outcomes and counters)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fastmesh.config import ConfigError, translate_bootstrap
from tests.conftest import StartProxy
from tests.support import bootstrap, cluster, free_port, http_listener, prefix, route, virtual_host
from tests.support.pki import Leaf, Pki

from ._tls import answering_chain, curl, downstream_tls, tls_listener, upstream_tls


def test_a_revoked_client_certificate_is_refused(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    server = pki.issue("server.test")
    good, revoked = pki.issue("good", client=True), pki.issue("revoked", client=True)
    crl = pki.crl([revoked])
    port, admin = free_port(), free_port()
    socket = downstream_tls(
        server.tls_certificate(),
        require_client_certificate=True,
        validation_context={
            "trusted_ca": {"filename": str(pki.ca_file)},
            "crl": {"filename": str(crl)},
        },
    )
    listener = tls_listener("mtls", port, [answering_chain("hello", "mtls", socket)])
    p = start_proxy(bootstrap(admin_port=admin, listeners=[listener], clusters=[]), binary=binary)

    def with_cert(leaf: Leaf) -> tuple[int, str]:
        return curl(port, "server.test", "--cert", str(leaf.cert_file), "--key", str(leaf.key_file))

    assert with_cert(good) == (0, "hello")
    status, body = with_cert(revoked)
    assert status != 0 and body == ""
    assert with_cert(good) == (0, "hello")
    ssl = f"listener.127.0.0.1_{port}.ssl"
    assert p.counter(f"{ssl}.fail_verify_error") == 1
    assert p.counter(f"{ssl}.connection_error") == 0
    assert p.counter(f"{ssl}.handshake") == 2


def test_a_rotated_crl_file_is_reloaded(start_proxy: StartProxy, tmp_path: Path) -> None:
    """fastmesh-proxy watches the files its config reads (Envoy would need a restart or
    SDS): a CRL rewritten to revoke the client is applied live."""
    pki = Pki(tmp_path / "pki")
    client = pki.issue("client", client=True)
    crl = pki.crl([])
    port, admin = free_port(), free_port()
    socket = downstream_tls(
        pki.issue("server.test").tls_certificate(),
        require_client_certificate=True,
        validation_context={
            "trusted_ca": {"filename": str(pki.ca_file)},
            "crl": {"filename": str(crl)},
        },
    )
    listener = tls_listener("mtls", port, [answering_chain("hello", "mtls", socket)])
    p = start_proxy(bootstrap(admin_port=admin, listeners=[listener], clusters=[]))
    cert = ("--cert", str(client.cert_file), "--key", str(client.key_file))
    assert curl(port, "server.test", *cert) == (0, "hello")
    revoking = pki.crl([client], "next.pem")
    revoking.replace(crl)  # as a rotation tool does: renamed over the old file
    deadline = time.monotonic() + 30
    while curl(port, "server.test", *cert)[0] == 0:
        assert time.monotonic() < deadline, "the new CRL was not applied"
        time.sleep(0.2)
    assert p.counter("server.config_reload_success") >= 1


@pytest.mark.parametrize(
    ("leaf_only", "revoke", "accepted"),
    [(False, False, False), (True, False, True), (True, True, False)],
)
def test_without_a_crl_from_every_ca_only_the_leaf_can_be_checked(
    binary: str,
    start_proxy: StartProxy,
    tmp_path: Path,
    leaf_only: bool,
    revoke: bool,
    accepted: bool,
) -> None:
    """The client's chain is leaf <- intermediate <- root; the CRL is the intermediate's
    only, so the intermediate's own status is unknown: refused unless only the leaf is
    checked (`only_verify_leaf_cert_crl`), where the leaf's revocation still counts."""
    root = Pki(tmp_path / "root", "root-ca")
    intermediate = Pki(tmp_path / "intermediate", "intermediate-ca", parent=root)
    client = intermediate.issue("client", client=True)
    crl = intermediate.crl([client] if revoke else [])
    port, admin = free_port(), free_port()
    socket = downstream_tls(
        root.issue("server.test").tls_certificate(),
        require_client_certificate=True,
        validation_context={
            "trusted_ca": {"filename": str(root.ca_file)},
            "crl": {"filename": str(crl)},
            "only_verify_leaf_cert_crl": leaf_only,
        },
    )
    listener = tls_listener("mtls", port, [answering_chain("hello", "mtls", socket)])
    start_proxy(bootstrap(admin_port=admin, listeners=[listener], clusters=[]), binary=binary)
    cert = ("--cert", str(client.cert_file), "--key", str(client.key_file))
    status, body = curl(port, "server.test", *cert)
    assert (status == 0, body) == (accepted, "hello" if accepted else "")


def test_a_cluster_refuses_a_revoked_server_certificate(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    good, revoked = pki.issue("good.test"), pki.issue("revoked.test")
    # Inline this time: the CRL as an inline_string DataSource.
    crl = {"inline_string": pki.crl([revoked]).read_text()}
    ports = {name: free_port() for name in ("front", "good", "revoked", "admin")}
    listeners = [
        tls_listener(
            name,
            ports[name],
            [answering_chain(name, name, downstream_tls(leaf.tls_certificate()))],
        )
        for name, leaf in (("good", good), ("revoked", revoked))
    ]
    routes = [route(prefix(f"/{n}"), cluster=n) for n in ("good", "revoked")]
    listeners.append(http_listener("front", ports["front"], [virtual_host("all", ["*"], routes)]))
    clusters = []
    for name in ("good", "revoked"):
        c = cluster(name, [("127.0.0.1", ports[name])])
        c["transport_socket"] = upstream_tls(
            {"trusted_ca": {"filename": str(pki.ca_file)}, "crl": crl}, sni=f"{name}.test"
        )
        clusters.append(c)
    p = start_proxy(
        bootstrap(admin_port=ports["admin"], listeners=listeners, clusters=clusters),
        binary=binary,
    )
    front = f"http://127.0.0.1:{ports['front']}"
    ok = httpx.get(f"{front}/good", timeout=20)
    assert (ok.status_code, ok.text) == (200, "good")
    assert httpx.get(f"{front}/revoked", timeout=20).status_code == 503
    assert p.counter("cluster.revoked.ssl.fail_verify_error") == 1
    assert p.counter("cluster.revoked.ssl.connection_error") == 0
    assert p.counter("cluster.good.ssl.handshake") == 1
    assert p.counter("cluster.revoked.ssl.handshake") == 0


@pytest.mark.parametrize(
    ("with_ca", "crl", "error"),
    [
        (True, "not a crl", "crl: the inline value: not a PEM certificate revocation list"),
        (False, None, "crl needs trusted_ca"),
        (True, "v1", "a v1 CRL (without extensions) is not supported"),
    ],
)
def test_a_bad_crl_is_refused_with_its_path(
    tmp_path: Path, with_ca: bool, crl: str | None, error: str
) -> None:
    pki = Pki(tmp_path / "pki")
    text = pki.crl([], v1=crl == "v1").read_text() if crl in (None, "v1") else crl
    context: dict[str, object] = {"crl": {"inline_string": text}}
    if with_ca:
        context["trusted_ca"] = {"filename": str(pki.ca_file)}
    socket = downstream_tls(pki.issue("s.test").tls_certificate(), validation_context=context)
    chain = answering_chain("x", "x", socket)
    cfg = bootstrap(admin_port=1, listeners=[tls_listener("l", 1, [chain])], clusters=[])
    with pytest.raises(ConfigError) as exc:
        translate_bootstrap(cfg, "envoy.yaml")
    assert (
        "envoy.yaml: static_resources.listeners[0].filter_chains[0].transport_socket.typed_config"
        ".common_tls_context.validation_context" in str(exc.value)
    )
    assert error in str(exc.value)
