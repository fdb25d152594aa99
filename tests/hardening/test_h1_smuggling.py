"""HTTP/1.1 request smuggling and desync: every request a front end and a back end could
frame differently is answered 400 and its connection closed, and a backend that records
every byte it receives proves nothing of it was forwarded.

Where fastmesh (hyper's parser) and Envoy 1.40 differ, the test says so and checks the
property that matters: the request is never forwarded ambiguously.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import BINARY_PARAMS, connect

from ._topology import Front, running_front


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def front(request: pytest.FixtureRequest) -> Iterator[Front]:
    with running_front(request.param) as f:
        yield f


@dataclass
class Answer:
    """Everything the proxy wrote back, and whether it then closed."""

    data: bytes
    closed: bool

    @property
    def statuses(self) -> list[int]:
        return [
            int(line.split(b" ")[1])
            for line in self.data.split(b"\r\n")
            if line.startswith(b"HTTP/1.1 ")
        ]


def exchange(port: int, payload: bytes, *, timeout: float = 1.5) -> Answer:
    """Send `payload` on a fresh connection; read until the proxy closes (or `timeout`)."""
    data = bytearray()
    with connect(port) as sock:
        sock.sendall(payload)
        sock.settimeout(timeout)
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return Answer(bytes(data), closed=False)
        except ConnectionResetError:
            pass
    return Answer(bytes(data), closed=True)


def post(headers: bytes, body: bytes) -> bytes:
    return b"POST /attack HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"

#: Requests both proxies refuse (fastmesh 400; Envoy 400, or 501 for an unknown coding,
#: 426 for chunked HTTP/1.0), closing the connection, nothing forwarded.
REFUSED = {
    "cl-conflicting": post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "cl-list": post(b"Content-Length: 5, 5\r\n", b"hello"),
    "cl-not-a-number": post(b"Content-Length: 5x\r\n", b"hello"),
    "cl-signed": post(b"Content-Length: +5\r\n", b"hello"),
    "cl-negative": post(b"Content-Length: -1\r\n", b"hello"),
    "cl-hex": post(b"Content-Length: 0x5\r\n", b"hello"),
    "cl-overflow": post(b"Content-Length: 99999999999999999999999\r\n", b"hello"),
    "te-not-chunked-last": post(
        b"Transfer-Encoding: chunked, identity\r\n", b"5\r\nhello\r\n0\r\n\r\n"
    ),
    "te-unknown": post(b"Transfer-Encoding: xchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-space-before-colon": post(b"Transfer-Encoding : chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
    "te-in-http10": (
        b"POST /attack HTTP/1.0\r\nHost: x\r\n" + CHUNKED + b"\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "name-with-space": b"GET /attack HTTP/1.1\r\nHost: x\r\nFoo Bar: x\r\n\r\n",
    "name-with-nul": b"GET /attack HTTP/1.1\r\nHost: x\r\nFoo\x00: x\r\n\r\n",
    "name-empty": b"GET /attack HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n",
    "name-with-paren": b"GET /attack HTTP/1.1\r\nHost: x\r\n(a): x\r\n\r\n",
    "value-with-nul": b"GET /attack HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    # RFC 9112 3.2: an HTTP/1.1 request without Host is a 400.
    "no-host": b"GET /attack HTTP/1.1\r\n\r\n",
    "absolute-form-not-http": b"GET ftp://public.example/ HTTP/1.1\r\nHost: public.example\r\n\r\n",
    "connect-origin-form": b"CONNECT /attack HTTP/1.1\r\nHost: x\r\n\r\n",
}

#: Envoy accepts these and forwards them re-serialized (a fold unfolded, a stray CR
#: replaced, two Hosts joined into one), which no later hop can read two ways; fastmesh
#: refuses them outright (two Hosts: RFC 9112 3.2, or one hop would route on the first
#: and the next on the last).
REFUSED_BY_FASTMESH = {
    "two-hosts": b"GET /attack HTTP/1.1\r\nHost: a\r\nHost: internal.example\r\n\r\n",
    "obs-fold": b"GET /attack HTTP/1.1\r\nHost: x\r\nX-Foo: a\r\n b\r\n\r\n",
    "bare-cr": b"GET /attack HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n",
}

#: Bodies whose chunked framing breaks after the head: Envoy and fastmesh both start the
#: request upstream as soon as its head is in, so the upstream may see the head, but never
#: a complete request: the upstream request is aborted with the downstream one.
BAD_CHUNKS = {
    "chunk-size-not-hex": post(CHUNKED, b"ZZZ\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-negative": post(CHUNKED, b"-5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-0x": post(CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-overflow": post(CHUNKED, b"ffffffffffffffffff5\r\nhello\r\n0\r\n\r\n"),
    "chunk-data-no-crlf": post(CHUNKED, b"5\r\nhelloXX0\r\n\r\n"),
    "chunk-size-bare-lf": post(CHUNKED, b"5\nhello\n0\n\n"),
}


def assert_refused(front: Front, payload: bytes) -> None:
    before = len(front.upstream.raw)
    answer = exchange(front.ports.http, payload)
    assert len(answer.statuses) == 1 and answer.statuses[0] >= 400, answer.data[:200]
    assert answer.closed, "the connection stayed open after the refusal"
    assert len(front.upstream.raw) == before, "part of the request reached the upstream"


@pytest.mark.parametrize("name", REFUSED)
def test_ambiguous_request_is_refused(front: Front, name: str) -> None:
    assert_refused(front, REFUSED[name])


@pytest.mark.parametrize("name", REFUSED_BY_FASTMESH)
def test_odd_header_lines_are_refused_or_normalized(front: Front, name: str) -> None:
    if front.binary != "envoy":
        assert_refused(front, REFUSED_BY_FASTMESH[name])
        return
    before = len(front.upstream.raw)
    answer = exchange(front.ports.http, REFUSED_BY_FASTMESH[name])
    assert answer.statuses[:1] == [200]
    head = front.upstream.raw[before:].split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), head
    assert not any(line[:1] in (b" ", b"\t") for line in lines), head
    assert sum(line.lower().startswith(b"host:") for line in lines) == 1, head


def test_bare_lf_line_ends_are_forwarded_as_crlf(front: Front) -> None:
    """Both parsers accept LF alone as a line end (RFC 9112 2.2 allows it); what goes
    upstream is re-serialized with CRLF, so no hop can frame it differently."""
    before = len(front.upstream.raw)
    answer = exchange(front.ports.http, b"GET /lf HTTP/1.1\nHost: x\nConnection: close\n\n")
    assert answer.statuses == [200], answer.data[:200]
    forwarded = front.upstream.raw[before:]
    assert forwarded.startswith(b"GET /lf HTTP/1.1\r\n"), forwarded[:80]
    assert forwarded.count(b"\n") == forwarded.count(b"\r\n"), forwarded


@pytest.mark.parametrize("name", BAD_CHUNKS)
def test_bad_chunked_body_never_completes_upstream(front: Front, name: str) -> None:
    before = len(front.upstream.requests)
    answer = exchange(front.ports.http, BAD_CHUNKS[name])
    assert answer.statuses == [400], answer.data[:200]
    assert answer.closed
    arrived = front.upstream.requests[before:]
    assert not arrived, f"a request with a broken body reached the upstream whole: {arrived}"


@pytest.mark.parametrize("te_first", [False, True], ids=["cl-then-te", "te-then-cl"])
def test_content_length_with_chunked_is_never_both(front: Front, te_first: bool) -> None:
    """CL.TE / TE.CL: the classic smuggle, the tail framed as a second request. Envoy
    refuses it (400). fastmesh (hyper) takes RFC 9112 6.3's other road: chunked wins, the
    Content-Length is dropped, the connection is closed after the response. Either way the
    upstream never gets both headers, and the tail never becomes a request."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    cl = b"Content-Length: %d\r\n" % (5 + len(smuggled))
    headers = CHUNKED + cl if te_first else cl + CHUNKED
    before = len(front.upstream.requests)
    answer = exchange(front.ports.http, post(headers, b"0\r\n\r\n" + smuggled))
    assert answer.closed
    arrived = front.upstream.requests[before:]
    assert not any(r.path == "/smuggled" for r in arrived), arrived
    if front.binary == "envoy":
        assert answer.statuses == [400]
        assert not arrived
    else:
        assert answer.statuses == [200]
        (req,) = arrived
        names = [k for k, _ in req.headers]
        assert "content-length" not in names and "transfer-encoding" in names, req.headers
        assert req.body == b""


