"""A bootstrap file -> `Compiled` (snapshot JSON + what the proxy process needs), in
this process or in a short-lived child (`python -m fastmesh.config FILE`).

Why a child process: parsing and translating a big bootstrap is memory-hungry (an
18 MB YAML with 10k clusters takes ~600 MB resident in PyYAML's objects), and a
long-lived CPython process keeps that peak as its RSS. `fastmesh-proxy` therefore
never parses or translates config itself: it runs `compile_file` in a child, reads
the result from its stdout, and keeps only two strings (the snapshot JSON it hands to
the engine, and the document as JSON for `/config_dump`). It never imports PyYAML or
the translator modules either, which keeps its idle RSS small.

The child writes to stdout a JSON header line (the metadata, or the problems), then
the snapshot JSON and the document JSON, each zlib-compressed (the header gives their
lengths): a 10k-cluster config is ~20 MB of JSON but well under 1 MB compressed, so
the proxy's peak while reading it stays small. It exits 0
on success, `EXIT_CONFIG_ERROR` with the problems on a `ConfigError`, anything else
on a crash (traceback on stderr).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, Problem
from ._stamp import Stamp

if TYPE_CHECKING:
    from ._bootstrap import Bootstrap
    from ._xds import DynamicResources

__all__ = [
    "EXIT_CONFIG_ERROR",
    "Compiled",
    "compile_bootstrap",
    "compile_document",
    "compile_file",
    "decode",
    "encode",
    "encode_error",
    "main",
    "redact_private_keys",
]

#: Exit status of the child when the file is not a config fastmesh can run.
EXIT_CONFIG_ERROR = 3


@dataclass(frozen=True, slots=True)
class Compiled:
    """A translated bootstrap in plain data: what the proxy process keeps of it."""

    source: str
    #: Content hash (12 hex digits), also the snapshot's `version`.
    version: str
    #: The native snapshot as compact JSON, for `Engine.apply`.
    snapshot_json: str
    #: The bootstrap document as parsed, without its `node` and with private keys
    #: redacted, as zlib-compressed compact JSON (for `/config_dump`, which splices it in
    #: as text; rarely read, so compressed).
    document_zjson: bytes
    #: The document's `node` as JSON text (None: no `node` key), kept apart so
    #: `/config_dump` can apply `--service-node/--service-cluster` without parsing the rest.
    document_node_json: str | None = None
    node_id: str = ""
    node_cluster: str = ""
    node_metadata: Mapping[str, Any] = field(default_factory=dict)
    admin_address: tuple[str, int] | None = None
    #: `dynamic_resources`: the ADS server's (ip, port); None = a static bootstrap.
    ads_addresses: tuple[tuple[str, int], ...] = ()
    #: `api_type: DELTA_GRPC`: the ADS stream is incremental xDS.
    ads_delta: bool = False
    #: EDS / RDS / SDS names the dynamic resources use, and those not received yet (warming).
    eds_names: tuple[str, ...] = ()
    rds_names: tuple[str, ...] = ()
    sds_names: tuple[str, ...] = ()
    warming: tuple[str, ...] = ()
    #: RDS name -> the `stat_prefix` of the first HTTP connection manager naming it.
    rds_stat_prefixes: Mapping[str, str] = field(default_factory=dict)
    #: Files the config references -> their stamps when read (see `Bootstrap.files`).
    files: Mapping[str, Stamp | None] = field(default_factory=dict)


# Private keys in compact JSON text: the document's `private_key` DataSources (every
# string in them, as Envoy's config dump redacts fields marked sensitive) and the
# snapshot's `private_key_pem`.
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_DATA_SOURCE_KEY = re.compile(r'("private_key":\{)([^{}]*)(\})')
_SNAPSHOT_KEY = re.compile(r'"private_key_pem":' + _JSON_STRING)
_VALUE = re.compile(r":" + _JSON_STRING)
REDACTED = "[redacted]"


def redact_private_keys(json_text: str) -> str:
    """Compact JSON of a bootstrap document or a native snapshot with every private key
    replaced by "[redacted]", as Envoy's `/config_dump` shows them."""
    if "private_key" not in json_text:
        return json_text
    text = _SNAPSHOT_KEY.sub(f'"private_key_pem":"{REDACTED}"', json_text)
    return _DATA_SOURCE_KEY.sub(lambda m: m[1] + _VALUE.sub(f':"{REDACTED}"', m[2]) + m[3], text)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def compile_bootstrap(bootstrap: Bootstrap, document: Mapping[str, Any]) -> Compiled:
    """A translated `Bootstrap` (and its document) -> `Compiled`."""
    return Compiled(
        source=bootstrap.source,
        version=str(bootstrap.snapshot.get("version") or bootstrap.version),
        snapshot_json=bootstrap.snapshot_json(),
        document_zjson=zlib.compress(
            redact_private_keys(_json({k: v for k, v in document.items() if k != "node"})).encode(),
            1,
        ),
        document_node_json=_json(document["node"]) if "node" in document else None,
        node_id=bootstrap.node_id,
        node_cluster=bootstrap.node_cluster,
        node_metadata=dict(bootstrap.node_metadata),
        admin_address=bootstrap.admin_address,
        ads_addresses=bootstrap.ads.addresses if bootstrap.ads is not None else (),
        ads_delta=bootstrap.ads.delta if bootstrap.ads is not None else False,
        eds_names=bootstrap.eds_names,
        rds_names=bootstrap.rds_names,
        sds_names=bootstrap.sds_names,
        warming=bootstrap.warming,
        rds_stat_prefixes=dict(bootstrap.rds_stat_prefixes),
        files=dict(bootstrap.files),
    )


