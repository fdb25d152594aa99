"""The `fastmesh-proxy` process: engine lifecycle, live reload, signals, the app child.

One trio nursery holds every task: the admin listener, the config watcher, the signal
handler and (with `-- APP`) the application child. `ProxyServer.run` returns the exit
status: the app's when there is one, else 0 (or 1 when the first config fails).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from fastmesh.config._stamp import Stamp, stamp
from fastmesh.proxy._config import ConfigError, LoadedConfig, load_file_in_child

if TYPE_CHECKING:
    from fastmesh.proxy._dynamic import DynamicConfig

__all__ = ["ProxyServer", "ServeOptions", "ServerState", "exit_status"]

log = logging.getLogger("fastmesh.proxy.main")
config_log = logging.getLogger("fastmesh.proxy.config")
app_log = logging.getLogger("fastmesh.proxy.app")

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class ServerState(enum.IntEnum):
    """Envoy's `envoy.admin.v3.ServerInfo.State` (the value of the `server.state` gauge)."""

    LIVE = 0
    DRAINING = 1
    PRE_INITIALIZING = 2
    INITIALIZING = 3


@dataclass
class ServeOptions:
    """What `fastmesh-proxy` was asked to do (parsed from Envoy's flags)."""

    config_path: Path
    #: Engine worker threads; 0 = one per core.
    concurrency: int = 0
    #: How long draining may take on the way out, seconds (Envoy's `--drain-time-s`).
    drain_time_s: float = 600.0
    #: `--service-node` / `--service-cluster`: override the bootstrap's `node`.
    service_node: str | None = None
    service_cluster: str | None = None
    #: Write the admin `ip:port` here once it listens (Envoy's `--admin-address-path`).
    admin_address_path: Path | None = None
    #: The application to supervise (`-- APP ARGS...`); empty = none.
    app: Sequence[str] = ()
    #: Seconds between checks of the config file for changes; 0 disables live reload.
    reload_interval_s: float = 1.0
    log_level: str = "info"
    base_id: int = 0
    #: `--mode init_only`: exit once every listener is bound.
    init_only: bool = False
    #: Every command-line argument, for `/server_info`.
    argv: Sequence[str] = field(default_factory=list)


