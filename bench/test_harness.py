"""The bench harness itself: load-generator output parsing and the generated configs.

`pytest bench/test_harness.py` (seconds). The full proof is `python -m bench --smoke`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import load, mesh, run, topology

WRK_OK = """\
Running 5s test @ http://127.0.0.1:40001/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.25ms    1.11ms  22.40ms   94.44%
    Req/Sec    26.12k     1.60k   28.47k    78.00%
  Latency Distribution
     50%    1.08ms
     75%    1.28ms
     90%    1.61ms
     99%    6.63ms
  129969 requests in 5.00s, 20.82MB read
Requests/sec:  25993.19
Transfer/sec:      4.16MB
"""

WRK_404 = """\
Running 1s test @ http://127.0.0.1:59899/nope
  1 threads and 4 connections
  Latency Distribution
     50%   92.00us
     75%   99.00us
     90%  126.00us
     99%    3.52ms
  44455 requests in 1.10s, 13.06MB read
  Non-2xx or 3xx responses: 44455
Requests/sec:  40305.14
Transfer/sec:     11.84MB
"""

H2LOAD_OK = """\
finished in 5.00s, 61234.40 req/s, 7.36MB/s
requests: 306172 total, 306492 started, 306172 done, 306172 succeeded, 0 failed, 0 errored, \
0 timeout
status codes: 306172 2xx, 0 3xx, 0 4xx, 0 5xx
"""

H2LOAD_FAILED = """\
finished in 9.57ms, 0.00 req/s, 31.52KB/s
requests: 3 total, 1 started, 0 done, 0 succeeded, 3 failed, 3 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_wrk_summary_latency_and_throughput() -> None:
    ld = load.parse_wrk(WRK_OK)
    assert ld.error is None
    assert ld.requests == 129969 and ld.seconds == 5.0
    assert ld.rps == pytest.approx(25993.19)
    assert ld.mbps == pytest.approx(20.82 / 5.0)
    assert ld.latency_ms == pytest.approx({"p50": 1.08, "p90": 1.61, "p99": 6.63})


def test_wrk_non_2xx_is_a_failure() -> None:
    ld = load.parse_wrk(WRK_404)
    assert ld.error is not None and "Non-2xx" in ld.error
    assert ld.latency_ms["p50"] == pytest.approx(0.092)


def test_wrk_without_summary_is_a_failure() -> None:
    assert load.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").error


def test_h2load() -> None:
    ok = load.parse_h2load(H2LOAD_OK)
    assert ok.error is None and ok.requests == 306172 and ok.rps == pytest.approx(61234.4)
    bad = load.parse_h2load(H2LOAD_FAILED)
    assert bad.error is not None and "3 failed" in bad.error


def test_fortio_json() -> None:
    data: dict[str, object] = {
        "ActualQPS": 999.8,
        "ActualDuration": 10_000_000_000,
        "DurationHistogram": {
            "Count": 9998,
            "Percentiles": [
                {"Percentile": 50, "Value": 0.0005},
                {"Percentile": 90, "Value": 0.0009},
                {"Percentile": 99, "Value": 0.002},
            ],
        },
        "RetCodes": {"200": 9998},
    }
    ld = load.parse_fortio(data, "")
    assert ld.error is None and ld.requests == 9998 and ld.seconds == 10.0
    assert ld.latency_ms == pytest.approx({"p50": 0.5, "p90": 0.9, "p99": 2.0})
    data["RetCodes"] = {"200": 9000, "503": 998}
    assert load.parse_fortio(data, "").error


def test_summary_takes_medians_of_clean_rounds_only() -> None:
    results = [
        run.Result(1, 1, "envoy", "http1", {"rps": 100.0}),
        run.Result(2, 1, "envoy", "http1", {"rps": 300.0}),
        run.Result(3, 1, "envoy", "http1", {"rps": 200.0}),
        run.Result(4, 1, "envoy", "http1", {"rps": 1e9}, error="wrk: Non-2xx"),
        run.Result(1, 1, "fastmesh", "http1", {"rps": 500.0}),
    ]
    summary = run.summarize(results)
    assert summary["http1"]["1"]["envoy"] == {"rps": 200.0, "n": 3.0}
    assert run.ratios_vs_envoy(summary)["http1"]["1"]["fastmesh"]["rps"] == 2.5


