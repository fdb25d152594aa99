"""The one translator: Envoy's API (bootstrap YAML/JSON, xDS resources) -> native snapshot.

The supported subset is documented field by field in docs/envoy-subset.md; every other
field is a `ConfigError` naming its path.
"""

from ._bootstrap import (
    Bootstrap,
    load_bootstrap,
    parse_document,
    snapshot_json,
    translate_bootstrap,
    translate_resources,
)
from ._errors import ConfigError, Problem

__all__ = [
    "Bootstrap",
    "ConfigError",
    "Problem",
    "load_bootstrap",
    "parse_document",
    "snapshot_json",
    "translate_bootstrap",
    "translate_resources",
]
