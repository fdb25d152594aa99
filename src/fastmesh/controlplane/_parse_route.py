"""Pieces of a VirtualService that its http and tcp routes share: string matches,
destinations, and weighted destination lists."""

from __future__ import annotations

from typing import Any

from ._fields import Fields
from ._model import Destination, RouteDestination, StringMatch

__all__ = ["parse_destination", "parse_route_destinations", "parse_string_match"]


def parse_string_match(f: Fields, obj: Any, path: str) -> StringMatch | None:
    """Istio `StringMatch`: exactly one of exact, prefix, regex."""
    entry = f.mapping(obj, path, required=True)
    kinds = [k for k in ("exact", "prefix", "regex") if k in entry]
    f.only(entry, path, {"exact", "prefix", "regex"})
    if len(kinds) != 1:
        f.problem(path, "expected exactly one of exact, prefix, regex")
        return None
    value = f.string(entry[kinds[0]], f"{path}.{kinds[0]}")
    return StringMatch(kinds[0], value)


def parse_destination(f: Fields, obj: Any, path: str) -> Destination:
    """Istio `Destination`: `host`, `subset`, `port.number`."""
    dest = f.mapping(obj, path, required=True)
    f.only(dest, path, {"host", "subset", "port"})
    host = f.string(dest.get("host"), f"{path}.host", required=True)
    subset = f.string(dest.get("subset"), f"{path}.subset")
    port_entry = f.mapping(dest.get("port"), f"{path}.port")
    f.only(port_entry, f"{path}.port", {"number"})
    port = f.integer(port_entry.get("number"), f"{path}.port.number", lo=1, hi=65535)
    return Destination(host, subset, port)


def _route_destination(f: Fields, obj: Any, path: str) -> RouteDestination:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, {"destination", "weight"})
    dest = parse_destination(f, entry.get("destination"), f"{path}.destination")
    weight = f.integer(entry.get("weight"), f"{path}.weight", lo=0, hi=1_000_000)
    return RouteDestination(dest, weight)


def parse_route_destinations(
    f: Fields, obj: Any, path: str, *, required: bool = True
) -> tuple[RouteDestination, ...]:
    """A `route` list: at least one destination; several need weights summing to 100."""
    dests = tuple(
        _route_destination(f, d, f"{path}[{i}]")
        for i, d in enumerate(f.seq(obj, path, required=required))
    )
    if not dests and obj is not None:
        f.problem(path, "needs at least one destination")
    if len(dests) > 1 and sum(d.weight for d in dests) == 0:
        f.problem(path, "several destinations need weights (summing to 100)")
    elif len(dests) > 1 and sum(d.weight for d in dests) != 100:
        f.problem(path, "destination weights must sum to 100")
    return dests
