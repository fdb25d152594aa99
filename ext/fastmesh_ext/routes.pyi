"""Compiled twin of fastmesh.config._routes (see routes.pyx)."""

from collections.abc import Mapping
from typing import Any

from fastmesh.config._errors import Issues

__all__ = ["translate_route_config"]

def translate_route_config(
    issues: Issues,
    raw: object,
    path: str,
    refs: list[tuple[str, str]],
    filters: Mapping[str, str],
) -> dict[str, Any] | None: ...
