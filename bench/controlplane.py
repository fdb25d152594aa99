"""The control plane at scale: ``python -m bench.controlplane`` (full: 10,000 services,
50,000 endpoints, 100 xDS clients) or ``--smoke`` (CI: 200 services, 10 clients).

The control plane runs as its own process (``fastmesh controlplane serve`` on a config
directory, one file per service with its five WorkloadEntries, spread over ten namespaces).
One load process holds every client: each opens an ADS stream, subscribes like a sidecar
(CDS and LDS wildcard, then EDS and RDS by name) and ACKs every response. Measured, as
medians over rounds:

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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio
import yaml
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from fastmesh.xds._call import open_call

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
_PREFIX = "type.googleapis.com/envoy.config."
CDS = _PREFIX + "cluster.v3.Cluster"
EDS = _PREFIX + "endpoint.v3.ClusterLoadAssignment"
LDS = _PREFIX + "listener.v3.Listener"
RDS = _PREFIX + "route.v3.RouteConfiguration"
PORT = 8000
NAMESPACES = 10
ENDPOINTS_PER_SERVICE = 5
RESULTS = Path(__file__).parent / "results"
#: Targets of issue 5.
TARGETS = {"first_push_s": 2.0, "endpoint_change_s": 0.1, "rss_mb": 500.0}


def cluster_name(i: int) -> str:
    return f"outbound|{PORT}||svc{i}.ns{i % NAMESPACES}.svc.cluster.local"


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
class Client:
    """One simulated sidecar: what it holds and when it got there."""

    index: int
    eds_names: list[str]
    holds: dict[str, set[str]] = field(default_factory=dict)
    complete_at: float | None = None
    #: The address of the watched endpoint in the last assignment of the watched cluster.
    watched: str = ""
    watched_at: float = 0.0


def _node(i: int) -> Any:
    node = base_pb2.Node(
        id=f"sidecar~10.255.0.{i}~bench-{i}.ns{i % NAMESPACES}~ns.svc.cluster.local"
    )
    meta = struct_pb2.Struct()
    meta.update({"NAMESPACE": f"ns{i % NAMESPACES}"})
    node.metadata.CopyFrom(meta)
    return node


def _assignment_name(value: bytes) -> str:
    """An encoded ClusterLoadAssignment's name, read from its first field (`cluster_name`,
    written first) without decoding the rest: 100 clients x 10k assignments would otherwise
    spend the load process's CPU on the machine the control plane runs on."""
    length, shift, i = 0, 0, 1
    while True:
        byte = value[i]
        length |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value[i : i + length].decode()
        shift += 7


def _names(response: Any) -> set[str]:
    """Resource names (assignments by name; other types counted, not named)."""
    if response.type_url == EDS:
        return {_assignment_name(r.value) for r in response.resources}
    return {str(i) for i in range(len(response.resources))}


def subscriptions(eds_names: list[str]) -> dict[str, bytes]:
    """The `resource_names` of each type's requests, encoded (LDS, CDS: wildcard)."""
    request = discovery_pb2.DiscoveryRequest
    return {
        EDS: request(resource_names=eds_names).SerializeToString(),
        RDS: request(resource_names=[str(PORT)]).SerializeToString(),
        LDS: b"",
        CDS: b"",
    }


async def run_client(
    client: Client, port: int, watch: str, started: trio.Event, subscribed: dict[str, bytes]
) -> None:
    """`subscribed`: each type's `resource_names`, encoded once for every client (an ACK
    carries them all again; encoding 10k names per ACK and client made the load process,
    not the control plane, the slow part of an endpoint change)."""
    request = discovery_pb2.DiscoveryRequest
    async with open_call("127.0.0.1", port, ADS) as call:
        first = request(type_url=CDS)
        first.node.CopyFrom(_node(client.index))
        await call.send(first.SerializeToString())
        for type_url in (LDS, EDS, RDS):
            await call.send(subscribed[type_url] + request(type_url=type_url).SerializeToString())
        started.set()
        while True:
            response = discovery_pb2.DiscoveryResponse.FromString(await call.receive())
            now = time.perf_counter()
            names = _names(response)
            if response.type_url == EDS:
                client.holds.setdefault(EDS, set()).update(names)
                for r in response.resources if watch in names else ():
                    cla = endpoint_pb2.ClusterLoadAssignment.FromString(r.value)
                    if cla.cluster_name == watch:
                        first_host = cla.endpoints[0].lb_endpoints[0].endpoint.address
                        client.watched, client.watched_at = first_host.socket_address.address, now
            else:
                client.holds[response.type_url] = names
            ack = request(
                type_url=response.type_url,
                version_info=response.version_info,
                response_nonce=response.nonce,
            )
            # serialized messages concatenated are one message with both's fields
            await call.send(subscribed[response.type_url] + ack.SerializeToString())
            if client.complete_at is None and _complete(client):
                client.complete_at = now


def _complete(client: Client) -> bool:
    return len(client.holds.get(EDS, ())) == len(client.eds_names) and all(
        client.holds.get(t) for t in (CDS, LDS, RDS)
    )


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


async def _measure(directory: Path, port: int, pid: int, services: int, clients: int) -> Round:
    watched_service = services // 2
    watch = cluster_name(watched_service)
    eds_names = [cluster_name(i) for i in range(services)]
    population = [Client(i, eds_names) for i in range(clients)]
    subscribed = subscriptions(eds_names)
    async with trio.open_nursery() as nursery:
        starts = [trio.Event() for _ in population]
        t0 = time.perf_counter()
        for client, started in zip(population, starts, strict=True):
            nursery.start_soon(run_client, client, port, watch, started, subscribed)
        with trio.fail_after(600):
            while not all(c.complete_at for c in population):
                await trio.sleep(0.01)
        first_push = max(c.complete_at or 0 for c in population) - t0
        await trio.sleep(1.0)  # quiet: every ACK in
        new_address = "10.254.254.254"
        changed = time.perf_counter()
        write_service(
            directory, watched_service, {watched_service * ENDPOINTS_PER_SERVICE: new_address}
        )
        with trio.fail_after(120):
            while not all(c.watched == new_address for c in population):
                await trio.sleep(0.002)
        propagation = max(c.watched_at for c in population) - changed
        write_service(directory, watched_service)  # back, for the next round
        cpu, rss = _proc_usage(pid)
        nursery.cancel_scope.cancel()
    return Round(first_push, propagation, cpu, rss)


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
            return trio.run(_measure, directory, port, proc.pid, services, clients)
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
