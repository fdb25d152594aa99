"""Compiled twin of fastmesh.controlplane._wire.encode (see wire.pyx)."""

from typing import Any

from fastmesh.controlplane._wire import Plan

__all__ = ["encode"]

def encode(plan: Plan, doc: Any, memo: dict[int, bytes] | None = None) -> bytes: ...