def exit_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: killed by signal n -> 128 + n."""
    return 128 - returncode if returncode < 0 else returncode


class ProxyServer:
    """One running proxy: the engine plus everything Python does around it."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.state = ServerState.PRE_INITIALIZING
        self.health_check_failed = False
        self.started_at = time.monotonic()
        self.config: LoadedConfig | None = None
        self.engine: Any = None
        self.concurrency = options.concurrency or (os.cpu_count() or 1)
        self.admin_address: tuple[str, int] | None = None
        self.counters: dict[str, int] = {
            "server.config_reload_success": 0,
            "server.config_reload_failure": 0,
        }
        self.last_reload_error = ""
        self.exit_code = 0
        self._stop = trio.Event()
        self._app: trio.Process | None = None
        self._app_exited = trio.Event()
        self._drain_scope = trio.CancelScope()
        self._drain_thread_done = threading.Event()
        self._drain_thread_done.set()
        # What the last load attempt read: the config file's stamp, and the stamps of the
        # files it references (certificates, keys, CA bundles).
        self._config_stamp: Stamp | None = None
        self._referenced: Mapping[str, Stamp | None] = {}
        self._seen_digest = ""
        #: `dynamic_resources` in the bootstrap: the ADS client and what it delivered.
        self.dynamic: DynamicConfig | None = None
        # The ADS client and the file watcher both apply snapshots: one at a time.
        self._apply_lock = trio.Lock()

    # --- what admin reads ----------------------------------------------------------------

    @property
    def server_state(self) -> ServerState:
        if self.health_check_failed and self.state == ServerState.LIVE:
            return ServerState.DRAINING
        return self.state

    def uptime_s(self) -> int:
        return int(time.monotonic() - self.started_at)

    def node(self) -> tuple[str, str]:
        cfg = self.config
        node_id = self.options.service_node or (cfg.node_id if cfg else "")
        cluster = self.options.service_cluster or (cfg.node_cluster if cfg else "")
        return node_id, cluster

    def stats(self) -> dict[str, int]:
        """Every stat: the engine's counters plus the `server.*` ones kept here."""
        out: dict[str, int] = dict(self.engine.stats()) if self.engine is not None else {}
        state = self.server_state
        out.update(self.counters)
        out["server.live"] = int(state == ServerState.LIVE)
        out["server.state"] = int(state)
        out["server.uptime"] = self.uptime_s()
        out["server.concurrency"] = self.concurrency
        if self.engine is not None:
            out["server.total_connections"] = int(self.engine.active_connections())
        if self.dynamic is not None:
            out.update(self.dynamic.client.stats())
        return out

    def clusters(self) -> list[dict[str, Any]]:
        return list(self.engine.clusters()) if self.engine is not None else []

    def listening(self) -> dict[str, str]:
        return dict(self.engine.listening()) if self.engine is not None else {}

    def request_stop(self, reason: str) -> None:
        """Begin a graceful exit (admin `/quitquitquit`): like SIGTERM."""
        log.info("shutting down: %s", reason)
        self._begin_exit(signal.SIGTERM)

    async def apply(self, loaded: LoadedConfig) -> bool:
        """Swap the engine to `loaded`; False if it is the running version already. Raises
        ValueError (the engine's ConfigError) when the engine refuses it."""
        async with self._apply_lock:
            if self.config is not None and loaded.version == self.config.version:
                return False
            await trio.to_thread.run_sync(self.engine.apply, loaded.snapshot_json())
            self.config = loaded
            return True

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until told to stop; returns the process exit status."""
        try:
            from fastmesh._native import Engine
        except ImportError as exc:
            log.critical("the fastmesh engine is not built (%s); run scripts/build.sh", exc)
            return 1
        path = self.options.config_path
        config_stamp = stamp(path)  # before reading: a change while loading is seen later
        try:
            self.config = await load_file_in_child(path)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                config_log.critical("%s", line)
            return 1
        self.state = ServerState.INITIALIZING
        log.info("initializing engine with %d worker threads", self.concurrency)
        self.engine = Engine(self.concurrency, drain_time_s=self.options.drain_time_s)
        try:
            try:
                await trio.to_thread.run_sync(self.engine.apply, self.config.snapshot_json())
            except ValueError as exc:  # fastmesh._native.ConfigError
                config_log.critical("%s: the engine rejected the config: %s", path, exc)
                return 1
            self._watch(config_stamp, self.config.compiled.files)
            self._seen_digest = self.config.version
            if self.config.compiled.ads_addresses:
                from fastmesh.proxy._dynamic import DynamicConfig

                compiled = self.config.compiled
                self.dynamic = DynamicConfig(self, compiled.ads_addresses, compiled.ads_delta)
            for name, address in sorted(self.engine.listening().items()):
                log.info("listener '%s' listening on %s", name, address)
            return await self._serve()
        finally:
            self._shutdown_engine()

    async def _serve(self) -> int:
        from fastmesh.proxy._admin import serve_admin

        assert self.config is not None
        with trio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._handle_signals, signals)
                if self.config.admin_address is not None:
                    host, port = self.config.admin_address
                    try:
                        self.admin_address = await nursery.start(serve_admin, self, host, port)
                    except OSError as exc:
                        log.critical("cannot listen on admin address %s:%d: %s", host, port, exc)
                        nursery.cancel_scope.cancel()
                        return 1
                    self._write_admin_address()
                if self.dynamic is not None:
                    await self._start_dynamic(nursery)
                self.state = ServerState.LIVE
                log.info("all listeners ready; version %s", self.config.version)
                if self.options.init_only:
                    self._stop.set()
                elif self.options.reload_interval_s > 0:
                    nursery.start_soon(self._watch_config)
                if self.options.app and not self.options.init_only:
                    nursery.start_soon(self._run_app)
                await self._stop.wait()
                await self._drain()
                nursery.cancel_scope.cancel()
        return self.exit_code

    async def _start_dynamic(self, nursery: trio.Nursery) -> None:
        """Start the ADS client; wait (bounded) for its first snapshot, as Envoy's
        initialization waits for CDS and LDS."""
        from fastmesh.proxy._dynamic import INITIAL_FETCH_TIMEOUT_S

        assert self.dynamic is not None
        nursery.start_soon(self.dynamic.run)
        with trio.move_on_after(INITIAL_FETCH_TIMEOUT_S):
            await self.dynamic.client.initialized.wait()
            return
        log.warning(
            "no complete xDS snapshot after %gs; serving the static config meanwhile",
            INITIAL_FETCH_TIMEOUT_S,
        )

    def _write_admin_address(self) -> None:
        target = self.options.admin_address_path
        if target is None or self.admin_address is None:
            return
        host, port = self.admin_address
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(f"{host}:{port}")
        tmp.replace(target)

    async def _drain(self) -> None:
        self.state = ServerState.DRAINING
        timeout = self.options.drain_time_s
        log.info("draining listeners (up to %gs)", timeout)
        done = False
        with self._drain_scope:
            done = await trio.to_thread.run_sync(self.engine.drain, timeout, abandon_on_cancel=True)
        if done:
            log.info("drained; exiting with status %d", self.exit_code)
        elif self._drain_scope.cancelled_caught:
            log.warning("drain cut short; closing every connection now")
        else:
            log.warning("drain time (%gs) elapsed with connections still open", timeout)

    def _drain_blocking(self, timeout: float) -> bool:
        self._drain_thread_done.clear()
        try:
            return bool(self.engine.drain(timeout))
        finally:
            self._drain_thread_done.set()

    def _shutdown_engine(self) -> None:
        try:
            self.engine.shutdown()
        except Exception:
            log.exception("engine shutdown failed")
        if self._drain_scope.cancel_called:
            # A drain cut short by a second signal may still be inside the engine (or be
            # returning from it): leave without interpreter finalization, which would
            # abort the process on a thread still in native code.
            self._drain_thread_done.wait(2.0)
            for handler in logging.getLogger("fastmesh").handlers:
                handler.flush()
            os._exit(self.exit_code)

    # --- signals and the app child -------------------------------------------------------

    async def _handle_signals(self, signals: Any) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP and self._app is None:
                log.info("caught SIGHUP: re-reading the config")
                await self.check_config(force=True)
                continue
            log.info("caught %s", name)
            if self._stop.is_set():
                self._drain_scope.cancel()
                await trio.to_thread.run_sync(self.engine.shutdown)
                continue
            if signum == signal.SIGHUP:
                self._signal_app(signum)
            else:
                self._begin_exit(signum)

    def _begin_exit(self, signum: int) -> None:
        """SIGTERM/SIGINT/`/quitquitquit`: fail readiness, then stop (or let the app stop first)."""
        if self.state == ServerState.LIVE:
            self.state = ServerState.DRAINING
        if self._app is not None and not self._app_exited.is_set():
            # The app goes first, the proxy keeps serving its traffic until it has exited.
            self._signal_app(signum)
        else:
            self._stop.set()

    def _signal_app(self, signum: int) -> None:
        if self._app is None or self._app.returncode is not None:
            return
        if signum == signal.SIGINT and self._app_shares_terminal():
            return  # the terminal already sent it to the whole foreground group
        app_log.info("forwarding %s to pid %d", signal.Signals(signum).name, self._app.pid)
        with contextlib.suppress(ProcessLookupError):
            self._app.send_signal(signum)

    def _app_shares_terminal(self) -> bool:
        return sys.stdin is not None and sys.stdin.isatty()

    async def _run_app(self) -> None:
        argv = list(self.options.app)
        env = dict(os.environ)
        if self.admin_address is not None:
            env["FASTMESH_ADMIN_ADDRESS"] = "{}:{}".format(*self.admin_address)
        try:
            # Own process group unless on a terminal, so only our forwarded signals reach it.
            self._app = await trio.lowlevel.open_process(
                argv, env=env, process_group=None if self._app_shares_terminal() else 0
            )
        except OSError as exc:
            app_log.error("cannot start %s: %s", argv[0], exc.strerror or exc)
            self.exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
            self._app_exited.set()
            self._stop.set()
            return
        app_log.info("started %s (pid %d)", " ".join(argv), self._app.pid)
        try:
            returncode = await self._app.wait()
        finally:
            if self._app.returncode is None:  # cancelled: never leave it behind
                self._app.kill()
        self.exit_code = exit_status(returncode)
        app_log.info("%s exited with status %d", argv[0], self.exit_code)
        self._app_exited.set()
        self._stop.set()

    # --- live reload ---------------------------------------------------------------------

    def _watch(self, config_stamp: Stamp | None, referenced: Mapping[str, Stamp | None]) -> None:
        self._config_stamp = config_stamp
        self._referenced = referenced

    def _changed_file(self, config_stamp: Stamp) -> str | None:
        """The first watched file that differs from when it was last read, if any."""
        if config_stamp != self._config_stamp:
            return str(self.options.config_path)
        return next((f for f, st in self._referenced.items() if stamp(f) != st), None)

    async def _watch_config(self) -> None:
        while True:
            await trio.sleep(self.options.reload_interval_s)
            await self.check_config()

    async def check_config(self, *, force: bool = False) -> bool | None:
        """Re-read the config if its file, or a file it references (a certificate, key or
        CA bundle), changed; apply it if valid.

        Returns True (applied), False (rejected: the last good config keeps serving) or
        None (unchanged). A rejected config is not retried until one of its files changes.
        """
        path = self.options.config_path
        config_stamp = stamp(path)
        if config_stamp is None:
            return None  # being replaced, or gone: keep serving the last config
        changed = self._changed_file(config_stamp)
        if changed is None and not force:
            return None
        if changed is not None and changed != str(path):
            config_log.info("%s changed: reloading %s", changed, path)
        dynamic = self.dynamic.dynamic() if self.dynamic is not None else None
        try:
            loaded = await load_file_in_child(path, dynamic)
        except ConfigError as exc:
            self._watch(config_stamp, exc.files)
            return self._reload_failed(str(exc).splitlines())
        self._watch(config_stamp, loaded.compiled.files)
        if loaded.version == self._seen_digest and not force:
            self.last_reload_error = ""
            return None
        self._seen_digest = loaded.version
        try:
            await self.apply(loaded)
        except ValueError as exc:  # fastmesh._native.ConfigError
            return self._reload_failed([f"{path}: the engine rejected the config: {exc}"])
        self.counters["server.config_reload_success"] += 1
        self.last_reload_error = ""
        config_log.info("%s: applied config version %s", path, loaded.version)
        return True

    def _reload_failed(self, lines: list[str]) -> bool:
        self.counters["server.config_reload_failure"] += 1
        self.last_reload_error = "\n".join(lines)
        config_log.error("config reload rejected; the last good config keeps serving:")
        for line in lines:
            config_log.error("%s", line)
        return False


def describe(options: ServeOptions) -> Mapping[str, Any]:
    """`command_line_options` of `/server_info`, in Envoy's field names."""
    return {
        "base_id": str(options.base_id),
        "concurrency": options.concurrency or (os.cpu_count() or 1),
        "config_path": str(options.config_path),
        "log_level": options.log_level,
        "service_cluster": options.service_cluster or "",
        "service_node": options.service_node or "",
        "drain_time": f"{options.drain_time_s:g}s",
        "mode": "Serve",
        "admin_address_path": str(options.admin_address_path or ""),
    }
