"""The control plane at scale: ``python -m bench.controlplane`` (full: 10,000 services,
50,000 endpoints, 100 xDS clients) or ``--smoke`` (CI: 200 services, 10 clients).

The control plane runs as its own process (``fastmesh controlplane serve`` on a config
directory, one file per service with its five WorkloadEntries, spread over ten namespaces).
One load process (bench/xdsload, Go and grpc-go) holds every client: each opens an ADS
stream on its own connection, subscribes like a sidecar (CDS and LDS wildcard, then EDS and
RDS by name) and ACKs every response with its names, as Envoy does. Measured, as medians
over rounds:

- first full push: from every client's first request until every client holds CDS, EDS
  (every assignment), LDS and RDS;
- endpoint propagation: from one WorkloadEntry's address changing on disk until every
  client has received the assignment carrying it (the directory poll and the debounce
  included);
- the control plane's CPU seconds and peak RSS (from /proc).

Results: bench/results/controlplane.json and the README table (bench/results/controlplane.md).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

PORT = 8000
NAMESPACES = 10
ENDPOINTS_PER_SERVICE = 5
RESULTS = Path(__file__).parent / "results"
#: The simulated sidecars (Go, grpc-go: see its main.go for why not Python).
XDSLOAD = Path(__file__).parent / "xdsload"
#: Targets of issue 5.
TARGETS = {"first_push_s": 2.0, "endpoint_change_s": 0.1, "rss_mb": 500.0}


def _service_docs(i: int, address_of: dict[int, str]) -> list[dict[str, Any]]:
    ns, name = f"ns{i % NAMESPACES}", f"svc{i}"
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": PORT}]},
        }
    ]
    for j in range(ENDPOINTS_PER_SERVICE):
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "WorkloadEntry",
                "metadata": {"name": f"{name}-{j}", "namespace": ns},
                "spec": {
                    "address": address_of.get(i * ENDPOINTS_PER_SERVICE + j)
                    or f"10.{(i >> 8) & 255}.{i & 255}.{j + 1}",
                    "labels": {"app": name, "version": f"v{j % 2}"},
                },
            }
        )
    return docs


def write_service(directory: Path, i: int, address_of: dict[int, str] | None = None) -> None:
    path = directory / f"svc{i}.yaml"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(_service_docs(i, address_of or {}), sort_keys=False))
    tmp.replace(path)


@dataclass
class Round:
    first_push_s: float
    endpoint_change_s: float
    cpu_s: float
    rss_mb: float


def _proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return cpu, hwm / 1024


def _measure(directory: Path, port: int, pid: int, services: int, clients: int) -> Round:
    watched_service = services // 2
    argv = [str(xdsload_binary()), f"-addr=127.0.0.1:{port}", f"-clients={clients}"]
    argv += [f"-services={services}", f"-namespaces={NAMESPACES}", f"-port={PORT}"]
    load = subprocess.Popen(
        [*argv, f"-watch={watched_service}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first_push = float(_read_json(load, timeout=600)["first_push_s"])
        time.sleep(1.0)  # quiet: every ACK in
        new_address = "10.254.254.254"
        changed = time.time_ns()
        write_service(
            directory, watched_service, {watched_service * ENDPOINTS_PER_SERVICE: new_address}
        )
        assert load.stdin is not None
        load.stdin.write(f"expect {new_address}\n")
        load.stdin.flush()
        reached = int(_read_json(load, timeout=120)["reached_unix_ns"])
        propagation = (reached - changed) / 1e9
        write_service(directory, watched_service)  # back, for the next round
        cpu, rss = _proc_usage(pid)
    finally:
        load.kill()
        load.wait()
    return Round(first_push, propagation, cpu, rss)


def _read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The load process's next report line."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no report from the xDS load within {timeout:g} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the xDS load exited ({proc.wait()}); see its stderr above")
    report: dict[str, Any] = json.loads(line)
    return report


def xdsload_binary() -> Path:
    """bench/xdsload built (Go's build cache makes a rebuild take a second)."""
    out = Path(tempfile.gettempdir()) / "fastmesh-xdsload"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=XDSLOAD, check=True)
    return out


def run_round(services: int, clients: int) -> Round:
    with tempfile.TemporaryDirectory(prefix="fastmesh-cp-bench-") as scratch:
        directory = Path(scratch) / "mesh"
        directory.mkdir()
        for i in range(services):
            write_service(directory, i)
        port = _free_port()
        log = Path(scratch) / "cp.log"
        with log.open("wb") as out:
            argv = ["serve", "--config-dir", str(directory), "--port", str(port)]
            argv += ["--poll", "0.05", "--debounce", "0.01", "-l", "warning"]
            proc = subprocess.Popen(
                [sys.executable, "-m", "fastmesh.controlplane", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(port, timeout=120)
            return _measure(directory, port, proc.pid, services, clients)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def report(rounds: list[Round], services: int, clients: int) -> dict[str, Any]:
    medians = {k: statistics.median(getattr(r, k) for r in rounds) for k in asdict(rounds[0])}
    return {
        "services": services,
        "endpoints": services * ENDPOINTS_PER_SERVICE,
        "clients": clients,
        "rounds": [asdict(r) for r in rounds],
        "median": medians,
        "targets": TARGETS,
    }


def markdown(result: dict[str, Any]) -> str:
    m, t = result["median"], result["targets"]
    rows = [
        (
            "first full push to every client",
            f"{m['first_push_s']:.2f} s",
            f"< {t['first_push_s']:g} s",
        ),
        (
            "one endpoint change reaches every client",
            f"{m['endpoint_change_s'] * 1000:.0f} ms",
            f"< {t['endpoint_change_s'] * 1000:g} ms",
        ),
        ("control-plane CPU, whole round", f"{m['cpu_s']:.1f} s", "—"),
        ("control-plane peak RSS", f"{m['rss_mb']:.0f} MB", f"< {t['rss_mb']:g} MB"),
    ]
    head = (
        f"{result['services']:,} services, {result['endpoints']:,} endpoints, "
        f"{result['clients']} xDS clients, median of {len(result['rounds'])} rounds\n\n"
        "| measure | fastmesh control plane | target |\n| --- | --- | --- |\n"
    )
    return head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.controlplane", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="200 services, 10 clients, 1 round")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    services, clients, rounds = args.services, args.clients, args.rounds
    if args.smoke:
        services, clients, rounds = 200, 10, 1
    results = [run_round(services, clients) for _ in range(rounds)]
    result = report(results, services, clients)
    text = markdown(result)
    print(text)
    if not args.smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "controlplane.json").write_text(json.dumps(result, indent=1) + "\n")
        (RESULTS / "controlplane.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
