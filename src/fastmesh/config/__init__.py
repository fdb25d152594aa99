"""The one translator: Envoy's API (bootstrap YAML/JSON, xDS resources) -> native snapshot.

The supported subset is documented field by field in docs/envoy-subset.md; every other
field is a `ConfigError` naming its path.

The translator (and PyYAML) load on first use of one of its names, so that importing
`ConfigError` or `fastmesh.config._compile` stays cheap: the long-lived `fastmesh-proxy`
process never loads them (it translates in a child, see `_compile`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import ConfigError, Problem

if TYPE_CHECKING:
    from ._bootstrap import (
        Bootstrap,
        DynamicResources,
        load_bootstrap,
        parse_document,
        snapshot_json,
        translate_bootstrap,
        translate_resources,
    )

__all__ = [
    "Bootstrap",
    "ConfigError",
    "DynamicResources",
    "Problem",
    "load_bootstrap",
    "parse_document",
    "snapshot_json",
    "translate_bootstrap",
    "translate_resources",
]

_TRANSLATOR = frozenset(__all__) - {"ConfigError", "Problem"}


def __getattr__(name: str) -> Any:
    if name in _TRANSLATOR:
        from . import _bootstrap

        return getattr(_bootstrap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
