"""The control plane's hot loop, three ways: ``python -m bench.wire [--services N]``.

Encodes every cluster and assignment of a mesh like bench.controlplane's (N services, five
endpoints each) with protobuf's ``json_format.ParseDict`` + deterministic serialisation (what
the control plane did before), the pure-Python ``_wire.encode`` and its Cython twin
``fastmesh_ext.wire.encode``, and prints the seconds and the speed-ups.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from bench.controlplane import write_service
from fastmesh.controlplane._index import MeshIndex
from fastmesh.controlplane._registry import FileRegistry
from fastmesh.controlplane._resources import _MESSAGES, CLUSTER, ENDPOINT
from fastmesh.controlplane._translate_clusters import translate_clusters
from fastmesh.controlplane._wire import encode, plan_for


def _parse_dict(doc: Any, message: Any) -> bytes:
    return bytes(json_format.ParseDict(doc, message()).SerializeToString(deterministic=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wire", description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    args = parser.parse_args(argv)
    from fastmesh_ext.wire import encode as compiled

    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.services):
            write_service(Path(scratch), i)
        index = MeshIndex(FileRegistry(Path(scratch)).load())
    clusters, assignments = translate_clusters(index, "cluster.local")
    docs = [(CLUSTER, d) for d in clusters] + [(ENDPOINT, d) for d in assignments]
    seconds = {}
    for name in ("ParseDict", "python", "cython"):
        start = time.perf_counter()
        for type_url, doc in docs:
            message = _MESSAGES[type_url]
            plan = plan_for(message.DESCRIPTOR)
            if name == "ParseDict":
                _parse_dict(doc, message)
            else:
                (encode if name == "python" else compiled)(plan, doc, None)
        seconds[name] = time.perf_counter() - start
    print(f"{len(docs):,} documents")
    for name, s in seconds.items():
        print(f"{name:>9}: {s:6.3f} s  ({seconds['ParseDict'] / s:4.1f}x ParseDict)")
    print(f"cython over python: {seconds['python'] / seconds['cython']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
