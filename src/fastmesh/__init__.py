"""fastmesh: a service mesh whose sidecar data path is compiled Rust, driven from Python.

The embedding API is `fastmesh.Proxy`; the standalone sidecar is the `fastmesh-proxy`
command (a drop-in for `envoy -c FILE`); `fastmesh demo` runs the proxy in front of
small demo services.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from fastmesh.proxy._api import Proxy

try:
    __version__ = _metadata.version("fastmesh")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = ["Proxy", "__version__"]
