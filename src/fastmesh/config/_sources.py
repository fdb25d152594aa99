"""Envoy `DataSource`s (a file read now, or an inline value) and the static `secrets` that
TLS contexts name; every file read is recorded with its stamp and digest.

The snapshot carries certificates and keys as PEM text, so the record is what makes a
rotated file on disk a new snapshot: the live-reload watcher re-translates when a stamp
changes, and the snapshot version covers each file's digest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any, Final

from ._errors import Issues
from ._fields import at, obj, one_of
from ._stamp import Stamp, stamp

__all__ = ["Secret", "Sources"]

_DATA_SOURCE: Final = frozenset({"filename", "inline_string", "inline_bytes"})
_KINDS: Final = ("filename", "inline_string", "inline_bytes")

#: A static secret, translated once: (kind, value). Kind "tls_certificate": the native
#: {cert_chain_pem, private_key_pem}; "validation_context": {trusted_ca_pem, sans, crl_pem,
#: only_verify_leaf_cert_crl, hashes, spkis}. The
#: value is None when the secret has problems (reported at its own path).
Secret = tuple[str, "dict[str, Any] | None"]


class Sources:
    """What TLS contexts read while one document is translated."""

    __slots__ = ("_files", "awaited", "digests", "sds", "sds_names", "secrets", "stamps")

    def __init__(self) -> None:
        #: Every file named by a `DataSource`, in first-read order -> its stamp taken
        #: before reading (None: it could not be stat'ed).
        self.stamps: dict[str, Stamp | None] = {}
        #: File -> sha256 of the bytes read (only files read successfully).
        self.digests: dict[str, str] = {}
        #: `static_resources.secrets` by name.
        self.secrets: dict[str, Secret] = {}
        #: Secrets received over SDS (ADS), by name; None without `dynamic_resources`.
        self.sds: dict[str, Secret] | None = None
        #: Every SDS secret a TLS context names (the SDS subscription).
        self.sds_names: set[str] = set()
        #: How many references to SDS secrets not received yet were met so far. A TLS
        #: context compares it before and after: its own secret is awaited if it grew.
        self.awaited = 0
        # File -> its bytes, or the reason it cannot be used; each file is read once, so
        # every context naming it sees the same content.
        self._files: dict[str, bytes | OSError] = {}

    def _read(self, filename: str) -> bytes | OSError:
        cached = self._files.get(filename)
        if cached is not None:
            return cached
        self.stamps[filename] = stamp(filename)
        result: bytes | OSError
        try:
            result = Path(filename).read_bytes()
            self.digests[filename] = hashlib.sha256(result).hexdigest()
        except OSError as exc:
            result = exc
        self._files[filename] = result
        return result

    def _data(self, issues: Issues, raw: object, path: str) -> tuple[bytes, str, str] | None:
        """A `DataSource` at `path` -> (its bytes, where they came from for messages, the
        path of the field that gave them)."""
        ds = obj(issues, raw, path, _DATA_SOURCE)
        if ds is None:
            return None
        kind = one_of(issues, ds, path, _KINDS)
        value = ds.get(kind) if kind is not None else None
        if kind is None:
            return None
        field = at(path, kind)
        if not isinstance(value, str):
            issues.add(field, "expected a string")
            return None
        if kind == "inline_string":
            return value.encode(), "the inline value", field
        if kind == "inline_bytes":  # proto3 JSON bytes: base64
            try:
                return base64.b64decode(value, validate=True), "the inline value", field
            except binascii.Error:
                issues.add(field, "expected base64")
                return None
        data = self._read(value)
        if isinstance(data, OSError):
            issues.add(field, f"cannot read {value}: {data.strerror or data}")
            return None
        return data, value, field

    def data_bytes(self, issues: Issues, raw: object, path: str) -> tuple[bytes, str] | None:
        """A binary `DataSource` (e.g. a DER OCSP response) -> (its bytes, origin)."""
        got = self._data(issues, raw, path)
        return None if got is None else got[:2]

    def data_source(self, issues: Issues, raw: object, path: str) -> tuple[str, str] | None:
        """A PEM `DataSource` at `path` -> (its text, where it came from for messages)."""
        got = self._data(issues, raw, path)
        if got is None:
            return None
        data, origin, field = got
        try:
            return data.decode("ascii"), origin  # PEM is ASCII
        except UnicodeDecodeError:
            issues.add(field, f"{origin} is not PEM text (not ASCII)")
            return None

    def missing_secrets(self) -> list[str]:
        """SDS secrets named but not received (the snapshot warms while there are any)."""
        return [f"Secret {n}" for n in sorted(self.sds_names.difference(self.sds or {}))]

    def version(self, base: str) -> str:
        """`base` (the document's digest) folded with the digest of every file read."""
        if not self.digests:
            return base
        h = hashlib.sha256(base.encode())
        for name, digest in self.digests.items():
            h.update(f"\0{name}\0{digest}".encode())
        return h.hexdigest()[: len(base) or 12]
