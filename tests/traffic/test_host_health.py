"""Host health, passive and active: a host answering 5xx is ejected after
`consecutive_5xx`, gets no traffic while ejected and returns after `base_ejection_time`
(admin /clusters: `/failed_outlier_check`); a host failing its HTTP or TCP active health
check gets no traffic until it passes again (`/failed_active_hc`)."""

from __future__ import annotations

from collections import Counter

from tests.support import FlakyServer

from ._rig import (
    HTTP_CHECK,
    TCP_CHECK,
    Front,
    answered_by,
    config,
    eventually,
    flaky_servers,
    forward,
    front,
)
from ._rig import upstream_cluster as cluster_of


def spread(f: Front, n: int) -> Counter[str]:
    """Which upstream answered each of `n` sequential requests."""
    with f.client() as client:
        return Counter(answered_by(client.get("/x")) for _ in range(n))


def back_in_rotation(f: Front) -> None:
    """Host "c" serves its share again (workers learn health changes a moment after the
    admin /clusters shows them)."""
    eventually(lambda: answered_by(f.get("/x")) == "c", what="c back in rotation")
    assert spread(f, 30)["c"] == 10


def flags_of(f: Front, server: FlakyServer) -> str:
    return f.health_flags("backend").get(server.port, "<no such host>")


def test_consecutive_5xx_ejects_the_host_until_base_ejection_time(binary: str) -> None:
    outlier = {
        "consecutive_5xx": 3,
        "interval": "0.2s",
        "base_ejection_time": "1s",
        "max_ejection_percent": 100,
    }
    with flaky_servers("a", "b", "c") as (a, b, c):
        cfg = config([forward()], [cluster_of("backend", [a, b, c], outlier_detection=outlier)])
        with front(binary, cfg) as f:
            assert flags_of(f, c) == "healthy"
            c.answer_status(500)
            with f.client() as client:
                for _ in range(30):
                    if c.count("/x") == 3:
                        break
                    client.get("/x")
            assert c.count("/x") == 3
            eventually(lambda: "/failed_outlier_check" in flags_of(f, c), what="ejection")
            assert f.stat("cluster.backend.outlier_detection.ejections_enforced_total") == 1
            assert spread(f, 20) == Counter({"a": 10, "b": 10})
            assert c.count("/x") == 3
            c.recover()
            eventually(lambda: flags_of(f, c) == "healthy", timeout=5, what="un-ejection")
            back_in_rotation(f)


def test_http_health_check_failure_takes_the_host_out(binary: str) -> None:
    with flaky_servers("a", "b", "c") as (a, b, c):
        cfg = config([forward()], [cluster_of("backend", [a, b, c], health_checks=[HTTP_CHECK])])
        with front(binary, cfg) as f:
            eventually(lambda: c.health_checks > 0, what="health checks reach the host")
            assert spread(f, 30) == Counter({"a": 10, "b": 10, "c": 10})
            c.set_healthy(False)
            eventually(lambda: "/failed_active_hc" in flags_of(f, c), what="c marked unhealthy")
            before = c.count("/x")
            assert spread(f, 20) == Counter({"a": 10, "b": 10})
            assert c.count("/x") == before
            assert c.requests[-1].header("host") == "backend"  # Envoy: the cluster name
            c.set_healthy(True)
            eventually(lambda: flags_of(f, c) == "healthy", what="c healthy again")
            back_in_rotation(f)


def test_tcp_health_check_failure_takes_the_host_out(binary: str) -> None:
    with flaky_servers("a", "b", "c") as (a, b, c):
        cfg = config([forward()], [cluster_of("backend", [a, b, c], health_checks=[TCP_CHECK])])
        with front(binary, cfg) as f:
            eventually(lambda: flags_of(f, c) == "healthy", what="c healthy")
            c.die()
            eventually(lambda: "/failed_active_hc" in flags_of(f, c), what="c marked unhealthy")
            assert spread(f, 20) == Counter({"a": 10, "b": 10})  # no 503 from the dead host
            c.revive()
            eventually(lambda: flags_of(f, c) == "healthy", what="c healthy again")
            back_in_rotation(f)
