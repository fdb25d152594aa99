"""Load generators (wrk, h2load, fortio): how each is invoked and how its output is read.

Every runner returns a `Load`: the numbers, and `error` set when anything other than a
clean 2xx run happened (non-2xx responses, socket errors, no requests at all).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class Load:
    """What one load-generator run measured."""

    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    mbps: float = 0.0  # MiB/s of response data received
    latency_ms: dict[str, float] = field(default_factory=dict)  # "p50" -> ms
    error: str | None = None
    raw: str = ""


def fortio_bin() -> str | None:
    """fortio on PATH or in $(go env GOPATH)/bin (~/go/bin by default)."""
    found = shutil.which("fortio")
    if found:
        return found
    gopath = os.environ.get("GOPATH", str(Path.home() / "go"))
    cand = Path(gopath) / "bin" / "fortio"
    return str(cand) if cand.exists() else None


def _run(argv: list[str], cpus: str | None, timeout: float) -> tuple[int, str]:
    full = (["taskset", "-c", cpus] if cpus else []) + argv
    try:
        cp = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        return -1, f"timeout after {timeout}s: {e.stdout!r} {e.stderr!r}"
    return cp.returncode, cp.stdout + cp.stderr


def _size(num: str, unit: str) -> float:
    return float(num) * _UNITS[unit.upper()]


def _dur(num: str, unit: str) -> float:
    return float(num) * _TIME[unit]


def parse_wrk(out: str) -> Load:
    ld = Load(raw=out)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", out)
    if not m:
        ld.error = "wrk: no summary line: " + out[-300:]
        return ld
    ld.requests = int(m.group(1))
    ld.seconds = _dur(m.group(2), m.group(3))
    ld.mbps = _size(m.group(4), m.group(5)) / ld.seconds / 1024**2
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    ld.rps = float(rps.group(1)) if rps else ld.requests / ld.seconds
    for pct, num, unit in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        ld.latency_ms[f"p{pct}"] = _dur(num, unit) * 1e3
    problems = []
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock and any(int(x) for x in sock.groups()):
        problems.append(sock.group(0))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        problems.append(non2xx.group(0))
    if ld.requests == 0:
        problems.append("no requests completed")
    if problems:
        ld.error = "wrk: " + "; ".join(problems)
    return ld


def wrk(url: str, conns: int, threads: int, seconds: float, cpus: str | None) -> Load:
    """``wrk -t T -c C -d Ds --latency URL`` (HTTP/1.1 keep-alive)."""
    argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds:g}s", "--latency", url]
    rc, out = _run(argv, cpus, timeout=seconds + 30)
    ld = parse_wrk(out)
    if rc != 0 and not ld.error:
        ld.error = f"wrk exited {rc}"
    return ld


def parse_h2load(out: str) -> Load:
    ld = Load(raw=out)
    fin = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s, ([\d.]+)([KMGT]?B)/s", out)
    reqs = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
        r"(\d+) failed, (\d+) errored, (\d+) timeout",
        out,
    )
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not fin or not reqs or not codes:
        ld.error = "h2load: no summary: " + out[-300:]
        return ld
    ld.seconds = _dur(fin.group(1), fin.group(2))
    ld.rps = float(fin.group(3))
    ld.mbps = _size(fin.group(4), fin.group(5)) / 1024**2
    ld.requests = int(reqs.group(4))
    problems = []
    failed, errored, timeout = (int(reqs.group(i)) for i in (5, 6, 7))
    if failed or errored or timeout:
        problems.append(f"{failed} failed, {errored} errored, {timeout} timeout")
    if any(int(codes.group(i)) for i in (2, 3, 4)):
        problems.append(codes.group(0))
    if ld.requests == 0:
        problems.append("no requests succeeded")
    if problems:
        ld.error = "h2load: " + "; ".join(problems)
    return ld


def h2load(
    url: str, conns: int, streams: int, threads: int, seconds: float, cpus: str | None
) -> Load:
    """``h2load -c C -m M -t T -D S --warm-up-time 1 URL``: h2c with prior knowledge."""
    argv = [
        "h2load",
        "-c",
        str(conns),
        "-m",
        str(streams),
        "-t",
        str(threads),
        "-D",
        f"{seconds:g}",
        "--warm-up-time",
        "1",
        url,
    ]
    rc, out = _run(argv, cpus, timeout=seconds + 30)
    ld = parse_h2load(out)
    if rc != 0 and not ld.error:
        ld.error = f"h2load exited {rc}"
    return ld


def parse_fortio(data: dict[str, object], raw: str) -> Load:
    ld = Load(raw=raw[-2000:])
    hist = data.get("DurationHistogram")
    if not isinstance(hist, dict):
        ld.error = "fortio: no DurationHistogram"
        return ld
    ld.requests = int(hist.get("Count", 0))
    ld.rps = float(str(data.get("ActualQPS", 0.0)))
    ld.seconds = float(str(data.get("ActualDuration", 0))) / 1e9
    for p in hist.get("Percentiles") or []:
        ld.latency_ms[f"p{p['Percentile']:g}"] = float(p["Value"]) * 1e3
    codes = data.get("RetCodes")
    bad = {k: v for k, v in codes.items() if k != "200"} if isinstance(codes, dict) else {}
    if bad or ld.requests == 0:
        ld.error = f"fortio: return codes {codes}"
    return ld


def fortio(url: str, qps: int, conns: int, seconds: float, cpus: str | None) -> Load:
    """``fortio load -qps Q -c C -r 0.0001 -t Ss -json F URL``: fixed-rate latency, in
    0.1 ms histogram buckets (fortio's default 1 ms interpolates sub-ms percentiles)."""
    exe = fortio_bin()
    if exe is None:
        return Load(error="fortio not installed (go install fortio.org/fortio@v1.66.0)")
    with tempfile.TemporaryDirectory() as td:
        out_json = Path(td) / "fortio.json"
        argv = [
            exe,
            "load",
            "-qps",
            str(qps),
            "-c",
            str(conns),
            "-r",
            "0.0001",
            "-t",
            f"{seconds:g}s",
            "-p",
            "50,90,99",
            "-loglevel",
            "Warning",
            "-json",
            str(out_json),
            url,
        ]
        rc, out = _run(argv, cpus, timeout=seconds + 30)
        try:
            data = json.loads(out_json.read_text())
        except (OSError, ValueError):
            return Load(error=f"fortio exited {rc} without JSON: {out[-300:]}", raw=out)
    ld = parse_fortio(data, out)
    if rc != 0 and not ld.error:
        ld.error = f"fortio exited {rc}"
    return ld


def parse_s_time(outs: list[str]) -> Load:
    """Sum of parallel `openssl s_time -new` runs: rps = new TLS handshakes per second."""
    ld = Load(raw="\n".join(outs)[-2000:])
    for out in outs:
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if not m or int(m.group(2)) == 0:
            ld.error = "s_time: no summary: " + out[-300:]
            return ld
        ld.requests += int(m.group(1))
        ld.rps += int(m.group(1)) / int(m.group(2))
        ld.seconds = max(ld.seconds, float(m.group(2)))
    if ld.requests == 0:
        ld.error = "s_time: no handshake completed"
    return ld


def tls_handshakes(
    port: int, cert: Path, key: Path, clients: int, seconds: float, cpus: str | None
) -> Load:
    """`clients` parallel ``openssl s_time -new`` loops against 127.0.0.1:port, presenting
    `cert`/`key`: each connection is a full handshake (no resumption), then closed."""
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new"]
    argv += ["-time", str(max(1, round(seconds))), "-cert", str(cert), "-key", str(key)]
    full = (["taskset", "-c", cpus] if cpus else []) + argv
    runs = [
        subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(clients)
    ]
    outs = []
    for run in runs:
        try:
            out, _ = run.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            run.kill()
            out, _ = run.communicate()
        outs.append(out)
    return parse_s_time(outs)
