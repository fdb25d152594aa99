"""Typed reads of one YAML resource that record a Problem (file, resource, field) per mistake."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._errors import Problem

__all__ = ["Fields", "parse_duration"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """`"1.5s"`, `"250ms"`, `"2m"`, `"1h"` -> seconds; None when malformed."""
    m = _DURATION.match(text.strip())
    return float(m.group(1)) * _SCALE[m.group(2)] if m else None


class Fields:
    """Reads fields of one resource; every bad field becomes a Problem, reads never raise."""

    def __init__(self, file: str, resource: str) -> None:
        self.file = file
        self.resource = resource
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, self.resource, path, message))

    def mapping(self, obj: Any, path: str, *, required: bool = False) -> dict[str, Any]:
        if obj is None:
            if required:
                self.problem(path, "is required")
            return {}
        if not isinstance(obj, Mapping):
            self.problem(path, f"expected a mapping, got {type(obj).__name__}")
            return {}
        return {str(k): v for k, v in obj.items()}

    def seq(self, obj: Any, path: str, *, required: bool = False) -> list[Any]:
        if obj is None:
            if required:
                self.problem(path, "is required")
            return []
        if not isinstance(obj, list):
            self.problem(path, f"expected a list, got {type(obj).__name__}")
            return []
        return obj

    def string(self, obj: Any, path: str, *, required: bool = False, default: str = "") -> str:
        if obj is None:
            if required:
                self.problem(path, "is required")
            return default
        if not isinstance(obj, str) or (required and not obj):
            self.problem(path, f"expected a non-empty string, got {obj!r}")
            return default
        return obj

    def integer(
        self, obj: Any, path: str, *, lo: int, hi: int, required: bool = False, default: int = 0
    ) -> int:
        if obj is None:
            if required:
                self.problem(path, "is required")
            return default
        if isinstance(obj, bool) or not isinstance(obj, int) or not lo <= obj <= hi:
            self.problem(path, f"expected an integer in [{lo}, {hi}], got {obj!r}")
            return default
        return obj

    def boolean(self, obj: Any, path: str) -> bool | None:
        if obj is None:
            return None
        if not isinstance(obj, bool):
            self.problem(path, f"expected true or false, got {obj!r}")
            return None
        return obj

    def strings(self, obj: Any, path: str) -> tuple[str, ...]:
        """A list of non-empty strings."""
        return tuple(
            self.string(v, f"{path}[{i}]", required=True) for i, v in enumerate(self.seq(obj, path))
        )

    def labels(self, obj: Any, path: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.mapping(obj, path).items():
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                self.problem(f"{path}.{key}", f"expected a string label value, got {value!r}")
                continue
            out[key] = str(value)
        return out

    def duration(self, obj: Any, path: str) -> float | None:
        if obj is None:
            return None
        seconds = parse_duration(obj) if isinstance(obj, str) else None
        if seconds is None:
            self.problem(path, f"expected a duration such as '1.5s' or '250ms', got {obj!r}")
        return seconds

    def only(self, obj: Mapping[str, Any], path: str, known: set[str]) -> None:
        """Every key of `obj` must be one fastmesh supports; the others are named, not ignored."""
        for key in obj:
            if key not in known:
                where = f"{path}.{key}" if path else key
                self.problem(where, f"unsupported field (supported: {', '.join(sorted(known))})")