def compile_file(path: str | Path, dynamic: DynamicResources | None = None) -> Compiled:
    """Read and translate an Envoy bootstrap file (YAML or JSON), plus what ADS delivered.

    Raises `ConfigError` listing every problem (file, field path, what was expected),
    including an unreadable file.
    """
    from ._bootstrap import load_bootstrap_document

    bootstrap, document = load_bootstrap_document(path, dynamic)
    return compile_bootstrap(bootstrap, document)


def compile_document(
    source: str, document: Mapping[str, Any], dynamic: DynamicResources
) -> Compiled:
    """A bootstrap already parsed (as the proxy last loaded it) plus what ADS delivered.

    The version hashes both, so equal inputs give equal versions."""
    from ._bootstrap import translate_bootstrap

    canon = json.dumps([document, asdict(dynamic)], sort_keys=True, default=str)
    version = hashlib.sha256(canon.encode()).hexdigest()[:12]
    bootstrap = translate_bootstrap(document, source, version=version, dynamic=dynamic)
    return compile_bootstrap(bootstrap, document)


def encode(compiled: Compiled) -> bytes:
    """`Compiled` -> the child's stdout."""
    head: dict[str, Any] = {
        "source": compiled.source,
        "version": compiled.version,
        "node_id": compiled.node_id,
        "node_cluster": compiled.node_cluster,
        "node_metadata": compiled.node_metadata,
        "admin_address": compiled.admin_address,
        "document_node_json": compiled.document_node_json,
        "ads_addresses": compiled.ads_addresses,
        "ads_delta": compiled.ads_delta,
        "eds_names": compiled.eds_names,
        "rds_names": compiled.rds_names,
        "sds_names": compiled.sds_names,
        "warming": compiled.warming,
        "rds_stat_prefixes": compiled.rds_stat_prefixes,
        "files": _files_json(compiled.files),
    }
    snapshot = zlib.compress(compiled.snapshot_json.encode(), 1)
    head["lengths"] = [len(snapshot), len(compiled.document_zjson)]
    return b"".join(
        [json.dumps(head, default=str).encode(), b"\n", snapshot, compiled.document_zjson]
    )


def _files_json(files: Mapping[str, Stamp | None]) -> list[list[Any]]:
    return [[name, stamp] for name, stamp in files.items()]


def _files(rows: list[list[Any]]) -> dict[str, Stamp | None]:
    return {name: None if st is None else (int(st[0]), int(st[1]), int(st[2])) for name, st in rows}


def encode_error(exc: ConfigError) -> bytes:
    """A `ConfigError` -> the child's stdout."""
    problems = [[p.path, p.message] for p in exc.problems]
    return json.dumps(
        {"source": exc.source, "problems": problems, "files": _files_json(exc.files)}
    ).encode()


def decode(out: bytes, returncode: int) -> Compiled:
    """The child's stdout and exit status -> `Compiled`, or raise its `ConfigError`."""
    if returncode == EXIT_CONFIG_ERROR:
        err = json.loads(out)
        raise ConfigError(
            err["source"],
            [Problem(p, m) for p, m in err["problems"]],
            files=_files(err.get("files", [])),
        )
    cut = out.index(b"\n") + 1
    meta = json.loads(out[:cut])
    n_snapshot, n_document = meta["lengths"]
    if len(out) != cut + n_snapshot + n_document:
        raise ValueError(f"truncated output: {len(out)} bytes")
    view = memoryview(out)
    admin = meta["admin_address"]
    return Compiled(
        source=meta["source"],
        version=meta["version"],
        snapshot_json=zlib.decompress(view[cut : cut + n_snapshot]).decode(),
        document_zjson=bytes(view[cut + n_snapshot :]),
        node_id=meta["node_id"],
        node_cluster=meta["node_cluster"],
        node_metadata=meta["node_metadata"],
        admin_address=(admin[0], int(admin[1])) if admin else None,
        document_node_json=meta["document_node_json"],
        ads_addresses=tuple((host, int(port)) for host, port in meta["ads_addresses"]),
        ads_delta=bool(meta["ads_delta"]),
        eds_names=tuple(meta["eds_names"]),
        rds_names=tuple(meta["rds_names"]),
        sds_names=tuple(meta["sds_names"]),
        warming=tuple(meta["warming"]),
        rds_stat_prefixes=dict(meta["rds_stat_prefixes"]),
        files=_files(meta["files"]),
    )


def _compile_xds(source: str, payload: Mapping[str, Any]) -> Compiled:
    """`--xds`: stdin is `{"dynamic": DynamicResources fields, "document"?: bootstrap}`;
    without "document", the file `source` is read."""
    from ._xds import DynamicResources

    dynamic = DynamicResources(**payload["dynamic"])
    if "document" in payload:
        return compile_document(source, payload["document"], dynamic)
    return compile_file(source, dynamic)


def main(argv: list[str] | None = None) -> int:
    """The child: `python -m fastmesh.config FILE [--xds]`; writes `encode(...)` to stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or args[1:] not in ([], ["--xds"]):
        print("usage: python -m fastmesh.config FILE [--xds < input.json]", file=sys.stderr)
        return 2
    try:
        if len(args) == 2:
            out = encode(_compile_xds(args[0], json.load(sys.stdin)))
        else:
            out = encode(compile_file(args[0]))
    except ConfigError as exc:
        sys.stdout.buffer.write(encode_error(exc))
        return EXIT_CONFIG_ERROR
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return 0
