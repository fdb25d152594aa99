"""Picks the compiled twin (Cython, `fastmesh_ext`) of each translator hot loop when installed.

`FASTMESH_PURE_PYTHON=1` forces the pure-Python twins (for debugging and benchmarks).
Callers look names up on this module at call time, so tests and benchmarks can swap them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._endpoints import translate_endpoints as py_translate_endpoints
from ._errors import Issues
from ._fields import Doc
from ._filters import FilterKinds
from ._routes import ClusterRefs
from ._routes import translate_route_config as py_translate_route_config

__all__ = [
    "IMPLEMENTATION",
    "py_translate_endpoints",
    "py_translate_route_config",
    "translate_endpoints",
    "translate_route_config",
]

RouteConfigTranslator = Callable[
    [Issues, object, str, ClusterRefs, FilterKinds], "dict[str, Any] | None"
]
EndpointsTranslator = Callable[[Issues, Doc, str, "str | None"], "list[dict[str, Any]]"]

translate_route_config: RouteConfigTranslator = py_translate_route_config
translate_endpoints: EndpointsTranslator = py_translate_endpoints
#: "cython" when the compiled twins are in use, else "python".
IMPLEMENTATION = "python"

if os.environ.get("FASTMESH_PURE_PYTHON", "") in ("", "0"):
    try:
        from fastmesh_ext.endpoints import translate_endpoints as _compiled_endpoints
        from fastmesh_ext.routes import translate_route_config as _compiled_routes
    # ImportError: the ext distribution is not installed. AttributeError: it was built
    # from an older tree and reads constants this one no longer has. Either way the
    # pure-Python twins are correct, only slower.
    except (ImportError, AttributeError):
        pass
    else:
        translate_route_config = _compiled_routes
        translate_endpoints = _compiled_endpoints
        IMPLEMENTATION = "cython"
