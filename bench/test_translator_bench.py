"""Translator benchmark: the pure-Python hot loops vs their Cython twins on a 10k config.

    python -m pytest bench/test_translator_bench.py --benchmark-group-by=group

`FASTMESH_BENCH_N` sets the size (default 10,000 clusters + 10,000 virtual hosts of 3
routes each, from fastmesh.config._generate, the same shape as the 10k RSS row).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fastmesh.config import _speedups, translate_bootstrap
from fastmesh.config._endpoints import translate_endpoints as py_endpoints
from fastmesh.config._errors import Issues
from fastmesh.config._generate import generate_bootstrap
from fastmesh.config._routes import translate_route_config as py_translate

compiled = pytest.importorskip("fastmesh_ext.routes", reason="pip install ./ext")
compiled_endpoints = pytest.importorskip("fastmesh_ext.endpoints")
N = int(os.environ.get("FASTMESH_BENCH_N", "10000"))
IMPLS: dict[str, Callable[..., Any]] = {
    "python": py_translate,
    "cython": compiled.translate_route_config,
}
ENDPOINT_IMPLS: dict[str, Callable[..., Any]] = {
    "python": py_endpoints,
    "cython": compiled_endpoints.translate_endpoints,
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return generate_bootstrap(clusters=N, vhosts=N)


@pytest.fixture
def use_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    saved = _speedups.translate_route_config, _speedups.translate_endpoints
    _speedups.translate_route_config = IMPLS[name]
    _speedups.translate_endpoints = ENDPOINT_IMPLS[name]
    try:
        yield name
    finally:
        _speedups.translate_route_config, _speedups.translate_endpoints = saved


@pytest.mark.parametrize("impl", ["python", "cython"])
def test_route_config(benchmark: Any, doc: dict[str, Any], impl: str) -> None:
    """The hot loop alone: one route config of N virtual hosts x 3 routes."""
    benchmark.group = f"translator: route config, {N} vhosts"
    rc = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]
    fn = IMPLS[impl]

    def run() -> Any:
        gc.disable()  # as in translate_bootstrap
        try:
            return fn(Issues("bench"), rc, "rc", [], {})
        finally:
            gc.enable()

    out = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert len(out["virtual_hosts"]) == N


@pytest.mark.parametrize("use_impl", ["python", "cython"], indirect=True)
def test_translate_bootstrap(benchmark: Any, doc: dict[str, Any], use_impl: str) -> None:
    """All of `translate_bootstrap` (listeners, routes, N clusters, semantic checks)."""
    benchmark.group = f"translator: translate_bootstrap, {N} clusters + {N} vhosts"
    b = benchmark.pedantic(
        translate_bootstrap,
        args=(doc, "bench"),
        kwargs={"version": "bench"},
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    assert len(b.snapshot["clusters"]) == N
