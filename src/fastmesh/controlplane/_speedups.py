"""Picks the compiled twin (Cython, `fastmesh_ext.wire`) of the control plane's hot loop,
the Envoy-JSON encoder, when installed; `FASTMESH_PURE_PYTHON=1` forces the Python twin
(`_wire.encode`). Callers look `encode` up on this module at call time, so tests and the
benchmark can swap it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._wire import Plan
from ._wire import encode as py_encode

__all__ = ["IMPLEMENTATION", "encode", "py_encode"]

Encoder = Callable[[Plan, Any, "dict[int, bytes] | None"], bytes]

encode: Encoder = py_encode
#: "cython" when the compiled twin is in use, else "python".
IMPLEMENTATION = "python"

if os.environ.get("FASTMESH_PURE_PYTHON", "") in ("", "0"):
    try:
        from fastmesh_ext.wire import encode as _compiled_encode
    # ImportError: the ext distribution is not installed; AttributeError: it was built from
    # an older tree. Either way the Python twin is correct, only slower.
    except (ImportError, AttributeError):
        pass
    else:
        encode = _compiled_encode
        IMPLEMENTATION = "cython"
