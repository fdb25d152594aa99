"""Envoy's certificate and OCSP stats: each TLS context's
`ssl.certificate.<name>.expiration_unix_time_seconds` (its certificate and its trusted CAs,
named by their SDS secret or `unnamed_cert_<hash>`), `ssl.ocsp_staple_{requests,responses,
omitted,failed}`, and `server.days_until_first_cert_expiring` /
`server.seconds_until_first_ocsp_response_expiring`. Real Envoy and fastmesh-proxy run the
same config and the same handshakes; their values must agree."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import StartProxy
from tests.support import (
    bootstrap,
    cluster,
    free_port,
    http_listener,
    prefix,
    require_binary,
    route,
    virtual_host,
)
from tests.support.pki import Leaf, Pki

from ._tls import TLS_TYPES, Json, answering_chain, downstream_tls, s_client, tls_listener

#: Listeners by role: a current staple and a CA; an inline_bytes certificate; an expired
#: staple under STRICT_STAPLING; certificate and CA from static secrets; the cluster's peer.
NAMES = ("stapled", "inline", "strict", "secrets", "backend")
#: Envoy refreshes its `server.*` gauges on each stats flush (1 s here); fastmesh
#: computes them when read.
FLUSH = 1.0


def _inline_bytes(path: Path) -> Json:
    return {"inline_bytes": base64.b64encode(path.read_bytes()).decode()}


def _config(pki: Pki, leaves: dict[str, Leaf], ports: dict[str, int], admin: int) -> Json:
    ca = {"trusted_ca": {"filename": str(pki.ca_file)}}
    stapled = {
        **leaves["stapled"].tls_certificate(),
        "ocsp_staple": {"filename": str(pki.ocsp_staple(leaves["stapled"]))},
    }
    expired = {
        **leaves["strict"].tls_certificate(),
        "ocsp_staple": {
            "filename": str(pki.ocsp_staple(leaves["strict"], "old.der", expired=True))
        },
    }
    inline = {
        "certificate_chain": _inline_bytes(leaves["inline"].cert_file),
        "private_key": {"filename": str(leaves["inline"].key_file)},
    }
    by_secrets = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPES + "DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [{"name": "my-cert"}],
                "validation_context_sds_secret_config": {"name": "my-ca"},
            },
        },
    }
    sockets = {
        "stapled": downstream_tls(stapled, validation_context=ca),
        "inline": downstream_tls(inline),
        "strict": downstream_tls(expired, ocsp_staple_policy="STRICT_STAPLING"),
        "secrets": by_secrets,
        "backend": downstream_tls(leaves["backend"].tls_certificate()),
    }
    listeners = [
        tls_listener(name, ports[name], [answering_chain(name, name, sockets[name])])
        for name in NAMES
    ]
    front = [virtual_host("all", ["*"], [route(prefix("/"), cluster="backend")])]
    listeners.append(http_listener("front", ports["front"], front))
    backend = cluster("backend", [("127.0.0.1", ports["backend"])])
    backend["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPES + "UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [leaves["client"].tls_certificate()],
                "validation_context": {"trusted_ca": _inline_bytes(pki.ca_file)},
            },
            "sni": "backend.test",
        },
    }
    cfg = bootstrap(admin_port=admin, listeners=listeners, clusters=[backend])
    cfg["stats_flush_interval"] = f"{FLUSH}s"
    cfg["static_resources"]["secrets"] = [
        {"name": "my-cert", "tls_certificate": leaves["secrets"].tls_certificate()},
        {"name": "my-ca", "validation_context": ca},
    ]
    return cfg


def _watched(stat: str) -> bool:
    return (
        ".ssl.certificate." in stat
        or ".ssl.ocsp_staple_" in stat
        or stat.endswith((".ssl.handshake", ".ssl.connection_error"))
        or stat.startswith(("server.days_until", "server.seconds_until"))
    )


def _run(binary: str, start_proxy: StartProxy, pki: Pki, leaves: dict[str, Leaf]) -> dict[str, Any]:
    """Start `binary`, shake hands as the test does, and return its watched stats with
    listeners named by role instead of by address."""
    ports = {name: free_port() for name in (*NAMES, "front")}
    started = time.monotonic()
    p = start_proxy(_config(pki, leaves, ports, free_port()), binary=binary)
    shakes = [
        s_client(ports["stapled"], "stapled.test", "-status").ok,
        s_client(ports["stapled"], "stapled.test").ok,
        s_client(ports["inline"], "inline.test", "-status").ok,
        s_client(ports["strict"], "strict.test", "-status").ok,
        s_client(ports["strict"], "strict.test").ok,
        s_client(ports["secrets"], "secrets.test", "-status").ok,
    ]
    assert httpx.get(f"http://127.0.0.1:{ports['front']}/", timeout=20).text == "backend"
    time.sleep(max(0.0, started + 1.5 * FLUSH - time.monotonic()))
    lines = httpx.get(f"{p.admin_url}/stats", timeout=10).text.splitlines()
    by_address = {f"listener.127.0.0.1_{ports[n]}.": f"listener.{n}." for n in NAMES}
    stats = {}
    for stat, _, value in (line.partition(": ") for line in lines):
        if _watched(stat):
            for address, role in by_address.items():
                stat = stat.replace(address, role)
            stats[stat] = int(value)
    return {"handshakes": shakes, "stats": stats}


def _unnamed(kind: str, path: Path) -> str:
    return f"{kind}_{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


@pytest.mark.envoy
def test_certificate_and_ocsp_stats_match_envoy(start_proxy: StartProxy, tmp_path: Path) -> None:
    require_binary("envoy")
    pki = Pki(tmp_path / "pki")
    leaves = {name: pki.issue(f"{name}.test") for name in NAMES}
    leaves["client"] = pki.issue("client", client=True)
    envoy = _run("envoy", start_proxy, pki, leaves)
    fastmesh = _run("fastmesh-proxy", start_proxy, pki, leaves)

    # As Envoy, a client that does not ask for a staple is served despite the expired
    # STRICT one; one that asks is refused.
    assert envoy["handshakes"] == [True, True, True, False, True, True]
    assert fastmesh["handshakes"] == envoy["handshakes"]
    # Envoy's upstream (BoringSSL) does not ask for a staple; fastmesh's (rustls) does,
    # so the cluster's peer counts requests under fastmesh only.
    skip = ("listener.backend.ssl.ocsp_staple_requests", "listener.backend.ssl.ocsp_staple_omitted")
    got, want = ({k: v for k, v in r["stats"].items() if k not in skip} for r in (fastmesh, envoy))
    # Envoy's value is from its last flush: a second or so older.
    ocsp = "server.seconds_until_first_ocsp_response_expiring"
    assert abs(got.pop(ocsp) - want.pop(ocsp)) <= 30
    assert got == want

    expires = {
        name: int(leaf.cert.not_valid_after_utc.timestamp()) for name, leaf in leaves.items()
    }
    ca_expires = int(pki.cert.not_valid_after_utc.timestamp())
    gauge = "ssl.certificate.{}.expiration_unix_time_seconds"
    unnamed = gauge.format("unnamed_cert_e3b0c442")  # a file's: the hash of no inline_bytes
    for stat, value in {
        f"listener.stapled.{unnamed}": expires["stapled"],
        f"listener.stapled.{gauge.format('unnamed_ca_cert_e3b0c442')}": ca_expires,
        f"listener.inline.{gauge.format(_unnamed('unnamed_cert', leaves['inline'].cert_file))}": (
            expires["inline"]
        ),
        f"listener.secrets.{gauge.format('my-cert')}": expires["secrets"],
        f"listener.secrets.{gauge.format('my-ca')}": ca_expires,
        f"cluster.backend.{unnamed}": expires["client"],
        f"cluster.backend.{gauge.format(_unnamed('unnamed_ca_cert', pki.ca_file))}": ca_expires,
        "listener.stapled.ssl.ocsp_staple_requests": 1,
        "listener.stapled.ssl.ocsp_staple_responses": 1,
        "listener.inline.ssl.ocsp_staple_omitted": 1,
        "listener.strict.ssl.ocsp_staple_requests": 1,
        "listener.strict.ssl.ocsp_staple_failed": 1,
        "listener.strict.ssl.connection_error": 1,
        "listener.strict.ssl.handshake": 1,
        "listener.secrets.ssl.ocsp_staple_omitted": 1,
        "cluster.backend.ssl.ocsp_staple_requests": 0,
        # Leaves live 10 days (less the test's seconds): 9 whole days.
        "server.days_until_first_cert_expiring": 9,
    }.items():
        assert got[stat] == value, stat
