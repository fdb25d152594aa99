"""`fastmesh-proxy`: a drop-in for `envoy -c FILE` that can also supervise the app.

    fastmesh-proxy -c envoy.yaml                      # serve, like envoy
    fastmesh-proxy -c envoy.yaml --mode validate      # check the config, like envoy
    fastmesh-proxy -c envoy.yaml -- ./batch-job --x   # start the job once the proxy is
                                                      # ready; exit with its status

Envoy's flags that matter are taken with Envoy's meaning; flags for Envoy features
fastmesh does not have (hot restart, inline `--config-yaml`, ...) are refused with a
message, never silently ignored.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import trio

from fastmesh.proxy._log import LEVELS, configure_logging

__all__ = ["main", "parse_args"]

log = logging.getLogger("fastmesh.proxy.main")

# Envoy flags we refuse, with the reason shown to the user.
_UNSUPPORTED: dict[str, str] = {
    "--config-yaml": "inline YAML is not supported; put the config in a file and use -c",
    "--hot-restart-version": "hot restart is not supported (fastmesh reloads the config file live)",
    "--allow-unknown-static-fields": "fastmesh never ignores a field it does not support",
    "--component-log-level": "per-component log levels are not supported; use -l",
    "--log-format": "the log format is fixed (Envoy's default layout)",
    "--cpuset-threads": "not supported; use --concurrency",
    "--enable-fine-grain-logging": "not supported",
    "--socket-path": "hot restart is not supported",
    "--socket-mode": "hot restart is not supported",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="fastmesh-proxy",
        usage="%(prog)s -c FILE [options] [-- APP ARGS...]",
        description="A drop-in for `envoy` with a compiled Rust data path. Reads Envoy bootstrap "
        "YAML/JSON (the supported subset is documented; anything else is an error naming the "
        "field). With `-- APP ARGS...` it starts APP once its listeners are bound, forwards "
        "SIGTERM/SIGINT/SIGHUP to it, and exits with APP's status after draining.",
    )
    p.add_argument("-c", "--config-path", type=Path, help="Envoy bootstrap file (YAML or JSON)")
    p.add_argument(
        "--mode",
        choices=("serve", "validate", "init_only"),
        default="serve",
        help="serve (default); validate: translate the config, print the result, exit 0 or 1; "
        "init_only: start, bind every listener, then exit",
    )
    p.add_argument(
        "--concurrency", type=int, default=0, help="engine worker threads (default: one per core)"
    )
    p.add_argument(
        "-l",
        "--log-level",
        choices=sorted(LEVELS, key=LEVELS.__getitem__),
        default="info",
        metavar="LEVEL",
        help="trace, debug, info (default), warning, error, critical or off",
    )
    p.add_argument("--log-path", help="write logs to this file instead of stderr")
    p.add_argument(
        "--drain-time-s",
        type=float,
        default=600.0,
        help="how long a draining connection may take before it is closed, on shutdown and "
        "when a config update changes its filter chain (default 600, as Envoy)",
    )
    p.add_argument("--service-node", help="node id (overrides the bootstrap's node.id)")
    p.add_argument("--service-cluster", help="node cluster (overrides node.cluster)")
    p.add_argument("--service-zone", help="accepted for Envoy compatibility; no effect yet")
    p.add_argument(
        "--admin-address-path", type=Path, help="write the admin ip:port here once it listens"
    )
    p.add_argument(
        "--config-reload-interval-s",
        type=float,
        default=1.0,
        help="how often to check the config file for changes (default 1; 0 disables live reload)",
    )
    compat = p.add_argument_group(
        "accepted for Envoy compatibility, no effect (there is no hot restart: one process per pod)"
    )
    compat.add_argument("--base-id", type=int, default=0)
    compat.add_argument("--use-dynamic-base-id", action="store_true")
    compat.add_argument("--base-id-path")
    compat.add_argument("--disable-hot-restart", action="store_true")
    compat.add_argument("--restart-epoch", type=int, default=0, help="only 0 is accepted")
    compat.add_argument("--parent-shutdown-time-s", type=float)
    compat.add_argument("--drain-strategy", choices=("gradual", "immediate"))
    compat.add_argument("--file-flush-interval-msec", type=int)
    compat.add_argument("--local-address-ip-version", choices=("v4", "v6"))
    compat.add_argument("--disable-extensions")
    compat.add_argument("--enable-core-dump", action="store_true")
    compat.add_argument("--reject-unknown-dynamic-fields", action="store_true")
    compat.add_argument("--ignore-unknown-dynamic-fields", action="store_true")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split `argv` at `--` into proxy flags and the app command, and parse the flags."""
    args = list(argv)
    app: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, app = args[:cut], args[cut + 1 :]
    parser = _parser()
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in _UNSUPPORTED:
            parser.error(f"{flag}: {_UNSUPPORTED[flag]}")
    ns = parser.parse_args(args)
    if ns.version:
        return ns, app
    if ns.config_path is None:
        parser.error("-c/--config-path is required")
    if ns.restart_epoch != 0:
        parser.error("--restart-epoch: hot restart is not supported; only 0 is accepted")
    if ns.concurrency < 0:
        parser.error("--concurrency must be >= 0")
    if not 0 <= ns.drain_time_s < 2**32:  # Envoy's is a uint32; the engine needs a duration
        parser.error("--drain-time-s must be a number of seconds >= 0")
    if "--" in argv and not app:
        parser.error("nothing after --: give the application to run, e.g. -- ./app --flag")
    if app and ns.mode != "serve":
        parser.error(f"-- APP needs --mode serve (got {ns.mode})")
    return ns, app


def _validate(path: Path) -> int:
    from fastmesh.proxy._config import ConfigError, load_file

    try:
        load_file(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"configuration '{path}' OK")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fastmesh-proxy`; returns the exit status."""
    ns, app = parse_args(sys.argv[1:] if argv is None else argv)
    if ns.version:
        from fastmesh import __version__

        print(f"fastmesh-proxy version: fastmesh/{__version__}")
        return 0
    configure_logging(ns.log_level, ns.log_path)
    if ns.mode == "validate":
        return _validate(ns.config_path)

    from fastmesh.proxy._server import ProxyServer, ServeOptions

    options = ServeOptions(
        config_path=ns.config_path,
        concurrency=ns.concurrency,
        drain_time_s=0.0 if ns.mode == "init_only" else ns.drain_time_s,
        service_node=ns.service_node,
        service_cluster=ns.service_cluster,
        admin_address_path=ns.admin_address_path,
        app=app,
        reload_interval_s=ns.config_reload_interval_s,
        log_level=ns.log_level,
        base_id=ns.base_id,
        init_only=ns.mode == "init_only",
        argv=list(sys.argv if argv is None else argv),
    )
    log.info("fastmesh-proxy pid %d, config %s", os.getpid(), ns.config_path)
    try:
        return trio.run(ProxyServer(options).run)
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
