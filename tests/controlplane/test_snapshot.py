"""Snapshot's per-type names and digests: derived from a part or from the snapshot it
replaced, they equal what a snapshot built from scratch computes."""

from __future__ import annotations

from fastmesh.controlplane._resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    Resource,
    Snapshot,
    resource,
)


def _resources(type_url: str, **blobs: bytes) -> dict[str, Resource]:
    return {name: resource(type_url, name, blob) for name, blob in blobs.items()}


def _fresh(snapshot: Snapshot) -> Snapshot:
    """The same resources in a snapshot with no parts and no base."""
    return Snapshot.of({t: dict(rs) for t, rs in snapshot.resources.items()})


def test_names_and_digests_equal_a_fresh_snapshots_however_derived() -> None:
    shared = Snapshot.of(
        {
            CLUSTER: _resources(CLUSTER, b=b"1", a=b"2"),
            ENDPOINT: _resources(ENDPOINT, b=b"1", a=b"2", c=b"3"),
        }
    )
    own = Snapshot.of({LISTENER: _resources(LISTENER, l=b"1")})
    for snapshot in (
        shared.merged(own),  # ENDPOINT, CLUSTER: the shared part's own maps
        shared.replaced({ENDPOINT: _resources(ENDPOINT, a=b"9")}),  # same names, one new
        shared.replaced({ENDPOINT: _resources(ENDPOINT, aa=b"9")}),  # a new name: rebuilt
        shared.replaced({ENDPOINT: _resources(ENDPOINT, c=b"7")}).replaced(
            {CLUSTER: _resources(CLUSTER, a=b"8")}
        ),
    ):
        shared.digests(ENDPOINT)  # the base's maps exist, as after a first push
        fresh = _fresh(snapshot)
        for type_url in (CLUSTER, ENDPOINT, LISTENER):
            assert snapshot.names(type_url) == fresh.names(type_url)
            assert snapshot.digests(type_url) == fresh.digests(type_url)
            assert list(snapshot.digests(type_url)) == snapshot.names(type_url)
            assert snapshot.ordered(type_url) == fresh.ordered(type_url)
    assert shared.digests(ENDPOINT)["a"] == _fresh(shared).digests(ENDPOINT)["a"]  # untouched
