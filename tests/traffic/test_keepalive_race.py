"""The keep-alive race (istio/istio#13205): an upstream closes idle keep-alive connections
after a short random time, without `Connection: close`, so the proxy now and then sends a
request on a connection the server is closing. A request that never reached the
application is safe to send again: fastmesh must turn none of these into a 5xx, with no
retry policy configured (the config a user writes). Envoy's count is printed, not
asserted: it is the baseline this fixes."""

from __future__ import annotations

from ._rig import config, flaky_servers, forward, front, h2load, upstream_cluster

REQUESTS = 4000
CONCURRENCY = 16
IDLE_CLOSE_MAX_MS = 50


def test_keepalive_race_costs_no_request(binary: str) -> None:
    with flaky_servers("a", "b") as servers:
        cfg = config([forward()], [upstream_cluster("backend", servers)])
        with front(binary, cfg) as f:
            for server in servers:
                server.close_idle_after(IDLE_CLOSE_MAX_MS)
            result = h2load(f.url + "/race", requests=REQUESTS, concurrency=CONCURRENCY)
            upstream_connections = sum(s.connections for s in servers)
            print(
                f"\nkeep-alive race, {binary}: {result.not_2xx} of {REQUESTS} requests not 2xx "
                f"({result.status_5xx} 5xx, {result.failed} failed) over "
                f"{upstream_connections} upstream connections"
            )
            # the race was run: the upstream closed connections under the proxy's pool
            assert upstream_connections > CONCURRENCY
            if binary == "fastmesh-proxy":
                assert result.not_2xx == 0, result.raw
