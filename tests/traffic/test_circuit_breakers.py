"""Circuit breakers (Envoy `circuit_breakers.thresholds`): past `max_requests` or
`max_pending_requests` a request is refused at once with 503 and `x-envoy-overloaded: true`
and the overflow is counted (`upstream_rq_active_overflow`, `upstream_rq_pending_overflow`);
`max_connections` queues requests on the connections allowed instead of opening more
(counting `upstream_cx_overflow`)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from ._rig import Front, config, eventually, flaky_servers, forward, front, upstream_cluster

SLOW = "/delay/1500"


def breakers(**thresholds: int) -> dict[str, object]:
    return {"thresholds": [thresholds]}


def slow_requests(f: Front, pool: ThreadPoolExecutor, n: int) -> list[Future[httpx.Response]]:
    return [pool.submit(f.get, SLOW) for _ in range(n)]


def assert_overloaded(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers.get("x-envoy-overloaded") == "true"
    assert resp.text.endswith("reset reason: overflow")
    assert "x-upstream-name" not in resp.headers


def test_max_requests_overflow_is_refused_at_once(binary: str) -> None:
    with flaky_servers("a") as (a,):
        limits = breakers(max_requests=2)
        cfg = config([forward()], [upstream_cluster("backend", [a], circuit_breakers=limits)])
        with front(binary, cfg) as f, ThreadPoolExecutor(4) as pool:
            held = slow_requests(f, pool, 2)
            eventually(lambda: a.count(SLOW) == 2, what="two requests in flight upstream")
            assert_overloaded(f.get("/now"))
            assert a.count("/now") == 0
            assert [r.result().status_code for r in held] == [200, 200]
            # Envoy 1.40 counts max_requests overflows apart from pending ones
            assert f.stat("cluster.backend.upstream_rq_active_overflow") == 1
            assert f.get("/now").status_code == 200  # the breaker closes again


def test_max_pending_overflow_is_refused_at_once(binary: str) -> None:
    with flaky_servers("a") as (a,):
        limits = breakers(max_connections=1, max_pending_requests=1)
        cfg = config([forward()], [upstream_cluster("backend", [a], circuit_breakers=limits)])
        with front(binary, cfg) as f, ThreadPoolExecutor(4) as pool:
            held = slow_requests(f, pool, 1)
            eventually(lambda: a.count(SLOW) == 1, what="one request in flight upstream")
            queued = slow_requests(f, pool, 1)
            eventually(
                lambda: f.stat("cluster.backend.upstream_rq_pending_active") == 1,
                what="one request pending",
            )
            assert_overloaded(f.get("/now"))
            assert [r.result().status_code for r in held + queued] == [200, 200]
            assert f.stat("cluster.backend.upstream_rq_pending_overflow") == 1
            assert a.count("/now") == 0


def test_max_connections_queues_on_the_allowed_connection(binary: str) -> None:
    with flaky_servers("a") as (a,):
        limits = breakers(max_connections=1)
        cfg = config([forward()], [upstream_cluster("backend", [a], circuit_breakers=limits)])
        with front(binary, cfg) as f, ThreadPoolExecutor(4) as pool:
            responses = [pool.submit(f.get, "/delay/300") for _ in range(3)]
            assert [r.result().status_code for r in responses] == [200, 200, 200]
            assert a.connections == 1
            assert (f.stat("cluster.backend.upstream_cx_overflow") or 0) >= 1
