"""Soak: constant load through a proxy whose upstreams keep dying and coming back.

    python -m bench.soak [--duration 300] [--proxy fastmesh|envoy] [--out FILE]

wrk drives HTTP/1.1 keep-alive load through the proxy to 4 flaky upstreams
(tests/support/flaky.py) behind one cluster with the resilience config of
bench/resilience.py: retries (to another host), circuit breakers, outlier detection and
an HTTP health check. Meanwhile a chaos loop kills one upstream at a time (it stops
listening and resets its connections) and brings it back on the same port, every few
seconds. Prints total requests, non-2xx, success rate and p99, and writes them as JSON
(bench/results/soak.json by default). Exits 1 when the proxy served nothing or died.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from bench import load, procs
from bench.resilience import add_resilience
from bench.run import RESULTS, envoy_binary, fastmesh_binary
from tests.support import (
    FlakyServer,
    bootstrap,
    cluster,
    free_port,
    http_listener,
    prefix,
    virtual_host,
)
from tests.support import route as make_route

UPSTREAMS = 4
HEALTH_PATH = "/healthz"


@dataclass
class SoakResult:
    proxy: str
    duration_s: float
    requests: int
    non_2xx: int
    socket_errors: int
    success_rate: float
    p99_ms: float | None
    rps: float
    kills: int
    error: str | None = None


def soak_config(ports: list[int], listen: int, admin: int) -> dict[str, object]:
    """One route to one cluster of the flaky upstreams, with every resilience feature."""
    plain = bootstrap(
        admin_port=admin,
        listeners=[
            http_listener(
                "soak",
                listen,
                [virtual_host("all", ["*"], [make_route(prefix("/"), cluster="flaky")])],
            )
        ],
        clusters=[cluster("flaky", [("127.0.0.1", p) for p in ports], connect_timeout_s=0.25)],
    )
    return add_resilience(plain, health_path=HEALTH_PATH)


def chaos(servers: list[FlakyServer], period: float, stop: threading.Event) -> int:
    """Every `period` seconds kill one random upstream, and revive it half a period later.
    Returns how many kills it made."""
    kills = 0
    while not stop.wait(period / 2):
        victim = random.choice(servers)
        victim.die()
        kills += 1
        stop.wait(period / 2)
        victim.revive()
    return kills


def _socket_errors(raw: str) -> int:
    for line in raw.splitlines():
        if line.strip().startswith("Socket errors:"):
            return sum(int(part.split()[-1]) for part in line.split(":", 1)[1].split(","))
    return 0


def _non_2xx(raw: str) -> int:
    for line in raw.splitlines():
        if line.strip().startswith("Non-2xx or 3xx responses:"):
            return int(line.split(":")[1])
    return 0


def run(proxy: str, duration: float, *, period: float = 4.0, conns: int = 16) -> SoakResult:
    """One soak run; the proxy, upstreams and chaos loop live only for its duration."""
    exe = fastmesh_binary() if proxy == "fastmesh" else envoy_binary()
    if exe is None:
        return SoakResult(proxy, duration, 0, 0, 0, 0.0, None, 0.0, 0, f"{proxy} not installed")
    with tempfile.TemporaryDirectory(prefix="fastmesh-soak-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        servers = [stack.enter_context(FlakyServer(f"u{i}")) for i in range(UPSTREAMS)]
        listen, admin = free_port(), free_port()
        cfg = work / "soak.yaml"
        cfg.write_text(yaml.safe_dump(soak_config([s.port for s in servers], listen, admin)))
        argv = [exe, "-c", str(cfg), "--concurrency", "1", "-l", "warning"]
        argv += ["--base-id", str(9000 + random.randrange(1000)), "--disable-hot-restart"]
        proc = procs.start(f"soak-{proxy}", argv, None, work)
        stack.callback(proc.stop)
        try:
            procs.wait_ready(proc, f"http://127.0.0.1:{admin}/ready", 60)
        except procs.ProcError as exc:
            return SoakResult(proxy, duration, 0, 0, 0, 0.0, None, 0.0, 0, str(exc))
        stop = threading.Event()
        kills: list[int] = []
        chaos_thread = threading.Thread(
            target=lambda: kills.append(chaos(servers, period, stop)), name="chaos", daemon=True
        )
        chaos_thread.start()
        try:
            ld = load.wrk(f"http://127.0.0.1:{listen}/soak", conns, 1, duration, None)
        finally:
            stop.set()
            chaos_thread.join(timeout=period + 10)
        alive = proc.alive()
        non_2xx, sock_errors = _non_2xx(ld.raw), _socket_errors(ld.raw)
        failed = non_2xx + sock_errors
        error = None
        if not alive:
            error = f"{proxy} died:\n{proc.log_tail()}"
        elif ld.requests == 0:
            error = ld.error or "no requests completed"
        return SoakResult(
            proxy=proxy,
            duration_s=duration,
            requests=ld.requests,
            non_2xx=non_2xx,
            socket_errors=sock_errors,
            success_rate=(ld.requests - failed) / ld.requests if ld.requests else 0.0,
            p99_ms=ld.latency_ms.get("p99"),
            rps=round(ld.rps, 1),
            kills=kills[0] if kills else 0,
            error=error,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--duration", type=float, default=300, help="seconds of load (default 300)")
    ap.add_argument("--proxy", choices=("fastmesh", "envoy"), default="fastmesh")
    ap.add_argument("--period", type=float, default=4.0, help="seconds between kills")
    ap.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = ap.parse_args(argv)
    result = run(args.proxy, args.duration, period=args.period)
    p99 = "n/a" if result.p99_ms is None else f"{result.p99_ms:.2f} ms"
    print(
        f"soak {result.proxy}: {result.requests} requests in {result.duration_s:g}s "
        f"({result.rps:.0f}/s), {result.non_2xx} non-2xx, {result.socket_errors} socket errors, "
        f"success rate {result.success_rate:.4%}, p99 {p99}, {result.kills} upstream kills"
    )
    if result.error:
        print(f"soak FAILED: {result.error}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 1 if result.error else 0


if __name__ == "__main__":
    raise SystemExit(main())
