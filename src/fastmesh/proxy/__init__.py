"""The sidecar process: `fastmesh-proxy` (CLI, admin listener, live reload, app supervision)
and `Proxy`, the synchronous embedding API."""

from __future__ import annotations

from fastmesh.proxy._api import Proxy

__all__ = ["Proxy"]
