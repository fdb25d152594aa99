"""Helpers for the TLS tests: Envoy config pieces for TLS listeners and clusters, and
the clients (`openssl s_client`, curl) that talk to them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from tests.support import http_listener, prefix, route, socket_address, virtual_host
from tests.support.pki import Leaf

Json = dict[str, Any]
TLS_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
TLS_INSPECTOR: Json = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3."
        "TlsInspector"
    },
}


def downstream_tls(certificate: Json, **context: Any) -> Json:
    """A listener's TLS `transport_socket` presenting `certificate` (a `TlsCertificate`);
    `context` adds `DownstreamTlsContext` fields, `validation_context` goes into the
    common context."""
    common: Json = {"tls_certificates": [certificate]}
    if "validation_context" in context:
        common["validation_context"] = context.pop("validation_context")
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPES + "DownstreamTlsContext",
            "common_tls_context": common,
            **context,
        },
    }


def upstream_tls(validation_context: Json, **context: Any) -> Json:
    """A cluster's TLS `transport_socket` verifying the server with `validation_context`."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_TYPES + "UpstreamTlsContext",
            "common_tls_context": {"validation_context": validation_context},
            **context,
        },
    }


def answering_chain(body: str, stat_prefix: str, transport_socket: Json) -> Json:
    """A filter chain whose connection manager answers every request 200 `body`."""
    hcm = http_listener(
        stat_prefix, 0, [virtual_host("all", ["*"], [route(prefix("/"), direct=(200, body))])]
    )
    return {"filters": hcm["filter_chains"][0]["filters"], "transport_socket": transport_socket}


def tls_listener(name: str, port: int, chains: list[Json]) -> Json:
    """A listener with the TLS inspector and `chains`."""
    return {
        "name": name,
        "address": socket_address(port),
        "listener_filters": [TLS_INSPECTOR],
        "filter_chains": chains,
    }


@dataclass(frozen=True)
class Handshake:
    """What `openssl s_client` saw."""

    ok: bool
    peer_cn: str | None
    output: str


def s_client(
    port: int, server_name: str | None, *extra: str, client: Leaf | None = None
) -> Handshake:
    """Handshake with 127.0.0.1:`port` sending SNI `server_name` (None: no SNI)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"]
    cmd += ["-servername", server_name] if server_name else ["-noservername"]
    if client is not None:
        cmd += ["-cert", str(client.cert_file), "-key", str(client.key_file)]
    run = subprocess.run(
        [*cmd, *extra], input="", capture_output=True, text=True, timeout=30, check=False
    )
    out = run.stdout + run.stderr
    cn = None
    for line in out.splitlines():
        # "subject=CN = api.example.com" (OpenSSL 3) in the certificate section.
        if line.startswith("subject=") and "CN = " in line:
            cn = line.split("CN = ", 1)[1].split(",")[0].strip()
            break
    ok = "Verify return code" in out and cn is not None and "New, " in out
    return Handshake(ok, cn, out)


def curl(port: int, host: str | None, *extra: str) -> tuple[int, str]:
    """`GET /` over TLS to 127.0.0.1:`port` as `https://host/` (SNI `host`; None: by IP,
    no SNI) -> (curl's exit status, body)."""
    url = f"https://{host or '127.0.0.1'}:{port}/"
    cmd = ["curl", "-sk", "--max-time", "20", url]
    if host:
        cmd += ["--resolve", f"{host}:{port}:127.0.0.1"]
    run = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=30, check=False)
    return run.returncode, run.stdout
