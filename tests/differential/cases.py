"""Requests per config file (by file stem), sent to Envoy and to fastmesh-proxy.

Every case names the status Envoy gives, checked on the Envoy run as well, so the table
documents Envoy's behaviour and a miswired rig cannot pass by both proxies failing alike.
A config without an entry still runs: one GET / (or a TCP ping) per listener.
"""

from __future__ import annotations

from .harness import AnyCase, Case, TcpCase


def h(host: str, **headers: str) -> tuple[tuple[str, str], ...]:
    """Request headers: host first, then `x_foo="1"` as `x-foo: 1`."""
    return (("host", host), *((k.replace("_", "-"), v) for k, v in headers.items()))


def _routing() -> list[AnyCase]:
    ex = h("exact.test")
    L = "ingress"
    return [
        # path matching
        Case(L, "/exact", 200, headers=ex),
        Case(L, "/exact?x=1&y=2", 200, headers=ex),
        # Empty-bodied requests of every method: what framing reaches the upstream.
        *(
            Case(L, "/exact", 200, method=m, headers=ex)
            for m in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        ),
        Case(L, "/exact/", 404, headers=ex),
        Case(L, "/re/abc/123", 200, headers=ex),
        Case(L, "/re/abc/1", 404, headers=ex),
        Case(L, "/re/ABC/123", 404, headers=ex),
        Case(L, "/CASE/x", 200, headers=ex),
        Case(L, "/case/x", 200, headers=ex),
        # header matching: exact, present, inverted. An absent header never matches, even
        # inverted (Envoy 1.40, treat_missing_header_as_empty false): /hdr alone is a 404.
        Case(L, "/hdr", 200, headers=h("exact.test", x_tier="gold")),
        Case(L, "/hdr", 200, headers=h("exact.test", x_beta="")),
        Case(L, "/hdr", 404, headers=ex),
        Case(L, "/hdr", 200, headers=h("exact.test", x_tier="silver")),
        Case(L, "/hdr", 404, headers=h("exact.test", x_tier="banned")),
        # method (`:method`) and regex header matching
        Case(L, "/hdr/method", 200, method="POST", headers=ex),
        Case(L, "/hdr/method", 404, headers=ex),
        Case(L, "/hdr/regex", 200, headers=h("exact.test", x_version="v12")),
        Case(L, "/hdr/regex", 404, headers=h("exact.test", x_version="v1x")),
        # rewrites
        Case(L, "/old/a/b?q=1", 200, headers=ex),
        Case(L, "/old", 404, headers=ex),
        Case(L, "/strip/x/y", 200, headers=ex),
        Case(L, "/strip/", 200, headers=ex),
        Case(L, "/hostrw/p", 200, headers=ex),
        # header mutation at route, vhost and route-config level
        Case(
            L,
            "/mutate",
            200,
            headers=h(
                "exact.test",
                x_level="client",
                x_overwrite="client",
                x_strip_route="1",
                x_strip_vhost="1",
                x_keep="1",
            ),
        ),
        Case(L, "/mutate", 200, headers=ex),
        # direct responses
        Case(L, "/direct/body", 200, headers=ex),
        Case(L, "/direct/empty", 503, headers=ex),
        Case(L, "/direct/created", 201, headers=ex),
        Case(L, "/direct/body", 200, method="HEAD", headers=ex),
        # upstream statuses and bodies pass through; dead upstream is 503
        Case(L, "/status/500", 500, headers=ex),
        Case(L, "/status/204", 204, headers=ex),
        Case(L, "/status/201", 201, method="POST", headers=ex, body=b"hello body"),
        Case(L, "/status/200", 200, method="PUT", headers=ex, body=b"x" * 100_000),
        Case(L, "/exact", 200, method="HEAD", headers=ex),
        Case(L, "/dead", 503, headers=ex),
        Case(L, "/h2/x", 200, headers=ex),
        # virtual host selection
        Case(L, "/exact", 200, headers=h("EXACT.Test")),
        Case(L, "/exact", 404, headers=h("exact.test:8080")),
        Case(L, "/x", 200, headers=h("a.wild.test")),
        Case(L, "/x", 200, headers=h("a.deep.wild.test")),
        Case(L, "/x", 200, headers=h("api.anything")),
        Case(L, "/only-here", 200, headers=h("unknown.test")),
        Case(L, "/elsewhere", 404, headers=h("unknown.test")),
        # the same over HTTP/2 downstream
        Case(L, "/exact", 200, headers=ex, http2=True),
        Case(L, "/mutate", 200, headers=h("exact.test", x_strip_route="1"), http2=True),
        Case(L, "/direct/body", 200, headers=ex, http2=True),
        Case(L, "/nowhere", 404, headers=h("unknown.test"), http2=True),
        Case(L, "/dead", 503, headers=ex, http2=True),
        Case(L, "/h2/post", 200, method="POST", headers=ex, body=b"h2 body", http2=True),
    ]


