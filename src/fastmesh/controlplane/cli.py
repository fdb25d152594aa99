"""`fastmesh controlplane serve (--config-dir DIR | --etcd ENDPOINTS) --port N`: run the
control plane; `register` holds a workload's registration in etcd."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from fastmesh.ca import CaError, CertificateAuthority

from ._analyze import analyze
from ._app import ControlPlane
from ._etcd_cli import add_register_parser, parse_endpoints, run_register
from ._etcd_keys import DEFAULT_PREFIX
from ._load import load_directory
from ._registry import FileRegistry, Registry
from ._registry_etcd import EtcdRegistry
from ._sds import SecretIssuer
from ._status import render_table
from ._status_client import fetch_syncz

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastmesh controlplane",
        description="The fastmesh control plane: Kubernetes Services, Istio WorkloadEntry, "
        "VirtualService and DestinationRule from YAML files, served to sidecars as xDS (ADS).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve xDS (ADS over gRPC) from files or etcd")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-dir", type=Path, help="directory of YAML files")
    source.add_argument(
        "--etcd",
        type=parse_endpoints,
        metavar="ENDPOINTS",
        help="etcd 3 registry: HOST:PORT[,HOST:PORT...] (waits until one answers)",
    )
    serve.add_argument(
        "--etcd-prefix", default=DEFAULT_PREFIX, metavar="PREFIX", help="etcd key prefix"
    )
    serve.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    serve.add_argument("--port", type=int, default=15010, help="listen port (15010, as istiod)")
    serve.add_argument("--debounce", type=float, default=0.1, help="seconds of quiet before a push")
    serve.add_argument("--poll", type=float, default=0.5, help="seconds between directory scans")
    serve.add_argument(
        "--ca-dir",
        type=Path,
        help="serve SDS (secrets default, ROOTCA) from the CA in this directory"
        " (made with `fastmesh ca init`)",
    )
    serve.add_argument(
        "--cert-ttl", type=float, default=86400.0, help="workload certificate lifetime, s (24 h)"
    )
    serve.add_argument("-l", "--log-level", default="info", help="debug, info, warning, error")
    check = sub.add_parser("check", help="validate a config directory; exit 1 on any problem")
    check.add_argument("config_dir", type=Path)
    add_register_parser(sub)
    status = sub.add_parser("proxy-status", help="every connected proxy and its sync state")
    status.add_argument(
        "--server", default="127.0.0.1:15010", help="the control plane's HOST:PORT (ADS port)"
    )
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def _proxy_status(server: str, as_json: bool) -> int:
    host, _, port = server.rpartition(":")
    try:
        entries = trio.run(fetch_syncz, host or "127.0.0.1", int(port))
    except (OSError, ValueError, trio.TooSlowError) as exc:
        print(
            f"fastmesh controlplane proxy-status: {server}: {exc or type(exc).__name__}",
            file=sys.stderr,
        )
        return 1
    if as_json:
        print(json.dumps(entries, indent=1))
    else:
        print(render_table(entries), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "proxy-status":
        return _proxy_status(args.server, args.json)
    if args.command == "register":
        return run_register(args)
    if args.command == "check":
        return analyze_command(args.config_dir)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    registry: Registry
    logging.getLogger("httpx").setLevel(logging.WARNING)  # else a line per etcd request
    if args.etcd:
        registry = EtcdRegistry(args.etcd, prefix=args.etcd_prefix)
    elif not args.config_dir.is_dir():
        print(f"fastmesh controlplane: {args.config_dir} is not a directory", file=sys.stderr)
        return 2
    else:
        registry = FileRegistry(args.config_dir, poll_interval=args.poll)
    try:
        secrets = _secret_issuer(args.ca_dir, args.cert_ttl)
    except CaError as exc:
        print(f"fastmesh controlplane: {exc}", file=sys.stderr)
        return 2
    plane = ControlPlane(
        registry, host=args.host, port=args.port, debounce=args.debounce, secrets=secrets
    )
    try:
        trio.run(_serve, plane)
    except (OSError, BaseExceptionGroup) as exc:
        error = _only_os_error(exc)
        if error is None:
            raise
        print(f"fastmesh controlplane: {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def _secret_issuer(ca_dir: Path | None, ttl: float) -> SecretIssuer | None:
    """SDS from the CA in `ca_dir` (None: no SDS)."""
    if ca_dir is None:
        return None
    return SecretIssuer(CertificateAuthority.load(ca_dir), ttl=dt.timedelta(seconds=ttl))


def _only_os_error(exc: BaseException) -> OSError | None:
    """The OSError (such as a busy port) that alone ended the run, through nursery groups."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _only_os_error(exc.exceptions[0])
    return None


#: Net allocations between two young-generation collections once serving (CPython: 700).
_YOUNG_COLLECTION_AFTER = 20_000


async def _serve(plane: ControlPlane) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly (every task cancelled)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(plane.run)
            # The first config, its index and shared snapshot are most of the heap (millions
            # of objects at 10k services); each gen-2 collection scanned them again, 0.2-0.4 s
            # that could land on a push. Frozen, only what came later is scanned. No
            # connection exists yet, so no cyclic per-connection object is frozen with them.
            gc.collect()
            gc.freeze()
            # A push allocates in bursts (10k-entry lists, decoded requests) that reference
            # counting frees; at the default 700 allocations a young collection ran every ms
            # of a first push and traversed those lists, ~0.1 s of it at 10k services.
            gc.set_threshold(_YOUNG_COLLECTION_AFTER, *gc.get_threshold()[1:])
            print(f"fastmesh controlplane: serving ADS on {plane.host}:{port}", flush=True)
            async for signum in signals:
                logging.getLogger("fastmesh.controlplane").info("signal %d: stopping", signum)
                nursery.cancel_scope.cancel()
                break


def analyze_command(config_dir: Path) -> int:
    """`fastmesh analyze DIR` (and `controlplane check`): every finding, one per line, as
    istioctl prints them; exit 1 when any is an Error, 2 when DIR is no directory."""
    if not config_dir.is_dir():
        print(f"{config_dir}: not a directory", file=sys.stderr)
        return 2
    findings = analyze(*load_directory(config_dir))
    for finding in findings:
        print(finding.render())
    errors = sum(f.severity == "Error" for f in findings)
    infos = sum(f.severity == "Info" for f in findings)
    if not findings:
        print(f"\u2714 No validation issues found when analyzing {config_dir}.")
    else:
        counts = f"{errors} error(s), {len(findings) - errors - infos} warning(s)"
        print(f"{counts}{f', {infos} info' if infos else ''} in {config_dir}")
    return 1 if errors else 0