def test_identical_duplicate_content_length(front: Front) -> None:
    """Envoy refuses two Content-Length lines even when they agree; fastmesh (hyper)
    folds them into one, which every hop reads the same way."""
    before = len(front.upstream.requests)
    answer = exchange(
        front.ports.http,
        post(b"Content-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n", b"hello"),
    )
    arrived = front.upstream.requests[before:]
    if front.binary == "envoy":
        assert answer.statuses == [400]
        assert not arrived
    else:
        assert answer.statuses == [200]
        (req,) = arrived
        assert [v for k, v in req.headers if k == "content-length"] == ["5"]
        assert req.body == b"hello"


def test_absolute_form_target_is_the_host_upstream(front: Front) -> None:
    """The absolute-form target routes the request (RFC 9112 3.2.2), so the upstream must
    get that authority as Host, not the received Host (which it might route on)."""
    before = len(front.upstream.requests)
    answer = exchange(
        front.ports.http,
        b"GET http://public.example/abs HTTP/1.1\r\nHost: internal.example\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.statuses == [200], answer.data[:200]
    (req,) = front.upstream.requests[before:]
    assert req.path == "/abs"
    assert dict(req.headers)["host"] == "public.example"


def test_absolute_form_target_routes_not_the_host_header(front: Front) -> None:
    before = len(front.upstream.raw)
    answer = exchange(
        front.ports.http,
        b"GET http://internal.example/ HTTP/1.1\r\nHost: public.example\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.statuses == [403], answer.data[:200]
    assert len(front.upstream.raw) == before


@pytest.mark.parametrize("target", [b"public.example:80", b"127.0.0.1:22", b"internal.example:443"])
def test_connect_is_refused_and_its_payload_never_parsed(front: Front, target: bytes) -> None:
    """No route here accepts CONNECT: no tunnel, nothing upstream, and the bytes after it
    (tunnel payload, to the client) are never taken for a request of their own."""
    before = len(front.upstream.raw)
    payload = b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = exchange(front.ports.http, payload + smuggled)
    assert answer.statuses == [404], answer.data[:300]
    assert answer.closed
    assert len(front.upstream.raw) == before, "CONNECT or its payload reached the upstream"
