"""What the traffic tests share: Envoy config pieces for resilience features, reading the
admin API (/stats, /clusters), waiting for a condition, and driving load with h2load.

Everything here is plain Envoy v3 config or Envoy's admin API, so each test runs unchanged
under real Envoy (the oracle) and fastmesh-proxy.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support import (
    FlakyServer,
    ProxyProcess,
    bootstrap,
    cluster,
    free_port,
    http_listener,
    prefix,
    route,
    run_proxy,
    socket_address,
    virtual_host,
)

Json = dict[str, Any]

ROUTER_FILTER = "envoy.filters.http.router"

# Envoy checks a cluster that has seen no traffic only every `no_traffic_interval`
# (60 s by default): set it too, or the first minute has one check per host.
EVERY_100MS: Json = {
    "timeout": "0.5s",
    "interval": "0.1s",
    "no_traffic_interval": "0.1s",
    "unhealthy_threshold": 1,
    "healthy_threshold": 1,
}
HTTP_CHECK = {**EVERY_100MS, "http_health_check": {"path": "/healthz"}}
TCP_CHECK = {**EVERY_100MS, "tcp_health_check": {}}


def typed(type_name: str, **fields: Any) -> Json:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def forward(cluster_name: str = "backend", match: Json | None = None, **action: Any) -> Json:
    """A route forwarding `match` (default: every path) to a cluster, with extra
    RouteAction fields (`retry_policy=...`, `timeout="0.5s"`, ...)."""
    out = route(match or prefix("/"), cluster=cluster_name)
    out["route"].update(action)
    return out


def upstream_cluster(name: str, servers: Iterable[FlakyServer | int], **extra: Any) -> Json:
    """A STATIC cluster of flaky servers (or bare ports: dead endpoints), with extra
    Cluster fields (`circuit_breakers=...`, `outlier_detection=...`, ...)."""
    ports = [s if isinstance(s, int) else s.port for s in servers]
    out = cluster(name, [("127.0.0.1", p) for p in ports], connect_timeout_s=0.25)
    out.update(extra)
    return out


def priority_cluster(name: str, tiers: list[list[FlakyServer]], **extra: Any) -> Json:
    """A cluster with one locality per priority: tiers[0] is priority 0."""
    out = upstream_cluster(name, [], **extra)
    out["load_assignment"]["endpoints"] = [
        {
            "priority": priority,
            "lb_endpoints": [{"endpoint": {"address": socket_address(s.port)}} for s in servers],
        }
        for priority, servers in enumerate(tiers)
    ]
    return out


def config(
    routes: list[Json],
    clusters: list[Json],
    *,
    filters: list[Json] | None = None,
    domains: list[str] | None = None,
    vhost_extra: Json | None = None,
) -> tuple[Json, int]:
    """A bootstrap with one HTTP listener (`filters` ahead of the router); returns it and
    the listener port."""
    port = free_port()
    vhost = virtual_host("all", domains or ["*"], routes)
    vhost.update(vhost_extra or {})
    listener = http_listener("ingress", port, [vhost])
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [*(filters or []), *hcm["http_filters"]]
    return bootstrap(admin_port=free_port(), listeners=[listener], clusters=clusters), port


@dataclass
class Front:
    """A running proxy and its HTTP listener."""

    proxy: ProxyProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10)
        return httpx.Client(base_url=self.url, **kwargs)

    def get(self, path: str = "/", **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.get(path, **kwargs)

    def stat(self, name: str) -> int | None:
        """A counter or gauge by its full Envoy name; None when the proxy has no such stat."""
        status, body = self.proxy.admin_get(f"/stats?filter=^{re.escape(name)}$")
        assert status == 200, body
        for line in body.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return None

    def health_flags(self, cluster_name: str) -> dict[int, str]:
        """Port -> `health_flags` of every host of a cluster, from the admin /clusters."""
        status, body = self.proxy.admin_get("/clusters")
        assert status == 200, body
        flags = {}
        for line in body.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster_name and parts[2] == "health_flags":
                flags[int(parts[1].rsplit(":", 1)[1])] = parts[3]
        return flags


@contextmanager
def front(binary: str, cfg: tuple[Json, int], **kwargs: Any) -> Iterator[Front]:
    bootstrap_dict, port = cfg
    with run_proxy(bootstrap_dict, binary=binary, **kwargs) as proxy:
        yield Front(proxy, port)


@contextmanager
def flaky_servers(*names: str) -> Iterator[list[FlakyServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FlakyServer(name)) for name in names]


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not met after {timeout}s"
        time.sleep(0.02)


def answered_by(resp: httpx.Response) -> str:
    return str(resp.headers.get("x-upstream-name", f"<local {resp.status_code}>"))


@dataclass
class LoadResult:
    """What h2load saw: status classes, plus requests that got no response at all."""

    total: int
    succeeded: int
    failed: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    raw: str

    @property
    def not_2xx(self) -> int:
        """Every request that did not end in a 2xx: 3xx-5xx and failures alike."""
        return self.total - self.status_2xx


def h2load(url: str, *, requests: int, concurrency: int, headers: Iterable[str] = ()) -> LoadResult:
    """`h2load --h1`: `requests` HTTP/1.1 keep-alive requests over `concurrency` connections."""
    argv = ["h2load", "--h1", "-n", str(requests), "-c", str(concurrency), "-t", "1"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=300, check=False
    ).stdout
    reqs = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+)", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert reqs and codes, f"h2load gave no summary:\n{out}"
    total, succeeded, failed = (int(reqs.group(i)) for i in (1, 2, 3))
    s2, s3, s4, s5 = (int(codes.group(i)) for i in (1, 2, 3, 4))
    return LoadResult(total, succeeded, failed, s2, s3, s4, s5, out)
