"""`filter_chain_match.server_names`: several chains on one listener, each with its own
certificate and filters or passing TLS through, chosen by the client's SNI with Envoy's
precedence (exact, then the longest `*.suffix`, then the chain without server_names).
Envoy and fastmesh-proxy run the same config and must answer alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmesh.config import ConfigError, translate_bootstrap
from tests.conftest import StartProxy
from tests.support import bootstrap, cluster, free_port, tcp_listener
from tests.support.pki import Pki

from ._tls import answering_chain, curl, downstream_tls, s_client, tls_listener


def _config(pki: Pki, port: int, admin: int, *, default: bool) -> dict[str, object]:
    def chain(name: str, body: str, server_names: list[str] | None) -> dict[str, object]:
        leaf = pki.issue(name, [name])
        c = answering_chain(body, body, downstream_tls(leaf.tls_certificate()))
        if server_names:
            c["filter_chain_match"] = {"server_names": server_names}
        return c

    chains = [
        chain("api.example.com", "exact", ["api.example.com"]),
        chain("*.example.com", "wildcard", ["*.example.com", "other.test"]),
        chain("*.deep.example.com", "longer", ["*.deep.example.com"]),
    ]
    if default:
        chains.append(chain("default.test", "default", None))
    return bootstrap(admin_port=admin, listeners=[tls_listener("sni", port, chains)], clusters=[])


# SNI -> (certificate CN, response body).
CHOICES = {
    "api.example.com": ("api.example.com", "exact"),
    "API.Example.com": ("api.example.com", "exact"),
    "x.example.com": ("*.example.com", "wildcard"),
    "a.b.example.com": ("*.example.com", "wildcard"),
    "other.test": ("*.example.com", "wildcard"),
    "z.deep.example.com": ("*.deep.example.com", "longer"),
    "example.com": ("default.test", "default"),
    "unknown.org": ("default.test", "default"),
}


def test_the_sni_chooses_the_chain_and_its_certificate(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    p = start_proxy(_config(Pki(tmp_path / "pki"), port, admin, default=True), binary=binary)
    for sni, (cn, body) in CHOICES.items():
        shake = s_client(port, sni)
        assert (shake.ok, shake.peer_cn) == (True, cn), (sni, shake.output)
        assert curl(port, sni) == (0, body), sni
    no_sni = s_client(port, None)
    assert (no_sni.ok, no_sni.peer_cn) == (True, "default.test"), no_sni.output
    assert curl(port, None) == (0, "default")
    assert p.counter(f"listener.127.0.0.1_{port}.ssl.handshake") == 2 * len(CHOICES) + 2


def test_without_a_default_chain_an_unmatched_sni_is_closed(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    p = start_proxy(_config(Pki(tmp_path / "pki"), port, admin, default=False), binary=binary)
    for sni in ("unknown.org", "example.com", None):
        shake = s_client(port, sni)
        assert (shake.ok, shake.peer_cn) == (False, None), (sni, shake.output)
    assert curl(port, "unknown.org")[0] != 0
    assert curl(port, "api.example.com") == (0, "exact")
    stats = httpx.get(f"{p.admin_url}/stats").text.splitlines()
    assert f"listener.127.0.0.1_{port}.no_filter_chain_match: 4" in stats
    prom = httpx.get(f"{p.admin_url}/stats/prometheus").text.splitlines()
    assert (
        f'envoy_listener_no_filter_chain_match{{envoy_listener_address="127.0.0.1_{port}"}} 4'
        in prom
    )


def test_a_chain_without_tls_passes_it_through_and_the_default_takes_plaintext(
    binary: str, start_proxy: StartProxy, tmp_path: Path
) -> None:
    """Istio's outbound TLS listener: `pass.example.com` goes, ClientHello and all, to a
    server that terminates it (here a second listener of the same proxy, with its own
    certificate); a plaintext client gets the default chain, which has no TLS."""
    pki = Pki(tmp_path / "pki")
    port, backend, admin = free_port(), free_port(), free_port()
    passthrough = tcp_listener("x", 0, "backend", stat_prefix="passthrough")["filter_chains"][0]
    passthrough["filter_chain_match"] = {"server_names": ["pass.example.com"]}
    terminated = answering_chain(
        "terminated",
        "terminated",
        downstream_tls(pki.issue("api", ["api.example.com"]).tls_certificate()),
    )
    terminated["filter_chain_match"] = {"server_names": ["api.example.com"]}
    plain = answering_chain("plaintext", "plain", {})
    del plain["transport_socket"]
    behind = answering_chain(
        "behind",
        "behind",
        downstream_tls(pki.issue("backend", ["pass.example.com"]).tls_certificate()),
    )
    cfg = bootstrap(
        admin_port=admin,
        listeners=[
            tls_listener("front", port, [passthrough, terminated, plain]),
            tls_listener("backend", backend, [behind]),
        ],
        clusters=[cluster("backend", [("127.0.0.1", backend)])],
    )
    p = start_proxy(cfg, binary=binary)
    shake = s_client(port, "pass.example.com")
    assert (shake.ok, shake.peer_cn) == (True, "backend"), shake.output
    assert curl(port, "pass.example.com") == (0, "behind")
    assert curl(port, "api.example.com") == (0, "terminated")
    plaintext = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert (plaintext.status_code, plaintext.text) == (200, "plaintext")
    assert p.counter(f"listener.127.0.0.1_{backend}.ssl.handshake") == 2
    assert p.counter(f"listener.127.0.0.1_{port}.ssl.handshake") == 1
    assert p.counter("tcp.passthrough.downstream_cx_total") == 2


def _no_inspector(listener: dict[str, Any]) -> None:
    del listener["listener_filters"]


def _tls_only_plaintext_default(listener: dict[str, Any]) -> None:
    chain = listener["filter_chains"][3]
    del chain["transport_socket"]
    chain["filter_chain_match"] = {"transport_protocol": "tls"}


def _raw_buffer_default(listener: dict[str, Any]) -> None:
    listener["filter_chains"][3]["filter_chain_match"] = {"transport_protocol": "raw_buffer"}


def _http_passed_through(listener: dict[str, Any]) -> None:
    del listener["filter_chains"][0]["transport_socket"]


def _second_default(listener: dict[str, Any]) -> None:
    listener["filter_chains"].append(listener["filter_chains"][3])


def _names(*names: str) -> Callable[[dict[str, Any]], None]:
    def set_names(listener: dict[str, Any]) -> None:
        listener["filter_chains"][0]["filter_chain_match"] = {"server_names": list(names)}

    return set_names


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_names("w*.example.com"), "[0].filter_chain_match.server_names[0]: expected a name or a "),
        (_names("*"), "[0].filter_chain_match.server_names[0]: expected a name or a *.suffix "),
        (_names("a.test", "a.test"), ": server name 'a.test' is matched more than once"),
        (_names("x.test", "OTHER.test"), ": server name 'other.test' is matched more than once"),
        (_no_inspector, ": server_names needs envoy.filters.listener.tls_inspector in "),
        (_tls_only_plaintext_default, "[3].filter_chain_match.transport_protocol: tls on a "),
        (_raw_buffer_default, "[3].filter_chain_match.transport_protocol: raw_buffer on a "),
        (_http_passed_through, "[0].filters: a chain with server_names and no transport_socket"),
        (_second_default, "[4]: a second chain without server_names (the first is "),
    ],
)
def test_bad_chains_by_server_name_are_refused_with_their_path(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], error: str
) -> None:
    cfg: dict[str, Any] = _config(Pki(tmp_path / "pki"), 1, 2, default=True)
    change(cfg["static_resources"]["listeners"][0])
    with pytest.raises(ConfigError) as exc:
        translate_bootstrap(cfg, "envoy.yaml")
    assert f"envoy.yaml: static_resources.listeners[0].filter_chains{error}" in str(exc.value)
