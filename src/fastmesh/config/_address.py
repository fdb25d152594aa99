"""Envoy `Address` (`socket_address` only) -> (host, port), and the engine's `ip:port` form."""

from __future__ import annotations

from typing import Final

from ._errors import Issues
from ._fields import at, get_int, get_map, get_str, is_ip, obj

__all__ = ["host_port", "socket_address"]

_ADDRESS: Final = frozenset({"socket_address"})
_SOCKET: Final = frozenset({"address", "port_value", "protocol"})


def socket_address(
    issues: Issues, doc: object, path: str, *, ip_only: bool, port_min: int
) -> tuple[str, int] | None:
    """`{socket_address: {address, port_value}}` at `path` -> (host, port)."""
    addr = obj(issues, doc, path, _ADDRESS)
    if addr is None:
        return None
    sa = get_map(issues, addr, "socket_address", path, _SOCKET, required=True)
    if sa is None:
        return None
    sp = at(path, "socket_address")
    protocol = sa.get("protocol")
    if protocol is not None and protocol != "TCP":
        issues.add(at(sp, "protocol"), f"only TCP is supported, got {protocol!r}")
    host = get_str(issues, sa, "address", sp, required=True, non_empty=True)
    port = get_int(issues, sa, "port_value", sp, port_min, 65535, required=True)
    if host is not None and ip_only and not is_ip(host):
        issues.add(at(sp, "address"), f"expected an IP address, got {host!r}")
        return None
    if host is None or port is None:
        return None
    return host, port


def host_port(host: str, port: int) -> str:
    """`ip:port` as the engine parses it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
