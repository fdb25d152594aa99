"""Control-plane test helpers: the control plane in a background thread (for sync tests beside
real Envoy), an ADS bootstrap for Envoy, and mesh YAML builders for a config directory."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio
import yaml

from fastmesh.controlplane import ControlPlane, FileRegistry, ProxyStatus, sidecar_bootstrap
from tests.support import free_port

T = TypeVar("T")
Json = dict[str, Any]


class ControlPlaneThread:
    """`fastmesh.controlplane.ControlPlane` on a file registry, run by trio in a thread.

    with ControlPlaneThread(config_dir) as cp:
        ... cp.port ...; cp.call(lambda: cp.plane.proxy_status())
    """

    def __init__(
        self,
        config_dir: Path,
        *,
        port: int = 0,
        poll_interval: float = 0.05,
        debounce: float = 0.05,
    ) -> None:
        self.registry = FileRegistry(config_dir, poll_interval=poll_interval)
        self.plane = ControlPlane(self.registry, port=port, debounce=debounce)
        self.port = 0
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self.failure: BaseException | None = None

    def start(self) -> ControlPlaneThread:
        started: queue.Queue[int | BaseException] = queue.Queue()

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._cancel = scope
                async with trio.open_nursery() as nursery:
                    started.put(await nursery.start(self.plane.run))

        def run() -> None:
            try:
                trio.run(main)
            except BaseException as exc:
                self.failure = exc
                started.put(exc)

        self._thread = threading.Thread(target=run, name="controlplane", daemon=True)
        self._thread.start()
        result = started.get(timeout=10)
        if isinstance(result, BaseException):
            raise RuntimeError("the control plane failed to start") from result
        self.port = result
        return self

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the control plane's trio thread (a consistent view of its state)."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, trio_token=self._token)

    def proxy_status(self) -> list[ProxyStatus]:
        return self.call(self.plane.proxy_status)

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._cancel is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(timeout=10)
        self._thread = None
        if self.failure is not None:
            raise RuntimeError("the control plane crashed") from self.failure

    def __enter__(self) -> ControlPlaneThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(what: str, check: Callable[[], T | None], *, timeout: float = 15.0) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # the condition is not reachable yet (e.g. a refused port)
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(0.02)


def ads_bootstrap(
    *,
    admin_port: int,
    xds_port: int,
    node_id: str,
    namespace: str = "default",
    metadata: Json | None = None,
    delta: bool = False,
) -> Json:
    """A sidecar bootstrap that takes everything (LDS, CDS; RDS, EDS through them) from the
    control plane on `xds_port` (incremental with `delta`); `metadata` joins the node's
    (`WORKLOAD_NAME`, ...)."""
    return sidecar_bootstrap(
        node_id=node_id,
        cluster=node_id.split("~")[2].split(".")[0],
        metadata={"NAMESPACE": namespace, **(metadata or {})},
        admin=("127.0.0.1", admin_port),
        control_planes=[("127.0.0.1", xds_port)],
        delta=delta,
    )


def account_sidecar(account: str, xds_port: int, outbound: str, **metadata: Any) -> Json:
    """The bootstrap of `account`'s sidecar in `default` (pod `<account>-v1`), all from the
    control plane, its outbound listeners on the `outbound` address; `metadata` joins."""
    node_id = f"sidecar~{outbound}~{account}-v1.default~default.svc.cluster.local"
    meta = {"SERVICE_ACCOUNT": account, "FASTMESH_OUTBOUND_ADDRESS": outbound, **metadata}
    return ads_bootstrap(admin_port=free_port(), xds_port=xds_port, node_id=node_id, metadata=meta)


# --- mesh YAML ------------------------------------------------------------------------------


def service(name: str, port: int, *, namespace: str = "default", port_name: str = "http") -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"name": port_name, "port": port}]},
    }


def workload(
    name: str,
    app: str,
    version: str,
    port: int,
    *,
    namespace: str = "default",
    port_name: str = "http",
    address: str = "127.0.0.1",
) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "address": address,
            "labels": {"app": app, "version": version},
            "ports": {port_name: port},
            "serviceAccount": app,
        },
    }


def write_yaml(path: Path, *docs: Json) -> None:
    """Write `docs` as one multi-document YAML file, atomically (sibling file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    tmp.replace(path)
