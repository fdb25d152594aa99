"""The `fastmesh up` command line: run the mesh, or change the one that runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from fastmesh.up._mesh import write_routing
from fastmesh.up._run import report, run, say
from fastmesh.up._state import DEFAULT_DIR, StateError, load
from fastmesh.up._traffic import measure
from fastmesh.up._tweak import TweakError, parse_weights, set_deny, set_fault, set_mtls

__all__ = ["main"]

_SUBCOMMANDS = ("shift", "fault", "deny", "mtls", "traffic")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastmesh up",
        description="A demo mesh on loopback: control plane, CA, four apps with sidecars. "
        "Subcommands change the running mesh.",
        epilog="subcommands (see fastmesh up SUBCOMMAND --help):\n"
        "  shift v2=50,v3=50        reviews' canary weights\n"
        "  fault ratings --abort 503 --percent 50 | --delay 2s | --off\n"
        "  deny details --from frontend | --off   an AuthorizationPolicy\n"
        "  mtls strict | permissive     mesh-wide PeerAuthentication\n"
        "  traffic [-n 40]          send requests; which reviews versions answered",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"files ({DEFAULT_DIR})")
    parser.add_argument("--smoke", action="store_true", help="send traffic, check it, exit 0/1")
    return parser


def _sub_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastmesh up")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("shift", help="set reviews' canary weights, e.g. v2=50,v3=50")
    s.add_argument("weights", help="VERSION=PERCENT,... (v1, v2, v3; unnamed ones 0; sum 100)")
    f = sub.add_parser("fault", help="inject a fault on every call to a service")
    f.add_argument("service", help="frontend, details or ratings")
    f.add_argument("--abort", type=int, metavar="STATUS", help="answer with this HTTP status")
    f.add_argument("--delay", metavar="DURATION", help="delay each call, e.g. 2s or 500ms")
    f.add_argument("--percent", type=float, default=100.0, help="of calls (100)")
    f.add_argument("--off", action="store_true", help="remove the fault")
    a = sub.add_parser("deny", help="deny one service's calls to another (AuthorizationPolicy)")
    a.add_argument("service", help="the called service")
    a.add_argument("--from", dest="caller", metavar="SERVICE", help="the caller denied")
    a.add_argument("--off", action="store_true", help="remove the policy")
    m = sub.add_parser("mtls", help="mesh-wide PeerAuthentication: strict or permissive")
    m.add_argument("mode", choices=("strict", "permissive"))
    t = sub.add_parser("traffic", help="send requests; which reviews versions answered")
    t.add_argument("-n", type=int, default=40, help="how many (40)")
    t.add_argument("--user", help="send `end-user: USER` (jason always gets v2)")
    for p in (s, f, a, m, t):
        p.add_argument(
            "--dir", type=Path, default=DEFAULT_DIR, help=f"the mesh's files ({DEFAULT_DIR})"
        )
    return parser


async def _traffic(directory: Path, count: int, user: str | None) -> int:
    tally, stats = await measure(load(directory), count, {"end-user": user} if user else None)
    return 1 if report(tally, stats) else 0


def _change(ns: argparse.Namespace) -> int:
    load(ns.dir)  # only a running mesh
    if ns.command == "shift":
        path = write_routing(ns.dir, parse_weights(ns.weights))
    elif ns.command == "deny":
        if ns.off == (ns.caller is not None):
            raise TweakError("give --from SERVICE, or --off")
        path = set_deny(ns.dir, ns.service, ns.caller)
    elif ns.command == "mtls":
        path = set_mtls(ns.dir, ns.mode.upper())
    else:
        if ns.off == (ns.abort is not None or ns.delay is not None):
            raise TweakError("give --abort STATUS and/or --delay DURATION, or --off")
        if not 0 <= ns.percent <= 100:
            raise TweakError(f"--percent {ns.percent:g}: expected 0 to 100")
        path = set_fault(ns.dir, ns.service, abort=ns.abort, delay=ns.delay, percent=ns.percent)
    done = "wrote" if path.exists() else "removed"
    say(f"{done} {path}; the control plane pushes it to the sidecars within a second")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in _SUBCOMMANDS:
            ns = _sub_parser().parse_args(args)
            if ns.command == "traffic":
                return trio.run(_traffic, ns.dir, ns.n, ns.user)
            return _change(ns)
        ns = _parser().parse_args(args)
        return trio.run(run, ns.dir, ns.smoke)
    except (StateError, TweakError, OSError) as exc:
        say(f"fastmesh up: {exc}")
        return 1
