"""`fastmesh ca init|rotate|show`: make, load and rotate the mesh CA kept in a directory."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._authority import CertificateAuthority
from ._errors import CaError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastmesh ca", description="The mesh CA: SPIFFE X.509-SVIDs for workloads."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create (or load) the CA in a directory")
    init.add_argument("--dir", type=Path, required=True, help="the CA directory")
    init.add_argument("--trust-domain", default="cluster.local", help="(cluster.local)")
    init.add_argument("--root-cert", type=Path, help="operator root: be an intermediate under it")
    init.add_argument("--root-key", type=Path, help="the operator root's private key")
    init.add_argument("--key-type", choices=("ec", "rsa"), default="ec", help="(ec: P-256)")
    rotate = sub.add_parser("rotate", help="a new root; the old one stays trusted in the bundle")
    rotate.add_argument("--dir", type=Path, required=True)
    rotate.add_argument(
        "--end-overlap",
        action="store_true",
        help="instead: trust only the current root (once every SVID was re-issued)",
    )
    show = sub.add_parser("show", help="the signing certificate and the trust bundle")
    show.add_argument("--dir", type=Path, required=True)
    return parser


def _describe(ca: CertificateAuthority) -> str:
    kind = "intermediate" if ca.is_intermediate else "root"
    roots = ", ".join(f"{r.serial_number:x}" for r in ca.bundle.roots)
    return (
        f"trust domain {ca.trust_domain}; signing {kind} {ca.cert.serial_number:x} "
        f"(until {ca.cert.not_valid_after_utc:%Y-%m-%d}); bundle roots: {roots}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "init":
            ca, created = CertificateAuthority.init(
                args.dir,
                args.trust_domain,
                root_cert=args.root_cert,
                root_key=args.root_key,
                key_type=args.key_type,
            )
            print(f"{'created' if created else 'loaded'} CA in {args.dir}: {_describe(ca)}")
        elif args.command == "rotate":
            ca = CertificateAuthority.load(args.dir)
            if args.end_overlap:
                ca.end_overlap()
            else:
                ca.rotate()
            print(f"rotated CA in {args.dir}: {_describe(ca)}")
        else:
            print(_describe(CertificateAuthority.load(args.dir)))
    except (CaError, OSError) as exc:
        print(f"fastmesh ca: {exc}", file=sys.stderr)
        return 1
    return 0
