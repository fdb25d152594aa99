"""`fastmesh`: the umbrella command. `fastmesh up` runs the demo mesh, `fastmesh demo` the
proxy demo; `fastmesh proxy ...` is
`fastmesh-proxy ...`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_USAGE = """usage: fastmesh COMMAND [ARGS...]

commands:
  up            a demo mesh: control plane, CA, four apps with sidecars, traffic (--smoke for CI)
  demo          fastmesh-proxy in front of small demo services, with a walkthrough (--smoke for CI)
  proxy         the sidecar proxy (same as fastmesh-proxy; see fastmesh proxy --help)
  controlplane  the control plane: serve xDS (ADS) from files or etcd; check; register; proxy-status
  ca            the mesh CA: init (root, or intermediate under an operator root), rotate, show
  analyze DIR   every problem of a mesh config directory at once, as istioctl analyze
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "up":
        from fastmesh.up import main as up

        return up(rest)
    if command == "demo":
        from fastmesh.demo import main as demo

        return demo(rest)
    if command == "proxy":
        from fastmesh.proxy.cli import main as proxy

        return proxy(rest)
    if command == "controlplane":
        from fastmesh.controlplane.cli import main as controlplane

        return controlplane(rest)
    if command == "analyze":
        from pathlib import Path

        from fastmesh.controlplane.cli import analyze_command

        if len(rest) != 1 or rest[0].startswith("-"):
            print("usage: fastmesh analyze DIR", file=sys.stderr)
            return 2
        return analyze_command(Path(rest[0]))
    if command == "ca":
        from fastmesh.ca.cli import main as ca

        return ca(rest)
    print(f"fastmesh: unknown command {command!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
