"""The control plane at scale (issue 5): ``python -m bench.controlplane [--smoke]``.

Generates a mesh (Services, WorkloadEntries, some VirtualServices and DestinationRules with
subsets) into a config directory, starts ``python -m fastmesh.controlplane serve`` on it as a
separate process, and runs N xDS clients in this process (trio, fastmesh's own gRPC call),
spread over a few namespaces. Each client subscribes as Envoy does (CDS, then EDS for the EDS
clusters and LDS, then RDS for the listeners' route configs) and ACKs every response.

Per round: the time until every client holds a complete first snapshot; then one
WorkloadEntry's address is edited and we time until every client has received and ACKed
the EDS change (the file registry's poll interval and the debounce are part of that time);
the control plane's CPU seconds and peak RSS (VmHWM) come from /proc. Medians over rounds go
to bench/results/controlplane.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

from bench import procs
from fastmesh.controlplane import ADS_PATH
from fastmesh.xds._call import GrpcCall, open_call
from fastmesh.xds._resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, decode
from fastmesh.xds._session import node_message

RESULTS = Path(__file__).resolve().parent / "results"
#: Every this many services gets a VirtualService (80/20 over subsets) and a DestinationRule.
ROUTED_EVERY = 100
#: Services per generated YAML file (the file registry re-reads the directory on a change).
SERVICES_PER_FILE = 100


@dataclass(frozen=True)
class Scale:
    services: int
    endpoints_per_service: int
    clients: int
    namespaces: int
    rounds: int
    poll: float
    debounce: float
    timeout: float


FULL = Scale(10_000, 5, 100, 10, 3, poll=0.02, debounce=0.01, timeout=300.0)
SMOKE = Scale(200, 5, 10, 2, 1, poll=0.02, debounce=0.01, timeout=60.0)
TARGETS = {"first_push_s": 2.0, "endpoint_change_ms": 100.0, "peak_rss_mb": 500.0}


# --- the mesh --------------------------------------------------------------------------------


def _address(service: int, replica: int) -> str:
    return f"10.{service // 256 % 256}.{service % 256}.{replica + 1}"


def _service_docs(i: int, scale: Scale) -> list[dict[str, Any]]:
    name, ns = f"svc-{i}", f"ns-{i % scale.namespaces}"
    meta = {"name": name, "namespace": ns}
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]},
        }
    ]
    for r in range(scale.endpoints_per_service):
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "WorkloadEntry",
                "metadata": {"name": f"{name}-{r}", "namespace": ns},
                "spec": {
                    "address": _address(i, r),
                    "labels": {"app": name, "version": f"v{r % 2 + 1}"},
                    "ports": {"http": 8080},
                    "serviceAccount": name,
                },
            }
        )
    if i % ROUTED_EVERY == 0:
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": meta,
                "spec": {
                    "host": name,
                    "subsets": [
                        {"name": "v1", "labels": {"version": "v1"}},
                        {"name": "v2", "labels": {"version": "v2"}},
                    ],
                },
            }
        )
        dest = [
            {"destination": {"host": name, "subset": s}, "weight": w}
            for s, w in (("v1", 80), ("v2", 20))
        ]
        docs.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": meta,
                "spec": {"hosts": [name], "http": [{"route": dest, "timeout": "2s"}]},
            }
        )
    return docs


def _file_of(i: int) -> str:
    return f"mesh-{i // SERVICES_PER_FILE:05d}.yaml"


def write_mesh(directory: Path, scale: Scale, *, moved: int | None = None) -> None:
    """Write every file, or (with ``moved``) only the file of service 0 with its first
    WorkloadEntry's address set to 10.255.x.y (x.y = ``moved``), atomically."""
    first = range(0, scale.services, SERVICES_PER_FILE)
    for start in first if moved is None else [0]:
        docs = [
            d
            for i in range(start, min(start + SERVICES_PER_FILE, scale.services))
            for d in _service_docs(i, scale)
        ]
        if moved is not None:
            docs[1]["spec"]["address"] = moved_address(moved)
        path = directory / _file_of(start)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.dump_all(docs, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
        tmp.replace(path)


def moved_address(n: int) -> str:
    return f"10.255.{n // 256 % 256}.{n % 256}"


# --- the clients -----------------------------------------------------------------------------


class Names:
    """Resource bytes -> (name, is an EDS cluster), shared by all clients: clients of one
    namespace receive the same bytes, so each resource is parsed once per load process."""

    def __init__(self) -> None:
        self._clusters: dict[bytes, tuple[str, bool]] = {}
        self._endpoints: dict[bytes, str] = {}

    def cluster(self, value: bytes) -> tuple[str, bool]:
        hit = self._clusters.get(value)
        if hit is None:
            c = cluster_pb2.Cluster.FromString(value)
            hit = self._clusters[value] = (c.name, c.type == cluster_pb2.Cluster.EDS)
        return hit

    def endpoint(self, value: bytes) -> str:
        hit = self._endpoints.get(value)
        if hit is None:
            hit = self._endpoints[value] = endpoint_pb2.ClusterLoadAssignment.FromString(
                value
            ).cluster_name
        return hit


def _route_names(listener: Any) -> set[str]:
    """Every `rds.route_config_name` inside a decoded Listener (a JSON-shaped dict)."""
    found: set[str] = set()
    stack = [listener]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            rds = node.get("rds")
            if isinstance(rds, dict) and "route_config_name" in rds:
                found.add(str(rds["route_config_name"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


class Client:
    """One simulated sidecar: subscribes as Envoy does and ACKs every response."""

    def __init__(self, index: int, namespace: str, names: Names) -> None:
        self.node = node_message(
            f"sidecar~10.200.0.{index}~client-{index}.{namespace}~{namespace}.svc.cluster.local",
            f"client-{index}",
            {"NAMESPACE": namespace},
        )
        self.names = names
        self.wanted: dict[str, set[str]] = {}
        self.held: dict[str, set[str]] = {
            CLUSTER: set(),
            LISTENER: set(),
            ENDPOINT: set(),
            ROUTE: set(),
        }
        self.complete = trio.Event()
        self.watch: bytes | None = None  # an address to wait for in EDS
        self.seen = trio.Event()
        self.ready_at = 0.0
        self.seen_at = 0.0

    def _request(self, type_url: str, version: str, nonce: str) -> discovery_pb2.DiscoveryRequest:
        names = sorted(self.wanted.get(type_url, ()))
        return discovery_pb2.DiscoveryRequest(
            version_info=version, type_url=type_url, response_nonce=nonce, resource_names=names
        )

    async def run(self, port: int) -> None:
        async with open_call("127.0.0.1", port, ADS_PATH) as call:
            first = self._request(CLUSTER, "", "")
            first.node.CopyFrom(self.node)
            await call.send(first.SerializeToString())
            while True:
                raw = await call.receive()
                await self._on_response(call, discovery_pb2.DiscoveryResponse.FromString(raw))

    async def _on_response(self, call: GrpcCall, resp: Any) -> None:
        t = resp.type_url
        follow: list[discovery_pb2.DiscoveryRequest] = []
        if t == CLUSTER:
            eds = set()
            held = set()
            for r in resp.resources:
                name, is_eds = self.names.cluster(r.value)
                held.add(name)
                if is_eds:
                    eds.add(name)
            self.held[CLUSTER] = held
            if self.wanted.get(ENDPOINT) != eds:
                self.wanted[ENDPOINT] = eds
                follow.append(self._request(ENDPOINT, "", ""))
            if LISTENER not in self.wanted:
                self.wanted[LISTENER] = set()
                follow.append(self._request(LISTENER, "", ""))
        elif t == LISTENER:
            routes: set[str] = set()
            for r in resp.resources:
                routes |= _route_names(decode(t, r)[1])
            self.held[LISTENER] = {decode(t, r)[0] for r in resp.resources}
            if self.wanted.get(ROUTE) != routes:
                self.wanted[ROUTE] = routes
                follow.append(self._request(ROUTE, "", ""))
        elif t == ENDPOINT:
            for r in resp.resources:
                self.held[ENDPOINT].add(self.names.endpoint(r.value))
                if self.watch is not None and self.watch in r.value:
                    self.seen_at = time.monotonic()
                    self.seen.set()
        elif t == ROUTE:
            self.held[ROUTE] |= {decode(t, r)[0] for r in resp.resources}
        ack = self._request(t, resp.version_info, resp.nonce)
        for request in [ack, *follow]:
            await call.send(request.SerializeToString())
        if not self.complete.is_set() and self._is_complete():
            self.ready_at = time.monotonic()
            self.complete.set()

    def _is_complete(self) -> bool:
        return (
            bool(self.held[CLUSTER])
            and bool(self.held[LISTENER])
            and ENDPOINT in self.wanted
            and self.wanted[ENDPOINT] <= self.held[ENDPOINT]
            and ROUTE in self.wanted
            and self.wanted[ROUTE] <= self.held[ROUTE]
        )


# --- one round -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_listening(proc: procs.Proc, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise procs.ProcError(f"control plane exited:\n{proc.log_tail()}")
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.05)
            continue
        await stream.aclose()
        return
    raise procs.ProcError(f"control plane not listening after {timeout:.0f}s:\n{proc.log_tail()}")


async def _round(scale: Scale, directory: Path, logdir: Path, n: int) -> dict[str, float]:
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "fastmesh.controlplane",
        "serve",
        "--config-dir",
        str(directory),
        "--port",
        str(port),
        "--poll",
        str(scale.poll),
        "--debounce",
        str(scale.debounce),
        "-l",
        "warning",
    ]
    proc = procs.start(f"controlplane-{n}", argv, None, logdir)
    try:
        t_start = time.monotonic()
        await _wait_listening(proc, port, scale.timeout)
        listening = time.monotonic() - t_start
        names = Names()
        clients = [Client(i, f"ns-{i % scale.namespaces}", names) for i in range(scale.clients)]
        async with trio.open_nursery() as nursery:
            t0 = time.monotonic()
            for c in clients:
                nursery.start_soon(c.run, port)
            with trio.fail_after(scale.timeout):
                for c in clients:
                    await c.complete.wait()
            first_push = max(c.ready_at for c in clients) - t0
            cpu_after_push = procs.cpu_seconds(proc.pid)
            await trio.sleep(1.0)  # quiet: late ACKs and the registry settle
            watch = moved_address(n)
            for c in clients:
                c.watch = watch.encode()
            t1 = time.monotonic()
            write_mesh(directory, scale, moved=n)
            with trio.fail_after(scale.timeout):
                for c in clients:
                    await c.seen.wait()
            change = max(c.seen_at for c in clients) - t1
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        return {
            "listening_s": listening,
            "first_push_s": first_push,
            "endpoint_change_ms": change * 1000,
            "cpu_first_push_s": cpu_after_push,
            "cpu_total_s": procs.cpu_seconds(proc.pid),
            "peak_rss_mb": procs.peak_rss_mb(proc.pid),
            "rss_mb": procs.rss_mb(proc.pid),
        }
    finally:
        proc.stop()


def markdown(doc: dict[str, Any]) -> str:
    s, m = doc["scale"], doc["median"]
    lines = [
        f"Control plane at scale: {s['services']:,} services, "
        f"{s['services'] * s['endpoints_per_service']:,} endpoints, {s['clients']} xDS clients "
        f"over {s['namespaces']} namespaces; median of {s['rounds']} rounds "
        f"(file registry, poll {s['poll']} s, debounce {s['debounce']} s).",
        "",
        "| metric | value | target |",
        "| --- | --- | --- |",
        f"| full first push to every client | {m['first_push_s']:.2f} s | < 2 s |",
        f"| one endpoint change reaches every client | {m['endpoint_change_ms']:.0f} ms"
        " | < 100 ms |",
        f"| control-plane peak RSS | {m['peak_rss_mb']:.0f} MB | < 500 MB |",
        f"| control-plane CPU, start to first push | {m['cpu_first_push_s']:.2f} s | — |",
        f"| control-plane start to listening | {m['listening_s']:.2f} s | — |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.controlplane", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few hundred services (CI)")
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else FULL
    if args.rounds:
        scale = Scale(**{**asdict(scale), "rounds": args.rounds})
    work = Path(tempfile.mkdtemp(prefix="fastmesh-cp-bench-"))
    directory = work / "mesh"
    directory.mkdir()
    write_mesh(directory, scale)
    rows = []
    try:
        for n in range(1, scale.rounds + 1):  # each round moves a different address
            row = trio.run(_round, scale, directory, work, n)
            print(json.dumps(row), flush=True)
            rows.append(row)
    except (procs.ProcError, trio.TooSlowError) as exc:
        print(
            f"control-plane bench failed ({exc!r}); files and logs kept in {work}", file=sys.stderr
        )
        return 1
    shutil.rmtree(work)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    doc = {
        "mode": "smoke" if args.smoke else "full",
        "scale": asdict(scale),
        "rounds": rows,
        "median": median,
        "targets": TARGETS,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    stem = "controlplane-smoke" if args.smoke else "controlplane"
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
