"""Live reload: an edited config file is applied while serving; a bad edit is rejected
(logged with its field path) and the last good config keeps serving."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.support import EchoServer, ProxyProcess, run_proxy

from ._topology import Ports, front_config


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _stat(p: ProxyProcess, name: str) -> int:
    body = httpx.get(f"{p.admin_url}/stats", params={"filter": f"^{name}$"}).text
    return int(body.split(": ")[1]) if body else -1


def test_edit_applies_a_route_change_and_a_bad_edit_is_rejected(echo: EchoServer) -> None:
    ports = Ports.fresh()
    url = f"http://127.0.0.1:{ports.listener}"
    with run_proxy(front_config(ports, echo.port, canary_path="/nothing"), log_level="info") as p:
        assert httpx.get(f"{url}/healthz").text == "ok\n"
        assert httpx.get(f"{url}/items", headers={"x-canary": "1"}).status_code == 200

        # A route change: canary requests under / now get the proxy's 418.
        p.write_config(front_config(ports, echo.port, healthz="v2\n"))
        _eventually(lambda: httpx.get(f"{url}/healthz").text == "v2\n")
        assert httpx.get(f"{url}/items", headers={"x-canary": "1"}).status_code == 418
        assert httpx.get(f"{url}/items").status_code == 200
        assert _stat(p, "server.config_reload_success") == 1

        # A bad edit: rejected, logged with the field path, v2 keeps serving.
        bad = front_config(ports, echo.port, healthz="v3\n")
        bad["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE"
        p.write_config(bad)
        _eventually(lambda: _stat(p, "server.config_reload_failure") == 1)
        assert "static_resources.clusters[0].type" in p.log()
        assert "[error][config]" in p.log()
        for _ in range(5):
            assert httpx.get(f"{url}/healthz").text == "v2\n"
            assert httpx.get(f"{url}/items").status_code == 200
        dump = httpx.get(f"{p.admin_url}/config_dump").json()["configs"][1]
        assert "static_resources.clusters[0].type" in dump["last_reload_error"]
        assert httpx.get(f"{p.admin_url}/ready").status_code == 200

        # Fixing the file applies it.
        p.write_config(front_config(ports, echo.port, healthz="v4\n"))
        _eventually(lambda: httpx.get(f"{url}/healthz").text == "v4\n")
        assert _stat(p, "server.config_reload_success") == 2


def test_unparseable_edit_is_rejected(echo: EchoServer) -> None:
    ports = Ports.fresh()
    url = f"http://127.0.0.1:{ports.listener}"
    with run_proxy(front_config(ports, echo.port)) as p:
        p.write_config("static_resources: [unclosed\n")
        _eventually(lambda: _stat(p, "server.config_reload_failure") == 1)
        assert httpx.get(f"{url}/healthz").text == "ok\n"
        assert p.alive()
