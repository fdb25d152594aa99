"""The translator's chain ids: what binds a connection to its filter chain. When a live
reload keeps a listener, the engine drains the connections of every chain whose id the
new config lacks (Envoy's filter-chain-only update), so an id must change with what a
connection fixed when it was accepted, and must not change with what every request
reads anew (routes, HTTP filters)."""

from __future__ import annotations

from typing import Any

from fastmesh.config import translate_bootstrap

from .envoy_docs import ROUTER_TYPE, bootstrap, hcm, listener, route, tcp_listener, vhost

TP = "type.googleapis.com/"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
HTTP_RBAC = {
    "name": "envoy.filters.http.rbac",
    "typed_config": {"@type": TP + "envoy.extensions.filters.http.rbac.v3.RBAC"},
}
NETWORK_RBAC = {
    "name": "envoy.filters.network.rbac",
    "typed_config": {
        "@type": TP + "envoy.extensions.filters.network.rbac.v3.RBAC",
        "stat_prefix": "tcp_rbac",
    },
}
INSPECTOR = {"name": "envoy.filters.listener.tls_inspector"}


def chain_id(lst: dict[str, Any]) -> str:
    native = translate_bootstrap(bootstrap([lst]), "test.yaml").snapshot["listeners"][0]
    assert "plaintext_chain_id" not in native
    value: str = native["chain_id"]
    return value


def test_routes_and_http_filters_keep_the_id() -> None:
    before = chain_id(listener(hcm()))
    assert chain_id(listener(hcm())) == before
    routes = hcm([vhost(routes=[route("backend", "/api"), route()])])
    assert chain_id(listener(routes)) == before
    filtered = hcm()
    filtered["http_filters"] = [HTTP_RBAC, ROUTER]
    assert chain_id(listener(filtered)) == before
    # A listener-level change (its listener filters) binds no open connection either.
    assert chain_id(listener(hcm(), listener_filters=[INSPECTOR])) == before


def test_what_a_connection_keeps_changes_the_id() -> None:
    before = chain_id(listener(hcm()))
    assert chain_id(listener(hcm(codec_type="HTTP1"))) != before
    assert chain_id(listener(hcm(stat_prefix="other"))) != before


def test_a_tcp_proxy_or_a_network_rbac_change_changes_the_id() -> None:
    before = chain_id(tcp_listener())
    assert chain_id(tcp_listener()) == before
    assert chain_id(tcp_listener(idle_timeout="30s")) != before
    assert chain_id(tcp_listener(name="other")) != before  # its stat_prefix
    guarded = tcp_listener()
    guarded["filter_chains"][0]["filters"].insert(0, NETWORK_RBAC)
    assert chain_id(guarded) != before
