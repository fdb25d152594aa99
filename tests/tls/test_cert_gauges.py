"""Certificate expiry gauges go with their TLS context: a live reload that removes a TLS
listener removes its `ssl.certificate.<name>.expiration_unix_time_seconds` gauges from
`/stats`, and one that rotates a certificate leaves only the new certificate's gauge (as
Envoy, whose gauges live in the context's scope). fastmesh-proxy only: Envoy does not
reload a static bootstrap."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import httpx

from tests.conftest import StartProxy
from tests.support import ProxyProcess, bootstrap, free_port
from tests.support.pki import Leaf, Pki

from ._tls import TLS_TYPES, Json, answering_chain, downstream_tls, s_client, tls_listener

GAUGE = "expiration_unix_time_seconds"


def _inline(leaf: Leaf) -> Json:
    """`leaf` with its chain as `inline_bytes`, so its gauge is named by its hash."""
    return {
        "certificate_chain": {
            "inline_bytes": base64.b64encode(leaf.cert_file.read_bytes()).decode()
        },
        "private_key": {"filename": str(leaf.key_file)},
    }


def _name(leaf: Leaf) -> str:
    return f"unnamed_cert_{hashlib.sha256(leaf.cert_file.read_bytes()).hexdigest()[:8]}"


def _by_secret(name: str) -> Json:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPES + "DownstreamTlsContext",
            "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": name}]},
        },
    }


def _config(
    admin: int, ports: dict[str, int], inline: Leaf, secret: Leaf, gone: Leaf | None
) -> Json:
    sockets = {"inline": downstream_tls(_inline(inline)), "secret": _by_secret("my-cert")}
    if gone is not None:
        sockets["gone"] = downstream_tls(_inline(gone))
    listeners = [
        tls_listener(role, ports[role], [answering_chain(role, role, socket)])
        for role, socket in sockets.items()
    ]
    cfg = bootstrap(admin_port=admin, listeners=listeners, clusters=[])
    cfg["static_resources"]["secrets"] = [
        {"name": "my-cert", "tls_certificate": secret.tls_certificate()}
    ]
    return cfg


def _gauges(p: ProxyProcess, ports: dict[str, int]) -> dict[str, int]:
    """The certificate gauges, listeners named by role."""
    out = {}
    for line in httpx.get(f"{p.admin_url}/stats", timeout=10).text.splitlines():
        stat, _, value = line.partition(": ")
        if ".ssl.certificate." in stat:
            for role, port in ports.items():
                stat = stat.replace(f"listener.127.0.0.1_{port}.", f"{role}.")
            out[stat] = int(value)
    return out


def _expires(leaf: Leaf) -> int:
    return int(leaf.cert.not_valid_after_utc.timestamp())


def test_gauges_of_removed_and_rotated_certificates_are_gone(
    start_proxy: StartProxy, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    old, gone, secret = pki.issue("old.test"), pki.issue("gone.test"), pki.issue("secret.test")
    ports = {role: free_port() for role in ("inline", "secret", "gone")}
    p = start_proxy(_config(free_port(), ports, old, secret, gone), binary="fastmesh-proxy")
    # A connection served by each context, closed before the reload.
    assert all(s_client(ports[role], f"{role}.test").ok for role in ("inline", "gone"))
    assert _gauges(p, ports) == {
        f"inline.ssl.certificate.{_name(old)}.{GAUGE}": _expires(old),
        f"gone.ssl.certificate.{_name(gone)}.{GAUGE}": _expires(gone),
        f"secret.ssl.certificate.my-cert.{GAUGE}": _expires(secret),
    }

    # Rotate the inline certificate (a new name) and the secret's (the same name, a
    # later expiry), and remove the "gone" listener.
    new = pki.issue("new.test", ["inline.test"])
    rotated = pki.issue("secret.test", days=20)
    p.write_config(_config(p.admin_port, ports, new, rotated, None))
    want = {
        f"inline.ssl.certificate.{_name(new)}.{GAUGE}": _expires(new),
        f"secret.ssl.certificate.my-cert.{GAUGE}": _expires(rotated),
    }
    deadline = time.monotonic() + 15
    while (got := _gauges(p, ports)) != want and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got == want, p.log_tail()
    assert s_client(ports["inline"], "inline.test").peer_cn == "new.test"