@pytest.fixture
def configs(tmp_path: Path) -> tuple[topology.Ports, Path]:
    ports = topology.Ports.allocate()
    return ports, topology.envoy_bootstrap(tmp_path, ports)


@pytest.mark.envoy
def test_envoy_accepts_the_bootstrap(configs: tuple[topology.Ports, Path], tmp_path: Path) -> None:
    exe = run.envoy_binary()
    if exe is None:
        pytest.skip("envoy not installed")
    for path in (
        configs[1],
        topology.envoy_bootstrap_10k(tmp_path, configs[0], 20),
        topology.envoy_bootstrap_resilient(tmp_path, configs[0]),
    ):
        cp = subprocess.run(
            [exe, "--mode", "validate", "-c", str(path), "-l", "error"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert cp.returncode == 0, cp.stdout + cp.stderr


def test_fastmesh_accepts_the_same_bootstrap(configs: tuple[topology.Ports, Path]) -> None:
    exe = run.fastmesh_binary()
    if exe is None:
        pytest.skip("fastmesh-proxy not installed")
    cp = subprocess.run(
        [exe, "--mode", "validate", "-c", str(configs[1])],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_fastmesh_accepts_the_resilient_bootstrap(
    configs: tuple[topology.Ports, Path], tmp_path: Path
) -> None:
    """The http1_resilient row's file: the plain one plus bench/resilience.py."""
    exe = run.fastmesh_binary()
    if exe is None:
        pytest.skip(reason="fastmesh-proxy not installed")
    path = topology.envoy_bootstrap_resilient(tmp_path, configs[0])
    cp = subprocess.run(
        [exe, "--mode", "validate", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout + cp.stderr


@pytest.mark.parametrize("scale", [0, 20])
def test_haproxy_accepts_its_config(tmp_path: Path, scale: int) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy not installed")
    ports = topology.Ports.allocate()
    cfg = (
        topology.haproxy_cfg_10k(tmp_path, ports, 2, scale)
        if scale
        else topology.haproxy_cfg(tmp_path, ports, 2)
    )
    cp = subprocess.run(
        ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60, check=False
    )
    assert cp.returncode == 0, cp.stdout + cp.stderr


S_TIME = """\
Collecting connection statistics for 1 seconds
*****************

{n} connections in 0.41s; 1000.00 connections/user sec, bytes read 0
{n} connections in {secs} real seconds, 0 bytes read per connection
"""


def test_parse_s_time_sums_parallel_loops() -> None:
    ld = load.parse_s_time([S_TIME.format(n=300, secs=2), S_TIME.format(n=100, secs=1)])
    assert ld.error is None
    assert (ld.requests, ld.rps, ld.seconds) == (400, 250.0, 2.0)


def test_parse_s_time_flags_a_loop_that_never_connected() -> None:
    failed = "Collecting connection statistics for 1 seconds\nconnect:errno=111\n"
    ld = load.parse_s_time([S_TIME.format(n=300, secs=1), failed])
    assert ld.error is not None and "errno=111" in ld.error
    assert load.parse_s_time([S_TIME.format(n=0, secs=1)]).error is not None


@pytest.mark.parametrize("proxy", [pytest.param("envoy", marks=pytest.mark.envoy), "fastmesh"])
def test_both_proxies_accept_the_mesh_sidecars(tmp_path: Path, proxy: str) -> None:
    """The mesh rows' two files (bench/mesh.py), with the SVIDs they name."""
    exe = run.envoy_binary() if proxy == "envoy" else run.fastmesh_binary()
    if exe is None:
        pytest.skip(reason=f"{proxy} not installed")
    files = mesh.mesh_files(tmp_path, nginx_port=1)
    for path in (files.a_yaml, files.b_yaml):
        cp = subprocess.run(
            [exe, "--mode", "validate", "-c", str(path), "-l", "error"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert cp.returncode == 0, cp.stdout + cp.stderr
