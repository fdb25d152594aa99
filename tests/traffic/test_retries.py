"""Retries (Envoy `retry_policy`): a failing attempt is retried on the conditions
`retry_on` names and no others, exactly `num_retries` times at most (counted by the
upstream itself), each attempt bounded by `per_try_timeout`; a request whose body outgrew
the retry buffer is not retried; the retry circuit breaker and the retry budget stop
retries during an outage and count `upstream_rq_retry_overflow`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import FlakyServer, free_port

from ._rig import config, flaky_servers, forward, front, typed, upstream_cluster


def retry(retry_on: str, num_retries: int = 1, **extra: Any) -> dict[str, Any]:
    return {"retry_on": retry_on, "num_retries": num_retries, **extra}


def test_503_then_ok_is_retried_until_it_succeeds(binary: str) -> None:
    with flaky_servers("a") as (a,):
        cfg = config([forward(retry_policy=retry("5xx", 2))], [upstream_cluster("backend", [a])])
        with front(binary, cfg) as f:
            a.answer_status(503, times=2)
            resp = f.get("/x")
            assert (resp.status_code, resp.text) == (200, "a\n")
            assert a.count("/x") == 3  # num_retries + 1 attempts
            assert f.stat("cluster.backend.upstream_rq_retry") == 2
            assert f.stat("cluster.backend.upstream_rq_retry_success") == 1


def test_retries_stop_at_num_retries(binary: str) -> None:
    with flaky_servers("a") as (a,):
        cfg = config([forward(retry_policy=retry("5xx", 2))], [upstream_cluster("backend", [a])])
        with front(binary, cfg) as f:
            a.answer_status(503)
            assert f.get("/x").status_code == 503
            assert a.count("/x") == 3


Arm = Callable[[FlakyServer], None]


def once(status: int) -> Arm:
    return lambda server: server.answer_status(status, times=1)


def reset_once(server: FlakyServer) -> None:
    server.reset(times=1)


CODES_418 = {"retriable_status_codes": [418]}

# (retry_on, extra policy fields, what the upstream does once, status, attempts seen)
CONDITIONS: list[tuple[str, dict[str, Any], Arm, int, int]] = [
    ("reset", {}, reset_once, 200, 2),
    ("5xx", {}, reset_once, 200, 2),
    ("retriable-status-codes", CODES_418, once(418), 200, 2),
    ("retriable-status-codes", CODES_418, once(503), 503, 1),
    ("retriable-4xx", {}, once(409), 200, 2),
    ("retriable-4xx", {}, once(404), 404, 1),
    ("gateway-error", {}, once(502), 200, 2),
    ("gateway-error", {}, once(500), 500, 1),
    ("connect-failure", {}, once(503), 503, 1),
]


@pytest.mark.parametrize(
    ("retry_on", "extra", "arm", "status", "attempts"),
    CONDITIONS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CONDITIONS)],
)
def test_retry_on_names_what_is_retried(
    binary: str, retry_on: str, extra: dict[str, Any], arm: Arm, status: int, attempts: int
) -> None:
    with flaky_servers("a") as (a,):
        cfg = config(
            [forward(retry_policy=retry(retry_on, 1, **extra))], [upstream_cluster("backend", [a])]
        )
        with front(binary, cfg) as f:
            arm(a)
            assert f.get("/x").status_code == status
            assert a.count("/x") == attempts


def test_connect_failure_retries_on_another_host(binary: str) -> None:
    dead = free_port()
    with flaky_servers("a") as (a,):
        policy = retry(
            "connect-failure",
            1,
            retry_host_predicate=[
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": typed(
                        "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                    ),
                }
            ],
            host_selection_retry_max_attempts=3,
        )
        cfg = config([forward(retry_policy=policy)], [upstream_cluster("backend", [dead, a])])
        with front(binary, cfg) as f:
            statuses = [f.get("/x").status_code for _ in range(6)]
            assert statuses == [200] * 6
            assert a.count("/x") == 6
            assert (f.stat("cluster.backend.upstream_rq_retry") or 0) >= 1


def test_per_try_timeout_bounds_each_attempt(binary: str) -> None:
    with flaky_servers("a") as (a,):
        policy = retry("5xx", 1, per_try_timeout="0.3s")
        cfg = config(
            [forward(retry_policy=policy, timeout="5s")], [upstream_cluster("backend", [a])]
        )
        with front(binary, cfg) as f:
            a.hang(times=1)
            start = time.monotonic()
            resp = f.get("/x")
            elapsed = time.monotonic() - start
            assert resp.status_code == 200
            assert 0.3 <= elapsed < 3, elapsed
            assert a.count("/x") == 2
            assert f.stat("cluster.backend.upstream_rq_per_try_timeout") == 1


# Envoy buffers a request body for retries up to the connection buffer limit
# (`per_connection_buffer_limit_bytes`, 1 MiB by default); a larger body cannot be
# replayed, so the retry is abandoned (`retry_or_shadow_abandoned`).
BUFFER_LIMIT = 1 << 20


@pytest.mark.parametrize(
    ("size", "status", "attempts"), [(1024, 200, 2), (2 * BUFFER_LIMIT, 503, 1)]
)
def test_body_beyond_the_retry_buffer_is_not_retried(
    binary: str, size: int, status: int, attempts: int
) -> None:
    with flaky_servers("a") as (a,):
        cfg = config([forward(retry_policy=retry("5xx", 1))], [upstream_cluster("backend", [a])])
        with front(binary, cfg) as f, f.client() as client:
            a.answer_status(503, times=1)
            resp = client.post("/upload", content=b"x" * size)
            assert resp.status_code == status
            assert a.count("/upload", method="POST") == attempts
            assert all(len(r.body) == size for r in a.requests)
            abandoned = f.stat("cluster.backend.retry_or_shadow_abandoned")
            assert abandoned == (1 if attempts == 1 else 0)


OVERFLOW_LIMITS = {
    "max_retries": {"thresholds": [{"max_retries": 0}]},
    "retry_budget": {
        "thresholds": [
            {"retry_budget": {"budget_percent": {"value": 0.0}, "min_retry_concurrency": 0}}
        ]
    },
}


@pytest.mark.parametrize("limit", sorted(OVERFLOW_LIMITS))
def test_retry_breaker_stops_retries_during_an_outage(binary: str, limit: str) -> None:
    with flaky_servers("a") as (a,):
        cfg = config(
            [forward(retry_policy=retry("5xx", 3))],
            [upstream_cluster("backend", [a], circuit_breakers=OVERFLOW_LIMITS[limit])],
        )
        with front(binary, cfg) as f:
            a.answer_status(503)
            assert [f.get("/x").status_code for _ in range(4)] == [503] * 4
            assert a.count("/x") == 4  # one attempt each: every retry overflowed
            assert f.stat("cluster.backend.upstream_rq_retry_overflow") == 4
            assert f.stat("cluster.backend.upstream_rq_retry") == 0
