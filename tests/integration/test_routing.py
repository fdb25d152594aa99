"""Routing, header mutation, direct responses, timeouts and dead upstreams, end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import (
    BINARY_PARAMS,
    EchoServer,
    ProxyProcess,
    bootstrap,
    cluster,
    free_port,
    header_exact,
    http_listener,
    path,
    prefix,
    regex,
    require_binary,
    route,
    run_proxy,
    virtual_host,
)


@dataclass
class Topology:
    proxy: ProxyProcess
    port: int
    a: EchoServer
    b: EchoServer

    def get(
        self, url_path: str, host: str = "api.example.com", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        all_headers = {"host": host, **(headers or {})}
        return httpx.get(self.proxy.url(self.port, url_path), headers=all_headers, timeout=10)


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    binary: str = request.param
    require_binary(binary)
    with EchoServer("a") as a, EchoServer("b") as b:
        port = free_port()
        api = virtual_host(
            "api",
            ["api.example.com"],
            [
                route(path("/exact"), cluster="a"),
                route(prefix("/a/"), cluster="a"),
                route(prefix("/b/"), cluster="b"),
                route(regex("/re/[0-9]+"), cluster="b"),
                route(prefix("/hdr"), cluster="b", headers=[header_exact("x-route", "b")]),
                route(prefix("/hdr"), cluster="a"),
                route(prefix("/direct"), direct=(200, "hello direct\n")),
                route(prefix("/forbidden"), direct=(403, None)),
                route(prefix("/slow/"), cluster="a", timeout_ms=300, prefix_rewrite="/delay/"),
                route(prefix("/down"), cluster="dead"),
                route(prefix("/rewrite/"), cluster="a", prefix_rewrite="/new/"),
                route(prefix("/hostrw"), cluster="a", host_rewrite="rewritten.example"),
                route(
                    prefix("/mutate"),
                    cluster="a",
                    request_headers_to_add={"x-route-added": "route"},
                    request_headers_to_remove=["x-remove-me"],
                    response_headers_to_add={"x-resp-added": "yes"},
                    response_headers_to_remove=["x-upstream-extra"],
                ),
            ],
            request_headers_to_add={"x-vhost": "api"},
        )
        wild = virtual_host("wild", ["*.wild.test"], [route(prefix("/"), direct=(200, "wild"))])
        default = virtual_host("default", ["*"], [route(prefix("/"), cluster="b")])
        cfg = bootstrap(
            admin_port=free_port(),
            listeners=[http_listener("ingress", port, [api, wild, default])],
            clusters=[
                cluster("a", [("127.0.0.1", a.port)]),
                cluster("b", [("127.0.0.1", b.port)]),
                cluster("dead", [("127.0.0.1", free_port())]),
            ],
        )
        with run_proxy(cfg, binary=binary) as proxy:
            yield Topology(proxy, port, a, b)


def test_exact_path_matches_only_that_path(topo: Topology) -> None:
    r = topo.get("/exact")
    assert r.status_code == 200
    assert r.headers["x-upstream-name"] == "a"
    # No other route of the api vhost matches: Envoy answers 404 with an empty body.
    miss = topo.get("/exact/more")
    assert miss.status_code == 404
    assert miss.content == b""


def test_prefix_routes_pick_their_cluster(topo: Topology) -> None:
    assert topo.get("/a/x").json()["name"] == "a"
    assert topo.get("/b/x").json()["name"] == "b"
    echoed = topo.get("/b/deep/path?q=1").json()
    assert echoed["path"] == "/b/deep/path?q=1"


def test_regex_matches_the_whole_path(topo: Topology) -> None:
    assert topo.get("/re/123").headers["x-upstream-name"] == "b"
    assert topo.get("/re/12a").status_code == 404
    assert topo.get("/re/123/x").status_code == 404


def test_header_match_routes(topo: Topology) -> None:
    assert topo.get("/hdr", headers={"x-route": "b"}).json()["name"] == "b"
    assert topo.get("/hdr", headers={"x-route": "c"}).json()["name"] == "a"
    assert topo.get("/hdr").json()["name"] == "a"


def test_virtual_host_by_domain(topo: Topology) -> None:
    assert topo.get("/a/x", host="API.Example.com").json()["name"] == "a"
    wild = topo.get("/anything", host="foo.wild.test")
    assert (wild.status_code, wild.text) == (200, "wild")
    # Any other host lands on the catch-all vhost, whose "/" goes to b.
    assert topo.get("/a/x", host="other.test").json()["name"] == "b"


def test_direct_response(topo: Topology) -> None:
    r = topo.get("/direct")
    assert r.status_code == 200
    assert r.text == "hello direct\n"
    assert "x-upstream-name" not in r.headers
    forbidden = topo.get("/forbidden")
    assert forbidden.status_code == 403
    assert forbidden.content == b""


def test_request_and_response_header_mutation(topo: Topology) -> None:
    r = topo.get("/mutate", headers={"x-remove-me": "1", "x-keep-me": "2"})
    assert r.status_code == 200
    seen = r.json()["headers"]
    assert seen["x-route-added"] == "route"
    assert seen["x-vhost"] == "api"
    assert seen["x-keep-me"] == "2"
    assert "x-remove-me" not in seen
    assert r.headers["x-resp-added"] == "yes"
    assert "x-upstream-extra" not in r.headers
    # Without the route's mutations the upstream's header passes through.
    assert topo.get("/a/x").headers["x-upstream-extra"] == "present"


def test_prefix_and_host_rewrite(topo: Topology) -> None:
    assert topo.get("/rewrite/x/y?z=1").json()["path"] == "/new/x/y?z=1"
    assert topo.get("/hostrw/p").json()["headers"]["host"] == "rewritten.example"


def test_route_timeout_gives_504(topo: Topology) -> None:
    assert topo.get("/slow/10").status_code == 200  # the rewrite reaches /delay/10
    start = time.monotonic()
    r = topo.get("/slow/3000")
    elapsed = time.monotonic() - start
    assert r.status_code == 504
    assert elapsed < 2.0, f"timeout of 300 ms took {elapsed:.2f}s"


def test_unreachable_upstream_gives_503(topo: Topology) -> None:
    r = topo.get("/down")
    assert r.status_code == 503


def test_no_route_gives_404(topo: Topology) -> None:
    r = topo.get("/nowhere")
    assert r.status_code == 404
    assert r.content == b""
