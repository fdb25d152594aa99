"""The misbehaving upstream itself, without a proxy: each misbehaviour happens exactly as
documented in tests/support/flaky.py, so a proxy test that relies on it can trust it."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import FlakyServer, connect, port_refuses, read_response

REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


def test_status_then_recovers_and_counts_every_attempt() -> None:
    with FlakyServer("a") as a:
        a.answer_status(503, times=2)
        with httpx.Client(base_url=f"http://127.0.0.1:{a.port}") as client:
            statuses = [client.get("/x").status_code for _ in range(3)]
            assert client.post("/y", content=b"hi").headers["x-upstream-name"] == "a"
            assert client.get("/healthz").status_code == 200
        assert statuses == [503, 503, 200]
        assert (a.count("/x"), a.count("/y"), a.count(method="POST"), a.count()) == (3, 1, 1, 4)
        assert a.health_checks == 1


def test_health_path_is_separate_from_misbehaviours() -> None:
    with FlakyServer("a") as a:
        a.answer_status(500)
        assert httpx.get(f"http://127.0.0.1:{a.port}/healthz").status_code == 200
        a.set_healthy(False)
        assert httpx.get(f"http://127.0.0.1:{a.port}/healthz").status_code == 503
        assert httpx.get(f"http://127.0.0.1:{a.port}/").status_code == 500


def test_reset_sends_rst_after_reading_the_request() -> None:
    with FlakyServer("a") as a:
        a.reset(times=1)
        with connect(a.port) as sock:
            sock.sendall(REQUEST)
            with pytest.raises(ConnectionResetError):
                sock.recv(100)
        assert a.count("/x") == 1
        assert httpx.get(f"http://127.0.0.1:{a.port}/x").status_code == 200


def test_hang_never_answers() -> None:
    with FlakyServer("a") as a:
        a.hang()
        with connect(a.port, timeout=0.3) as sock:
            sock.sendall(REQUEST)
            with pytest.raises(TimeoutError):
                sock.recv(100)
        assert a.count("/x") == 1


def test_close_mid_body_sends_less_than_content_length() -> None:
    with FlakyServer("a") as a:
        a.close_mid_body(times=1)
        with connect(a.port) as sock:
            sock.sendall(REQUEST)
            resp = read_response(sock.makefile("rb"))
        assert resp.status == 200
        assert int(resp.header("content-length") or 0) == 2 * len(resp.body)


def test_idle_connections_close_after_the_jittered_keepalive() -> None:
    with FlakyServer("a") as a:
        a.close_idle_after(20)
        with connect(a.port) as sock:
            reader = sock.makefile("rb")
            sock.sendall(REQUEST)
            resp = read_response(reader)
            assert resp.status == 200 and resp.header("connection") is None
            sock.settimeout(2)
            assert sock.recv(1) == b""  # closed without a word, within 20 ms


def test_die_resets_live_connections_and_revive_reuses_the_port() -> None:
    with FlakyServer("a") as a:
        port = a.port
        with connect(port) as sock:
            sock.sendall(REQUEST)
            read_response(sock.makefile("rb"))
            a.die()
            assert port_refuses(port)
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                sock.sendall(REQUEST)
                time.sleep(0.05)
                if sock.recv(1) == b"":
                    raise ConnectionResetError("closed")
        a.revive()
        assert a.port == port
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


def test_delay_path_waits() -> None:
    with FlakyServer("a") as a:
        start = time.monotonic()
        httpx.get(f"http://127.0.0.1:{a.port}/delay/200")
        assert time.monotonic() - start >= 0.2
        httpx.get(f"http://127.0.0.1:{a.port}/status/418")
        assert a.connections == 2
