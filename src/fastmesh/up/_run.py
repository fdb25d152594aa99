"""`fastmesh up`: CA, mesh config, control plane, the four apps with their sidecars, some
traffic and its summary, then what to try next; Ctrl-C (or SIGTERM) stops it all."""

from __future__ import annotations

import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from fastmesh.ca import CaError, CertificateAuthority
from fastmesh.up._apps import serve_app
from fastmesh.up._layout import (
    ADMIN_PORT,
    INBOUND_PORT,
    SERVICE_PORT,
    XDS_PORT,
    Layout,
    pick_subnet,
)
from fastmesh.up._mesh import write_mesh, write_yaml
from fastmesh.up._procs import Children
from fastmesh.up._sidecar import bootstrap
from fastmesh.up._state import StateError, claim, dir_flag, release
from fastmesh.up._traffic import Tally, measure, wait_until_routed

__all__ = ["report", "run"]

TRAFFIC = 40
#: SIGHUP too: a closed terminal must not leave the mesh running.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
READY_TIMEOUT = 90.0


def say(text: str = "") -> None:
    print(text, flush=True)


def report(tally: Tally, stats: dict[str, int]) -> list[str]:
    """Print what the traffic showed; its errors (none when all is well)."""
    failed = sum(tally.failures.values())
    say(f"  {tally.sent} requests, {failed} errors")
    say("  reviews    sidecar stats   answers")
    for version, count in stats.items():
        bar = "#" * round(30 * count / max(1, sum(stats.values())))
        say(f"    {version}     {count:9}   {tally.versions[version]:7}   {bar}".rstrip())
    say("  (sidecar stats: the frontend sidecar's upstream_rq_total per reviews subset)")
    problems = [f"{n} x {error}" for error, n in tally.failures.most_common()]
    for problem in problems:
        say(f"  error: {problem}")
    return problems


async def _start(directory: Path, layout: Layout, children: Children) -> None:
    ca = directory / "ca"
    CertificateAuthority.init(ca)
    mesh = directory / "mesh"
    shutil.rmtree(mesh, ignore_errors=True)  # a fresh mesh: no fault left from last time
    write_mesh(directory, layout)
    say(f"  mesh config   {mesh}/   (Services, WorkloadEntries, reviews routing)")
    await children.start(
        "controlplane",
        "fastmesh.controlplane",
        "serve",
        "--config-dir", str(mesh),
        "--ca-dir", str(ca),
        "--host", layout.controlplane,
        "--port", str(XDS_PORT),
    )  # fmt: skip
    say(f"  controlplane  {layout.controlplane}:{XDS_PORT}   (ADS; CA in {ca}/)")
    sidecars = directory / "sidecars"
    sidecars.mkdir(exist_ok=True)
    for w in layout.workloads:
        config = sidecars / f"{w.name}.yaml"
        write_yaml(config, bootstrap(layout, w))
        await children.start(
            w.name,
            "fastmesh.proxy",
            "-c", str(config),
            "--concurrency", "1",
            "--drain-time-s", "1",
        )  # fmt: skip
        say(
            f"  {w.name:<12}  app 127.0.0.1:{w.app_port}, sidecar {w.address}: inbound "
            f":{INBOUND_PORT} (mTLS), outbound :{SERVICE_PORT}, admin :{ADMIN_PORT}"
        )


def _aligned(groups: list[list[tuple[str, str]]]) -> str:
    """`command  # comment` lines, the comments in one column per group; groups apart."""
    blocks = []
    for rows in groups:
        width = max(len(cmd) for cmd, _ in rows)
        blocks.append("\n".join(f"  {cmd:<{width}}  # {why}" for cmd, why in rows))
    return "\n\n".join(blocks)


