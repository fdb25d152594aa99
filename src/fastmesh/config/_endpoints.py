"""Envoy `ClusterLoadAssignment.endpoints` -> native endpoints (the per-endpoint loop).

Compiled twin: `fastmesh_ext.endpoints` (picked by `_speedups`).
"""

from __future__ import annotations

import re
from typing import Any, Final

from ._address import socket_address
from ._errors import Issues
from ._fields import Doc, at, get_int, get_list, get_map, is_ip, item, obj

__all__ = ["translate_endpoints"]

_LOCALITY: Final = frozenset({"lb_endpoints", "priority"})
#: Envoy's largest locality priority.
_MAX_PRIORITY: Final = 128
_LB_ENDPOINT: Final = frozenset({"endpoint", "load_balancing_weight"})
_ENDPOINT: Final = frozenset({"address"})
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?"
)
_U32_MAX: Final = 2**32 - 1


def translate_endpoints(
    issues: Issues, la: Doc, path: str, discovery: str | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    epath = at(path, "endpoints")
    for i, raw_loc in enumerate(get_list(issues, la, "endpoints", path)):
        lp = item(epath, i)
        loc = obj(issues, raw_loc, lp, _LOCALITY)
        if loc is None:
            continue
        priority = get_int(issues, loc, "priority", lp, 0, _MAX_PRIORITY)
        bpath = at(lp, "lb_endpoints")
        for j, raw_lbe in enumerate(get_list(issues, loc, "lb_endpoints", lp)):
            p = item(bpath, j)
            lbe = obj(issues, raw_lbe, p, _LB_ENDPOINT)
            if lbe is None:
                continue
            weight = get_int(issues, lbe, "load_balancing_weight", p, 1, _U32_MAX)
            ep = get_map(issues, lbe, "endpoint", p, _ENDPOINT, required=True)
            if ep is None:
                continue
            ep_path = at(p, "endpoint")
            if "address" not in ep:
                issues.add(at(ep_path, "address"), "required field is missing")
                continue
            apath = at(ep_path, "address")
            hp = socket_address(issues, ep["address"], apath, ip_only=False, port_min=1)
            if hp is None:
                continue
            host, port = hp
            if not is_ip(host):
                host_field = at(at(apath, "socket_address"), "address")
                if discovery == "static":
                    issues.add(
                        host_field,
                        f"a STATIC cluster needs IP addresses, got hostname {host!r} "
                        "(use type: STRICT_DNS or LOGICAL_DNS)",
                    )
                    continue
                if not _HOSTNAME.fullmatch(host):
                    issues.add(host_field, f"expected an IP address or a DNS name, got {host!r}")
                    continue
            endpoint: dict[str, Any] = {"host": host, "port": port}
            if weight is not None:
                endpoint["weight"] = weight
            if priority:
                endpoint["priority"] = priority
            out.append(endpoint)
    return out
