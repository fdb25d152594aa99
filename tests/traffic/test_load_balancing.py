"""Where requests go: weighted clusters split 90/10 within a few percent over 10,000
requests; ring hash and Maglev send one key (header, cookie, source IP) to one host, and
removing a host moves about its share of keys only; when every priority-0 host fails its
health check, priority 1 serves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import FlakyServer

from ._rig import (
    TCP_CHECK,
    Front,
    answered_by,
    config,
    eventually,
    flaky_servers,
    forward,
    front,
    h2load,
    priority_cluster,
    upstream_cluster,
)


def test_weighted_clusters_split_90_10(binary: str) -> None:
    with flaky_servers("a", "b") as (a, b):
        split = {"clusters": [{"name": "ca", "weight": 90}, {"name": "cb", "weight": 10}]}
        route = forward("", weighted_clusters=split)
        del route["route"]["cluster"]
        cfg = config([route], [upstream_cluster("ca", [a]), upstream_cluster("cb", [b])])
        with front(binary, cfg) as f:
            result = h2load(f.url + "/split", requests=10_000, concurrency=16)
            assert result.status_2xx == 10_000, result.raw
            assert a.count("/split") + b.count("/split") == 10_000
            assert abs(a.count("/split") - 9000) <= 200, (a.count("/split"), b.count("/split"))


# How each hash policy is keyed, and how a client presents key `k`.
HASH_POLICIES: dict[str, tuple[dict[str, Any], Callable[[str], dict[str, Any]]]] = {
    "header": (
        {"header": {"header_name": "x-user"}},
        lambda k: {"headers": {"x-user": k}},
    ),
    "cookie": (
        {"cookie": {"name": "session"}},
        lambda k: {"headers": {"cookie": f"theme=dark; session={k}"}},
    ),
    "source_ip": (
        {"connection_properties": {"source_ip": True}},
        lambda k: {"local_address": f"127.0.0.{k}"},
    ),
}


def keyed_get(f: Front, key: str, how: Callable[[str], dict[str, Any]], n: int) -> set[str]:
    """Who answered `n` requests presenting `key`."""
    opts = how(key)
    transport = httpx.HTTPTransport(local_address=opts.pop("local_address", None))
    with httpx.Client(base_url=f.url, transport=transport, timeout=10) as client:
        return {answered_by(client.get("/h", **opts)) for _ in range(n)}


def hash_cluster(lb_policy: str, servers: list[FlakyServer]) -> dict[str, Any]:
    return upstream_cluster("backend", servers, lb_policy=lb_policy)


@pytest.mark.parametrize("lb_policy", ["RING_HASH", "MAGLEV"])
@pytest.mark.parametrize("policy", sorted(HASH_POLICIES))
def test_consistent_hash_sends_one_key_to_one_host(
    binary: str, lb_policy: str, policy: str
) -> None:
    hash_policy, how = HASH_POLICIES[policy]
    keys = [str(i) for i in range(2, 32)]  # also valid last octets for source_ip
    with flaky_servers("a", "b", "c", "d") as servers:
        cfg = config([forward(hash_policy=[hash_policy])], [hash_cluster(lb_policy, servers)])
        with front(binary, cfg) as f:
            owners = {}
            for key in keys:
                seen = keyed_get(f, key, how, 3)
                assert len(seen) == 1, (key, seen)
                owners[key] = seen.pop()
            assert len(set(owners.values())) >= 3, owners  # keys do spread over hosts
            assert not any(o.startswith("<local") for o in owners.values()), owners


# Envoy sizes the ring per host (1024 / 4 = 256 points each, then 342 each for 3 hosts),
# so the remaining hosts gain points and about 17 % of their keys move too (Maglev moved
# none in our runs); a non-consistent hash (modulo) would move about 3/4 of them.
MOVED_BESIDES_THE_REMOVED_HOST = 0.3


@pytest.mark.parametrize("lb_policy", ["RING_HASH", "MAGLEV"])
def test_removing_a_host_moves_only_its_keys(binary: str, lb_policy: str) -> None:
    hash_policy = HASH_POLICIES["header"][0]
    keys = [f"user-{i}" for i in range(200)]

    def owners(servers: list[FlakyServer]) -> dict[str, str]:
        cfg = config([forward(hash_policy=[hash_policy])], [hash_cluster(lb_policy, servers)])
        with front(binary, cfg) as f, f.client() as client:
            return {k: answered_by(client.get("/h", headers={"x-user": k})) for k in keys}

    with flaky_servers("a", "b", "c", "d") as (a, b, c, d):
        before = owners([a, b, c, d])
        after = owners([a, b, c])  # the same static config, minus d: a fresh start
    on_d = {k for k, o in before.items() if o == "d"}
    assert 0.1 < len(on_d) / len(keys) < 0.4, Counter(before.values())
    assert all(after[k] in ("a", "b", "c") for k in on_d)
    moved = [k for k in keys if k not in on_d and after[k] != before[k]]
    print(f"{binary} {lb_policy}: {len(moved)} of {len(keys) - len(on_d)} other keys moved")
    assert len(moved) / (len(keys) - len(on_d)) <= MOVED_BESIDES_THE_REMOVED_HOST


def test_priority_1_serves_when_priority_0_fails(binary: str) -> None:
    with flaky_servers("a", "b", "c") as (a, b, c):
        cfg = config(
            [forward()], [priority_cluster("backend", [[a, b], [c]], health_checks=[TCP_CHECK])]
        )
        with front(binary, cfg) as f, f.client() as client:
            eventually(lambda: f.health_flags("backend").get(a.port) == "healthy")
            assert Counter(answered_by(client.get("/p")) for _ in range(20)) == Counter(
                {"a": 10, "b": 10}
            )
            a.die()
            b.die()
            eventually(
                lambda: all(
                    "/failed_active_hc" in f.health_flags("backend").get(s.port, "") for s in (a, b)
                ),
                what="priority 0 unhealthy",
            )
            # Workers learn each host's health a moment apart: wait for a clean streak.
            eventually(
                lambda: {answered_by(client.get("/p")) for _ in range(10)} == {"c"},
                what="priority 1 serves",
            )
            assert {answered_by(client.get("/p")) for _ in range(50)} == {"c"}
