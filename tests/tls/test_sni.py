"""`filter_chain_match.server_names`: several TLS chains on one listener, each with its
own certificate and filters, chosen by the client's SNI with Envoy's precedence (exact,
then the longest `*.suffix`, then the chain without server_names). Envoy and
fastmesh-proxy run the same config and must answer alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmesh.config import ConfigError, translate_bootstrap
from tests.conftest import StartProxy
from tests.support import bootstrap, free_port
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


def _no_inspector(listener: dict[str, Any]) -> None:
    del listener["listener_filters"]


def _plaintext_default(listener: dict[str, Any]) -> None:
    del listener["filter_chains"][3]["transport_socket"]


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
        (_plaintext_default, "[3]: with filter_chain_match.server_names every chain must "),
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