def _next_steps(directory: Path, layout: Layout) -> str:
    d = dir_flag(directory)
    f = layout.workload("frontend-v1").address
    front = "curl -s -H 'host: frontend'"
    groups = [
        [
            (f"{front} {f}:{SERVICE_PORT}/", "one request, the whole call tree"),
            (f"{front} -H 'end-user: jason' {f}:{SERVICE_PORT}/", "jason always gets reviews v2"),
            (f"fastmesh up traffic{d}", "40 requests: which reviews versions answered"),
        ],
        [
            (f"fastmesh up shift v3=100{d}", "canary: all of reviews' traffic to v3"),
            (f"fastmesh up shift v1=50,v3=50{d}", "any split summing to 100"),
            (
                f"fastmesh up fault ratings --abort 503 --percent 50{d}",
                "half the ratings calls fail",
            ),
            (f"fastmesh up fault ratings --delay 2s{d}", "every ratings call takes 2 s"),
            (f"fastmesh up fault ratings --off{d}", "no fault"),
        ],
        [
            (f"fastmesh up deny details --from frontend{d}", "AuthorizationPolicy: details 403s"),
            (f"fastmesh up deny details --off{d}", "remove it"),
            (f"fastmesh up mtls strict{d}", "PeerAuthentication: mTLS only, everywhere"),
            (f"curl -s {f}:{INBOUND_PORT}/", "plaintext to an inbound port: refused when strict"),
            (f"fastmesh up mtls permissive{d}", "plaintext accepted again (Istio's default)"),
        ],
        [
            (
                f"fastmesh controlplane proxy-status --server {layout.controlplane}:{XDS_PORT}",
                "each sidecar's xDS sync state",
            ),
            (
                f"curl -s {f}:{ADMIN_PORT}/stats | grep 'reviews.*rq_total'",
                "frontend sidecar's stats",
            ),
            (f"curl -s {f}:{ADMIN_PORT}/config_dump | less", "what the control plane sent it"),
            (f"ls {directory}/mesh", "the config: edit a file, the change is pushed"),
            (f"tail -f {directory}/logs/*.log", "control plane and sidecar logs"),
        ],
    ]
    return f"\nTry next, in another terminal:\n{_aligned(groups)}\n\nCtrl-C stops everything."


async def _session(directory: Path, smoke: bool, children: Children, layout: Layout) -> int:
    """Start the mesh, send the traffic; in smoke mode the verdict, else wait forever."""
    await _start(directory, layout, children)
    say("waiting for every sidecar to get its config over xDS ...")
    if not await wait_until_routed(layout, READY_TIMEOUT):
        exited = "; ".join(children.exited())
        say(f"the mesh did not come up: {exited or f'see {children.logs}/*.log'}")
        return 1
    say(f"\nTraffic: {TRAFFIC} requests to frontend through its sidecar")
    tally, stats = await measure(layout, TRAFFIC)
    problems = report(tally, stats)
    if smoke:
        problems += [f"reviews {v} never answered" for v, n in stats.items() if not n]
        say("\nsmoke: " + ("FAILED: " + "; ".join(problems) if problems else "OK"))
        return 1 if problems else 0
    say(_next_steps(directory, layout))
    await trio.sleep_forever()


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()
        return


async def _serve(directory: Path, smoke: bool, children: Children, layout: Layout) -> int:
    """The session, until it ends or a signal comes (at any point, even during start-up);
    then the sidecars, the control plane and the apps stop, in that order."""
    say(f"fastmesh up: a demo mesh on 127.0.{layout.subnet}.0/24, files in {directory}")
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            try:
                with trio.CancelScope() as session:
                    nursery.start_soon(_cancel_on_signal, signals, session)
                    try:
                        for w in layout.workloads:
                            await nursery.start(serve_app, w)
                        return await _session(directory, smoke, children, layout)
                    except (CaError, OSError) as exc:  # here, before the nursery groups it
                        say(f"fastmesh up: {exc}")
                        return 1
                say("\nstopping: sidecars drain, then the control plane and the apps stop")
                return 1 if smoke else 0
            finally:
                with trio.CancelScope(shield=True):
                    await children.stop([w.name for w in layout.workloads])
                    await children.stop(["controlplane"])
                nursery.cancel_scope.cancel()


async def run(directory: Path, smoke: bool) -> int:
    try:
        layout = pick_subnet()
        claim(directory, layout)
    except (StateError, RuntimeError) as exc:
        say(f"fastmesh up: {exc}")
        return 1
    children = Children(directory / "logs")
    try:
        return await _serve(directory, smoke, children, layout)
    finally:
        release(directory)
        if not smoke:
            say("stopped.")
