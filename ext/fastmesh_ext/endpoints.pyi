"""Compiled twin of fastmesh.config._endpoints (see endpoints.pyx)."""

from typing import Any

from fastmesh.config._errors import Issues
from fastmesh.config._fields import Doc

__all__ = ["translate_endpoints"]

def translate_endpoints(
    issues: Issues, la: Doc, path: str, discovery: str | None
) -> list[dict[str, Any]]: ...
