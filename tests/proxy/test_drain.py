"""SIGTERM drains: readiness fails, new connections are refused, requests in flight finish."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import httpx

from tests.support import EchoServer, port_refuses, run_proxy

from ._topology import Ports, front_config


def test_sigterm_lets_in_flight_requests_finish(echo: EchoServer) -> None:
    ports = Ports.fresh()
    results: list[httpx.Response | BaseException] = []

    def slow_request() -> None:
        try:
            results.append(httpx.get(f"http://127.0.0.1:{ports.listener}/delay/1500", timeout=20))
        except BaseException as exc:
            results.append(exc)

    with run_proxy(front_config(ports, echo.port), extra_args=["--drain-time-s", "10"]) as p:
        worker = threading.Thread(target=slow_request)
        worker.start()
        deadline = time.monotonic() + 10
        while not echo.requests:  # the request is at the upstream: it is in flight
            assert time.monotonic() < deadline
            time.sleep(0.01)
        p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(f"{p.admin_url}/ready")
        assert (ready.status_code, ready.text) == (503, "DRAINING\n")
        assert port_refuses(ports.listener)
        worker.join(timeout=20)
        assert p.wait_exit(timeout=20) == 0
    (result,) = results
    assert isinstance(result, httpx.Response), result
    assert result.status_code == 200
    assert result.json()["path"] == "/delay/1500"


def test_drain_time_bounds_the_exit(echo: EchoServer) -> None:
    ports = Ports.fresh()
    with run_proxy(front_config(ports, echo.port), extra_args=["--drain-time-s", "0.5"]) as p:

        def stuck_request() -> None:
            with contextlib.suppress(httpx.HTTPError):  # cut off when the drain time is up
                httpx.get(f"http://127.0.0.1:{ports.listener}/delay/8000", timeout=20)

        worker = threading.Thread(target=stuck_request, daemon=True)
        worker.start()
        deadline = time.monotonic() + 10
        while not echo.requests:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait_exit(timeout=20) == 0
        assert time.monotonic() - started < 6


def test_second_sigterm_while_draining_exits_now(echo: EchoServer) -> None:
    ports = Ports.fresh()
    with run_proxy(front_config(ports, echo.port), extra_args=["--drain-time-s", "60"]) as p:

        def stuck_request() -> None:
            with contextlib.suppress(httpx.HTTPError):  # cut off by the forced exit
                httpx.get(f"http://127.0.0.1:{ports.listener}/delay/8000", timeout=20)

        worker = threading.Thread(target=stuck_request, daemon=True)
        worker.start()
        deadline = time.monotonic() + 10
        while not echo.requests:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert p.alive()  # draining: waiting for the request in flight
        started = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait_exit(timeout=20) == 0
        assert time.monotonic() - started < 4
