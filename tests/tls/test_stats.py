"""Envoy's TLS stats per listener and cluster (`ssl.handshake`, `ssl.connection_error`,
`ssl.no_certificate`, `ssl.fail_verify_*`, `ssl.ciphers.*`, `ssl.versions.*`,
`ssl.curves.*`, `ssl.sigalgs.*`): after the same handshakes, Envoy and fastmesh-proxy
count the same, in `/stats` and `/stats/prometheus`."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import StartProxy
from tests.support import bootstrap, cluster, free_port, http_listener, prefix, route, virtual_host
from tests.support.pki import Leaf, Pki

from ._tls import answering_chain, curl, downstream_tls, tls_listener, upstream_tls

TLS13 = ("--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256", "--curves", "X25519")
TLS12 = ("--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384", "--curves", "P-256")


def _ssl_counters(admin_url: str, ssl: str) -> dict[str, int]:
    """The non-zero `<ssl>.*` stats, without the certificate expiry gauges
    (`ssl.certificate.<name>.expiration_unix_time_seconds`, see test_cert_stats.py)."""
    lines = httpx.get(f"{admin_url}/stats").text.splitlines()
    pairs = (line.partition(": ") for line in lines)
    return {
        k: int(v)
        for k, _, v in pairs
        if k.startswith(ssl + ".") and ".certificate." not in k and v.isdigit() and int(v)
    }


def _client(leaf: Leaf) -> tuple[str, ...]:
    return ("--cert", str(leaf.cert_file), "--key", str(leaf.key_file))


def test_listener_handshakes_are_counted_by_outcome_and_parameters(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    client = pki.issue("client", client=True)
    port, admin = free_port(), free_port()
    socket = downstream_tls(
        pki.issue("server.test").tls_certificate(),
        require_client_certificate=True,
        validation_context={"trusted_ca": {"filename": str(pki.ca_file)}},
    )
    listener = tls_listener("l", port, [answering_chain("hi", "l", socket)])
    p = start_proxy(bootstrap(admin_port=admin, listeners=[listener], clusters=[]), binary=binary)
    for _ in range(3):
        assert curl(port, "server.test", *TLS13, *_client(client)) == (0, "hi")
    assert curl(port, "server.test", *TLS12, *_client(client)) == (0, "hi")
    assert curl(port, "server.test", *TLS13)[0] != 0  # no client certificate

    ssl = f"listener.127.0.0.1_{port}.ssl"
    got = _ssl_counters(p.admin_url, ssl)
    # As Envoy, a refused (or missing) peer certificate is not a connection_error too.
    assert got == {
        f"{ssl}.handshake": 4,
        f"{ssl}.fail_verify_no_cert": 1,
        f"{ssl}.ciphers.TLS_AES_128_GCM_SHA256": 3,
        f"{ssl}.ciphers.ECDHE-ECDSA-AES256-GCM-SHA384": 1,
        f"{ssl}.versions.TLSv1.3": 3,
        f"{ssl}.versions.TLSv1.2": 1,
        f"{ssl}.curves.X25519": 3,
        f"{ssl}.curves.P-256": 1,
        f"{ssl}.sigalgs.ecdsa_secp256r1_sha256": 4,
    }
    prom = httpx.get(f"{p.admin_url}/stats/prometheus").text.splitlines()
    at = f'envoy_listener_address="127.0.0.1_{port}"'
    for line in (
        f"envoy_listener_ssl_handshake{{{at}}} 4",
        f'envoy_listener_ssl_ciphers{{envoy_ssl_cipher="TLS_AES_128_GCM_SHA256",{at}}} 3',
        f'envoy_listener_ssl_versions{{envoy_ssl_version="TLSv1.3",{at}}} 3',
        f'envoy_listener_ssl_curves{{envoy_ssl_curve="X25519",{at}}} 3',
        f'envoy_listener_ssl_sigalgs{{envoy_ssl_sigalg="ecdsa_secp256r1_sha256",{at}}} 4',
    ):
        assert line in prom, (line, [x for x in prom if "ssl" in x])


def test_cluster_handshakes_are_counted_with_the_servers_signature(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    front, backend, admin = free_port(), free_port(), free_port()
    chain = answering_chain(
        "backend", "backend", downstream_tls(pki.issue("b.test").tls_certificate())
    )
    routes = [route(prefix("/"), cluster="backend")]
    c = cluster("backend", [("127.0.0.1", backend)])
    c["transport_socket"] = upstream_tls(
        {"trusted_ca": {"filename": str(pki.ca_file)}}, sni="b.test"
    )
    # Envoy's client offers TLS 1.2 at most unless told otherwise; fastmesh always 1.3.
    c["transport_socket"]["typed_config"]["common_tls_context"]["tls_params"] = {
        "tls_maximum_protocol_version": "TLSv1_3"
    }
    cfg = bootstrap(
        admin_port=admin,
        listeners=[
            tls_listener("backend", backend, [chain]),
            http_listener("front", front, [virtual_host("all", ["*"], routes)]),
        ],
        clusters=[c],
    )
    p = start_proxy(cfg, binary=binary)
    with httpx.Client() as client:  # one upstream connection: one handshake
        for _ in range(3):
            assert client.get(f"http://127.0.0.1:{front}/", timeout=20).text == "backend"
    ssl = "cluster.backend.ssl"
    got = _ssl_counters(p.admin_url, ssl)
    # The cipher and curve depend on both ends' preferences (BoringSSL's and rustls'
    # differ): one of each is counted.
    ciphers = {k: v for k, v in got.items() if k.startswith(f"{ssl}.ciphers.")}
    curves = {k: v for k, v in got.items() if k.startswith(f"{ssl}.curves.")}
    assert list(ciphers.values()) == [1] and list(curves.values()) == [1], got
    assert {k: v for k, v in got.items() if k not in ciphers and k not in curves} == {
        f"{ssl}.handshake": 1,
        f"{ssl}.versions.TLSv1.3": 1,
        f"{ssl}.sigalgs.ecdsa_secp256r1_sha256": 1,
    }
    [cipher] = [k.removeprefix(f"{ssl}.ciphers.") for k in ciphers]
    prom = httpx.get(f"{p.admin_url}/stats/prometheus").text.splitlines()
    for line in (
        f'envoy_cluster_ssl_ciphers{{cipher_suite="{cipher}",envoy_cluster_name="backend"}} 1',
        'envoy_cluster_ssl_versions{envoy_ssl_version="TLSv1.3",envoy_cluster_name="backend"} 1',
    ):
        assert line in prom, (line, [x for x in prom if "ssl" in x])
