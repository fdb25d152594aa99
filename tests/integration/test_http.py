"""HTTP/1.1 and HTTP/2 through the proxy with real clients: curl, httpx, a raw socket."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import (
    BINARY_PARAMS,
    EchoServer,
    NginxServer,
    ProxyProcess,
    bootstrap,
    cluster,
    connect,
    free_port,
    http_listener,
    pattern_bytes,
    prefix,
    read_response,
    require_binary,
    route,
    run_proxy,
    virtual_host,
)

MB = 1 << 20


@dataclass
class Topology:
    proxy: ProxyProcess
    port: int
    h1: EchoServer
    h2: EchoServer
    nginx: NginxServer

    def url(self, url_path: str) -> str:
        return self.proxy.url(self.port, url_path)


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    """ "/" -> HTTP/1.1 echo, "/h2/" -> the same kind of echo over h2c, "/nginx/" -> nginx."""
    binary: str = request.param
    require_binary(binary)
    with EchoServer("h1") as h1, EchoServer("h2") as h2, NginxServer() as nginx:
        port = free_port()
        vhost = virtual_host(
            "all",
            ["*"],
            [
                route(prefix("/h2/"), cluster="h2", prefix_rewrite="/"),
                route(prefix("/nginx/"), cluster="nginx", prefix_rewrite="/"),
                route(prefix("/"), cluster="h1"),
            ],
        )
        cfg = bootstrap(
            admin_port=free_port(),
            listeners=[http_listener("ingress", port, [vhost])],
            clusters=[
                cluster("h1", [("127.0.0.1", h1.port)]),
                cluster("h2", [("127.0.0.1", h2.port)], http2=True),
                cluster("nginx", [("127.0.0.1", nginx.port)]),
            ],
        )
        with run_proxy(cfg, binary=binary) as proxy:
            yield Topology(proxy, port, h1, h2, nginx)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True, check=True
    )


def test_curl_http11(topo: Topology) -> None:
    out = curl("--http1.1", "-H", "x-test: curl", topo.url("/hello?a=b"))
    doc = json.loads(out.stdout)
    assert doc["path"] == "/hello?a=b"
    assert doc["headers"]["x-test"] == "curl"
    assert doc["protocol"] == "HTTP/1.1"


def test_curl_reuses_one_connection(topo: Topology) -> None:
    out = curl("-v", "--http1.1", topo.url("/one"), topo.url("/two"))
    assert out.stdout.count('"name": "h1"') == 2
    assert "Re-using existing connection" in out.stderr or "Reusing existing" in out.stderr


def test_curl_http2_prior_knowledge(topo: Topology) -> None:
    out = curl("--http2-prior-knowledge", "-w", "\\n%{http_version}", topo.url("/h2c"))
    body, _, version = out.stdout.rpartition("\n")
    assert version == "2"
    assert json.loads(body)["path"] == "/h2c"


def test_httpx_keepalive(topo: Topology) -> None:
    with httpx.Client(timeout=10) as client:
        for i in range(5):
            r = client.get(topo.url(f"/ka/{i}"))
            assert r.status_code == 200
            assert r.json()["path"] == f"/ka/{i}"
    # Sequential requests on one raw socket only work if the proxy keeps it open.
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        for i in range(3):
            sock.sendall(f"GET /raw/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            resp = read_response(reader)
            assert resp.status == 200
            assert json.loads(resp.body)["path"] == f"/raw/{i}"


def test_pipelined_requests_answered_in_order(topo: Topology) -> None:
    requests = (
        b"".join(f"GET /pipe/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(5))
        + b"POST /pipe/5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    )
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(requests)
        paths = []
        for _ in range(6):
            resp = read_response(reader)
            assert resp.status == 200
            paths.append(json.loads(resp.body)["path"])
    assert paths == [f"/pipe/{i}" for i in range(6)]


def test_chunked_upload(topo: Topology) -> None:
    chunks = [pattern_bytes(1000), b"middle", pattern_bytes(70_000)]
    body = b"".join(chunks)

    def gen() -> Iterator[bytes]:
        yield from chunks

    r = httpx.post(topo.url("/upload"), content=gen(), timeout=10)
    assert r.status_code == 200
    seen = r.json()
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_raw_chunked_upload_with_trailing_request(topo: Topology) -> None:
    raw = (
        b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        first = json.loads(read_response(reader).body)
        second = json.loads(read_response(reader).body)
    assert first["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert second["path"] == "/after"


def test_streamed_response(topo: Topology) -> None:
    with httpx.stream("GET", topo.url("/stream/5"), timeout=10) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines == [{"chunk": i} for i in range(5)]


@pytest.mark.parametrize("upstream", ["/", "/h2/"], ids=["h1-upstream", "h2-upstream"])
@pytest.mark.parametrize("http2", [False, True], ids=["h1-client", "h2-client"])
def test_one_megabyte_both_ways(topo: Topology, upstream: str, http2: bool) -> None:
    body = pattern_bytes(MB + 7)
    with httpx.Client(http1=not http2, http2=http2, timeout=20) as client:
        down = client.get(topo.url(f"{upstream}bytes/{MB}"))
        assert down.status_code == 200
        assert down.content == pattern_bytes(MB)
        up = client.post(topo.url(f"{upstream}echo"), content=body)
        assert up.status_code == 200
        assert up.content == body
        assert down.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


def test_h2_upstream_speaks_h2(topo: Topology) -> None:
    assert httpx.get(topo.url("/h2/x"), timeout=10).json()["protocol"] == "HTTP/2"
    assert httpx.get(topo.url("/x"), timeout=10).json()["protocol"] == "HTTP/1.1"


async def test_http2_multiplexed_concurrent_streams(topo: Topology) -> None:
    """Twenty concurrent requests on one HTTP/2 connection, slow ones not blocking fast ones."""
    results: dict[int, int] = {}
    async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:

        async def one(i: int) -> None:
            r = await client.get(topo.url(f"/delay/{200 if i % 2 else 0}?i={i}"))
            assert r.http_version == "HTTP/2"
            results[i] = r.status_code

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(one, i)
        elapsed = trio.current_time() - start
    assert results == dict.fromkeys(range(20), 200)
    assert elapsed < 2.0, f"streams were serialized ({elapsed:.2f}s)"


def test_nginx_upstream(topo: Topology) -> None:
    r = httpx.get(topo.url("/nginx/small"), timeout=10)
    assert (r.status_code, r.text) == (200, "hello")


def test_curl_upload_with_expect_100_continue(topo: Topology, tmp_path: Path) -> None:
    body = pattern_bytes(3 * MB)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    out = curl(
        "--http1.1", "-H", "Expect: 100-continue", "--data-binary", f"@{upload}", topo.url("/up")
    )
    seen = json.loads(out.stdout)
    assert seen["method"] == "POST"
    assert seen["body_length"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_chunked_request_body_is_forwarded_for_any_method(topo: Topology, method: str) -> None:
    """A chunked body reaches the upstream whatever the method (Envoy forwards GET bodies)."""
    raw = (
        f"{method} /chunked-{method} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n"
    ).encode()
    with connect(topo.port) as sock, sock.makefile("rb") as reader:
        sock.sendall(raw)
        resp = read_response(reader)
    seen = json.loads(resp.body)
    assert (seen["method"], seen["body_length"]) == (method, 5)
    assert seen["body_sha256"] == hashlib.sha256(b"hello").hexdigest()


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_content_length_request_body_is_forwarded_for_any_method(
    topo: Topology, method: str
) -> None:
    r = httpx.request(method, topo.url("/cl"), content=b"hello", timeout=10)
    assert r.json()["body_length"] == 5
