"""Slowloris: request headers dribbled a byte at a time are cut off by
`request_headers_timeout`, and hundreds of such connections do not starve a real client."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import BINARY_PARAMS, connect

from ._topology import Front, running_front

HEADERS_TIMEOUT_S = 1.0
#: Connections holding half-sent headers while a real client is served.
IDLE_CONNECTIONS = 300


@pytest.fixture(scope="module", params=BINARY_PARAMS)
def front(request: pytest.FixtureRequest) -> Iterator[Front]:
    with running_front(request.param, request_headers_timeout_s=HEADERS_TIMEOUT_S) as f:
        yield f


def dribble_until_cut(sock: socket.socket, data: bytes, *, every_s: float) -> float | None:
    """Send `data` a byte at a time; seconds until the proxy cut the connection, or None
    if every byte went out and the connection is still open."""
    started = time.monotonic()
    sock.settimeout(every_s)
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue  # nothing to read yet: the normal case
        except OSError:
            return time.monotonic() - started
        # Anything received (a 408) is followed by the close on the next turn.
    return None


def test_dribbled_headers_are_cut_off(front: Front) -> None:
    before = len(front.upstream.raw)
    head = b"GET /slow HTTP/1.1\r\nHost: x\r\n" + b"x-pad: " + b"a" * 200 + b"\r\n\r\n"
    with connect(front.ports.http) as sock:
        cut_after = dribble_until_cut(sock, head, every_s=0.05)  # ~12 s for all of it
    assert cut_after is not None, "the dribbled request was never cut off"
    assert HEADERS_TIMEOUT_S * 0.8 < cut_after < HEADERS_TIMEOUT_S + 2.0, cut_after
    assert len(front.upstream.raw) == before, "part of the dribbled request went upstream"


def test_idle_connections_do_not_starve_a_real_client(front: Front) -> None:
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(IDLE_CONNECTIONS):
            sock = stack.enter_context(connect(front.ports.http))
            sock.sendall(b"GET /held HTTP/1.1\r\n")
            held.append(sock)
        started = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{front.ports.http}/real", timeout=5)
        assert r.status_code == 200
        assert time.monotonic() - started < 1.0
        # Then the held connections are cut, each by its own timer.
        deadline = time.monotonic() + HEADERS_TIMEOUT_S + 3
        still_open = 0
        for sock in held:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                while sock.recv(4096):
                    pass
            except TimeoutError:
                still_open += 1
            except OSError:
                pass
        assert still_open == 0, f"{still_open} of {IDLE_CONNECTIONS} outlived the timeout"
    assert not any(r.path == "/held" for r in front.upstream.requests)