def _front_proxy() -> list[AnyCase]:
    L = "ingress_http"
    api = h("api.example.com")
    return [
        Case(L, "/healthz", 200, headers=api),
        Case(L, "/healthz", 200, headers=h("api.example.com:10000")),
        Case(L, "/users/1", 200, headers=h("api.example.com", x_api_version="2")),
        Case(L, "/users/1", 200, headers=h("api.example.com", x_debug="1")),
        Case(L, "/items/42", 200, headers=api),
        Case(L, "/items/abc", 404, headers=api),
        Case(L, "/V1/Legacy/Path?q=1", 200, headers=api),
        Case(L, "/svc/Method", 200, headers=h("grpc.example.com", content_type="application/grpc")),
        Case(L, "/svc/Method", 415, headers=h("grpc.example.com")),
        Case(L, "/x", 200, headers=h("foo.example.com", x_canary="1")),
        Case(L, "/x", 200, headers=h("foo.example.com", x_canary="1", user_agent="googlebot")),
        Case(L, "/x", 200, headers=h("www.test")),
        Case(L, "/x", 404, headers=h("other.test")),
        Case(L, "/users/1", 200, headers=api, http2=True),
    ]


def _tcp() -> list[AnyCase]:
    return [
        TcpCase("tcp_echo", b"hello tcp\n", b"hello tcp\nbye\n"),
        TcpCase("tcp_echo", bytes(range(256)) * 400, bytes(range(256)) * 400 + b"bye\n"),
        TcpCase("tcp_dead", b"anyone?", b""),
    ]


def _tcp_proxy() -> list[AnyCase]:
    raw = b"GET /via-tcp HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    return [
        TcpCase("tcp_in", raw, b"HTTP/1.1 200 ", exact=False),
        Case("http_in", "/plain", 200),
    ]


def _add_if_absent() -> list[AnyCase]:
    return [
        Case("ingress", "/", 200, headers=h("x", x_add_if_absent="client")),
        Case("ingress", "/", 200),
    ]


def _traffic() -> list[AnyCase]:
    L = "ingress"
    any_host = h("edge.test")
    allowed = h("cors.test", origin="https://app.test")
    preflight = (
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "x-custom"),
    )
    return [
        # CORS: preflight answered by the proxy for allowed origins only, simple requests
        # get the allow/expose headers, requests without an origin pass untouched
        Case(L, "/c", 200, method="OPTIONS", headers=allowed + preflight),
        Case(
            L,
            "/c",
            200,
            method="OPTIONS",
            headers=h("cors.test", origin="https://a.trusted.test") + preflight,
        ),
        Case(
            L,
            "/c",
            200,
            method="OPTIONS",
            headers=h("cors.test", origin="https://evil.test") + preflight,
        ),
        Case(L, "/c", 200, headers=allowed),
        Case(L, "/c", 200, headers=h("cors.test", origin="https://evil.test")),
        Case(L, "/c", 200, headers=h("cors.test")),
        # redirects
        Case(L, "/secure/a?b=1", 301, headers=any_host),
        Case(L, "/moved", 302, headers=any_host),
        Case(L, "/v1/users/7?x=y", 308, headers=any_host),
        # regex rewrite (query kept)
        Case(L, "/svc/users/list/all?p=2", 200, headers=any_host),
        # query parameter matching: presence, exact value, neither
        Case(L, "/q?debug", 200, headers=any_host),
        Case(L, "/q?a=1&v=2", 200, headers=any_host),
        Case(L, "/q?v=3", 200, headers=any_host),
        # header matching: regex (whole value), absence
        Case(L, "/h", 200, headers=h("edge.test", x_ver="v12")),
        Case(L, "/h", 200, headers=h("edge.test", x_ver="v12-beta")),
        Case(L, "/h", 200, headers=h("edge.test", x_ver="beta")),
        Case(L, "/h", 200, headers=h("edge.test", x_ver="beta", x_block="1")),
        # a fault only requests with x-fault get
        Case(L, "/f", 418, headers=h("edge.test", x_fault="1")),
        Case(L, "/f", 200, headers=any_host),
        # the route timeout fires before the upstream's 1 s delay
        Case(L, "/slow/delay/1000", 504, headers=any_host),
        Case(L, "/slow/delay/10", 200, headers=any_host),
    ]


CASES: dict[str, list[AnyCase]] = {
    "add_if_absent": _add_if_absent(),
    "routing": _routing(),
    "front_proxy": _front_proxy(),
    "tcp": _tcp(),
    "tcp_proxy": _tcp_proxy(),
    "traffic": _traffic(),
}
