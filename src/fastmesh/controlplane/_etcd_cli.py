"""`fastmesh controlplane register --etcd ENDPOINTS ...`: hold a workload's registration in etcd
until stopped (SIGINT/SIGTERM revoke it; a killed registrar's lease expires after --ttl)."""

from __future__ import annotations

import argparse
import signal
from functools import partial

import trio

from ._etcd_keys import DEFAULT_PREFIX
from ._etcd_register import register_workload

__all__ = ["add_register_parser", "parse_endpoints", "run_register"]


def parse_endpoints(text: str) -> list[str]:
    """`127.0.0.1:2379,http://h:2379` -> URLs (http:// added where missing)."""
    endpoints = [e.strip() for e in text.split(",") if e.strip()]
    if not endpoints:
        raise argparse.ArgumentTypeError("expected comma-separated etcd endpoints")
    return [e if "://" in e else f"http://{e}" for e in endpoints]


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _port(text: str) -> tuple[str, int]:
    name, value = _pair(text)
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT (1-65535), got {text!r}")
    return name, number


def add_register_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `register` subcommand's arguments."""
    p = sub.add_parser(
        "register", help="register a workload in etcd, held by a lease, until stopped"
    )
    p.add_argument(
        "--etcd",
        type=parse_endpoints,
        required=True,
        metavar="ENDPOINTS",
        help="HOST:PORT[,HOST:PORT...]",
    )
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"key prefix ({DEFAULT_PREFIX})")
    p.add_argument("--namespace", default="default")
    p.add_argument("--name", required=True, help="workload name (e.g. reviews-v1)")
    p.add_argument("--id", required=True, help="this instance's id (unique per name)")
    p.add_argument("--address", required=True, help="the workload's IP address")
    p.add_argument("--label", type=_pair, action="append", default=[], help="KEY=VALUE")
    p.add_argument("--port", type=_port, action="append", default=[], help="PORTNAME=NUMBER")
    p.add_argument("--service-account", default="default")
    p.add_argument("--ttl", type=int, default=10, help="lease seconds (10)")


def run_register(args: argparse.Namespace) -> int:
    """Run the registrar until SIGINT/SIGTERM (then revoke the lease)."""

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                lease = await nursery.start(
                    partial(
                        register_workload,
                        args.etcd,
                        args.namespace,
                        args.name,
                        args.id,
                        args.address,
                        labels=dict(args.label),
                        ports=dict(args.port),
                        service_account=args.service_account,
                        ttl=args.ttl,
                        prefix=args.prefix,
                    )
                )
                print(f"fastmesh controlplane: registered (lease {lease:x})", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    trio.run(main)
    return 0
