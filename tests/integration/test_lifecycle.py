"""fastmesh-only lifecycle: live reload of the config file under load, and SIGTERM drain.

Real Envoy has neither (its static_resources are not re-read, and SIGTERM exits at once),
so these run against fastmesh-proxy only.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import (
    EchoServer,
    ProxyProcess,
    bootstrap,
    cluster,
    free_port,
    http_listener,
    port_refuses,
    prefix,
    require_binary,
    route,
    run_proxy,
    virtual_host,
)
from tests.support.envoy_config import Json

RELOADS = 4


def versioned_config(version: int, port: int, admin_port: int, a: int, b: int) -> Json:
    """Version N adds a direct-response route `/vN` and flips "/" between a and b."""
    routes = [
        route(prefix(f"/v{version}"), direct=(200, f"version {version}")),
        route(prefix("/"), cluster="a" if version % 2 == 0 else "b"),
    ]
    return bootstrap(
        admin_port=admin_port,
        listeners=[http_listener("ingress", port, [virtual_host("all", ["*"], routes)])],
        clusters=[cluster("a", [("127.0.0.1", a)]), cluster("b", [("127.0.0.1", b)])],
    )


@dataclass
class Topology:
    proxy: ProxyProcess
    port: int
    admin_port: int
    a: EchoServer
    b: EchoServer

    def config(self, version: int) -> Json:
        return versioned_config(version, self.port, self.admin_port, self.a.port, self.b.port)


@pytest.fixture
def topo() -> Iterator[Topology]:
    require_binary("fastmesh-proxy")
    with EchoServer("a") as a, EchoServer("b") as b:
        port, admin_port = free_port(), free_port()
        with run_proxy(
            versioned_config(0, port, admin_port, a.port, b.port),
            binary="fastmesh-proxy",
            extra_args=["--config-reload-interval-s", "0.1", "--drain-time-s", "30"],
        ) as proxy:
            yield Topology(proxy, port, admin_port, a, b)


def wait_for_version(topo: Topology, version: int, timeout: float = 10.0) -> None:
    """Poll (new connection each time) until `/vN` is served by the new route."""
    deadline = time.monotonic() + timeout
    url = topo.proxy.url(topo.port, f"/v{version}")
    while True:
        r = httpx.get(url, timeout=5)
        if r.status_code == 200 and r.text == f"version {version}":
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"config version {version} not served after {timeout}s: "
                f"{r.status_code} {r.text[:200]!r}\n{topo.proxy.log_tail()}"
            )
        time.sleep(0.05)


def reload_repeatedly(topo: Topology, load: subprocess.Popen[str]) -> None:
    for version in range(1, RELOADS + 1):
        assert load.poll() is None, "the load generator finished before the reloads did"
        topo.proxy.write_config(topo.config(version))
        wait_for_version(topo, version)
    # New connections take the newest snapshot: "/" goes to the last version's cluster.
    final = httpx.get(topo.proxy.url(topo.port, "/after"), timeout=5)
    assert final.headers["x-upstream-name"] == ("a" if RELOADS % 2 == 0 else "b")


def test_live_reload_under_http1_load_drops_nothing(topo: Topology) -> None:
    wrk = shutil.which("wrk") or pytest.skip(reason="wrk is not installed")
    with subprocess.Popen(
        [wrk, "-t1", "-c8", "-d4s", topo.proxy.url(topo.port, "/")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as load:
        reload_repeatedly(topo, load)
        out, _ = load.communicate(timeout=30)
    assert load.returncode == 0, out
    total = re.search(r"(\d+) requests in", out)
    assert total and int(total.group(1)) > 100, out
    assert "Non-2xx" not in out, out
    assert "Socket errors" not in out, out


def test_live_reload_under_http2_load_drops_nothing(topo: Topology) -> None:
    h2load = shutil.which("h2load") or pytest.skip(reason="h2load is not installed")
    with subprocess.Popen(
        [h2load, "-c4", "-m8", "-D", "4", topo.proxy.url(topo.port, "/")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as load:
        reload_repeatedly(topo, load)
        out, _ = load.communicate(timeout=30)
    summary = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    assert summary, out
    _total, done, succeeded, failed, errored, timeouts = map(int, summary.groups())
    assert done > 100, out
    assert (failed, errored, timeouts) == (0, 0, 0), out
    assert succeeded == done, out
    # h2load counts statuses of requests still in flight at the end too: no non-2xx at all.
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert codes, out
    assert int(codes.group(1)) >= done, out
    assert codes.groups()[1:] == ("0", "0", "0"), out


def test_invalid_config_keeps_the_last_good_one(topo: Topology) -> None:
    topo.proxy.write_config(topo.config(1))
    wait_for_version(topo, 1)
    topo.proxy.write_config("static_resources: {listeners: [{name: broken, bogus_field: 1}]}\n")
    # Wait for the rejection to be counted, then check the old routes still serve.
    deadline = time.monotonic() + 10
    while True:
        _status, body = topo.proxy.admin_get("/stats")
        if re.search(r"config_reload_failure: [1-9]", body):
            break
        assert time.monotonic() < deadline, f"reload failure never counted:\n{body[:2000]}"
        time.sleep(0.05)
    r = httpx.get(topo.proxy.url(topo.port, "/v1"), timeout=5)
    assert (r.status_code, r.text) == (200, "version 1")


def test_sigterm_drains_requests_in_flight(topo: Topology) -> None:
    """Slow requests started before SIGTERM all finish with 200; new connections are refused;
    the proxy then exits 0. Four HTTP/1.1 connections and one HTTP/2 connection (two streams;
    h2load as the client, since curl 7.88 mishandles prior-knowledge multiplexing)."""
    slow = topo.proxy.url(topo.port, "/delay/1500")
    curl = ["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}\\n"]
    clients = [
        subprocess.Popen([*curl, "--http1.1", slow], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    clients.append(
        subprocess.Popen(["h2load", "-n2", "-c1", "-m2", slow], stdout=subprocess.PIPE, text=True)
    )
    try:
        deadline = time.monotonic() + 10
        while sum(r.path == "/delay/1500" for r in topo.a.requests) < 6:
            assert time.monotonic() < deadline, "slow requests never reached the upstream"
            time.sleep(0.01)
        topo.proxy.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # New connections are refused promptly while the old ones are still draining.
        while not port_refuses(topo.port):
            assert time.monotonic() - signalled < 1.0, "listener still accepting after SIGTERM"
            time.sleep(0.01)
        assert all(c.poll() is None for c in clients), "requests finished before the check"
        outputs = [c.communicate(timeout=20)[0] for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    *h1_outputs, h2_output = outputs
    assert [o.strip() for o in h1_outputs] == ["200"] * 4
    assert "2 succeeded, 0 failed, 0 errored" in h2_output, h2_output
    assert "status codes: 2 2xx, 0 3xx, 0 4xx, 0 5xx" in h2_output, h2_output
    assert topo.proxy.wait_exit(timeout=10) == 0
