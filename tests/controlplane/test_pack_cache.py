"""`PackCache`: equal documents are parsed once across builds, and a cached build is the
same snapshot (version, digests, bytes) as an uncached one."""

from __future__ import annotations

from typing import Any

from fastmesh.controlplane._resources import CLUSTER, ENDPOINT, PackCache, build_snapshot


def _documents(port: int) -> dict[str, list[dict[str, Any]]]:
    cluster = {
        "name": "outbound|80||a",
        "type": "EDS",
        "eds_cluster_config": {"eds_config": {"ads": {}}},
    }
    cla = {
        "cluster_name": "outbound|80||a",
        "endpoints": [
            {
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {
                                "socket_address": {"address": "10.0.0.1", "port_value": port}
                            }
                        }
                    }
                ]
            }
        ],
    }
    return {CLUSTER: [cluster], ENDPOINT: [cla]}


def test_a_cached_build_equals_an_uncached_one() -> None:
    cache = PackCache()
    plain, cached = build_snapshot(_documents(80)), build_snapshot(_documents(80), cache)
    assert cached.version == plain.version
    for type_url in (CLUSTER, ENDPOINT):
        for name, r in plain.of_type(type_url).items():
            assert (
                cached.of_type(type_url)[name].packed.SerializeToString()
                == r.packed.SerializeToString()
            )


def test_equal_documents_are_packed_once_and_changed_ones_again() -> None:
    cache = PackCache()
    first = build_snapshot(_documents(80), cache)
    cache.next_generation()
    again = build_snapshot(_documents(81), cache)
    assert again.of_type(CLUSTER)["outbound|80||a"] is first.of_type(CLUSTER)["outbound|80||a"]
    assert (
        again.of_type(ENDPOINT)["outbound|80||a"] is not first.of_type(ENDPOINT)["outbound|80||a"]
    )
    assert again.version != first.version


def test_entries_unused_for_two_generations_are_forgotten() -> None:
    cache = PackCache()
    first = build_snapshot(_documents(80), cache)
    cache.next_generation()
    build_snapshot(_documents(81), cache)
    cache.next_generation()
    build_snapshot(_documents(81), cache)
    cache.next_generation()
    later = build_snapshot(_documents(80), cache)
    assert (
        later.of_type(ENDPOINT)["outbound|80||a"] is not first.of_type(ENDPOINT)["outbound|80||a"]
    )
