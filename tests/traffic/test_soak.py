"""A short soak (bench/soak.py): 15 s of constant load through fastmesh while its four
upstreams are killed and revived one at a time; retries, outlier detection and health
checks together keep more than 99.9 % of requests successful."""

from __future__ import annotations

from bench.soak import run
from tests.support import require_binary


def test_short_soak_keeps_success_above_99_9_percent() -> None:
    require_binary("fastmesh-proxy")
    result = run("fastmesh", 15, period=3.0)
    print(f"\nsoak: {result}")
    assert result.error is None, result.error
    assert result.kills >= 3  # the chaos did happen
    assert result.requests > 1000
    assert result.success_rate > 0.999, result
