# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of `fastmesh.config._endpoints`: Envoy lb_endpoints -> native endpoints.

The per-endpoint loop is the cluster half of the translator's hot spot (10k clusters x
2 endpoints). Mirrors `_endpoints.py`; well-formed endpoints stay in C-level code, any
problem is handed to the Python twin's helpers so messages are identical
(`tests/unit/test_config_speedups.py`).
"""

from fastmesh.config import _address as _addr
from fastmesh.config import _endpoints as _twin
from fastmesh.config import _fields as _py

__all__ = ["translate_endpoints"]

cdef frozenset _LOCALITY = _twin._LOCALITY
cdef frozenset _LB_ENDPOINT = _twin._LB_ENDPOINT
cdef frozenset _ENDPOINT = _twin._ENDPOINT
cdef frozenset _SOCKET = _addr._SOCKET
cdef object _HOSTNAME_FULLMATCH = _twin._HOSTNAME.fullmatch
cdef object _U32_MAX = _twin._U32_MAX
cdef object _MAX_PRIORITY = _twin._MAX_PRIORITY
cdef object _socket_address_py = _addr.socket_address
cdef object _is_ip_py = _py.is_ip

include "_readers.pxi"


cdef bint _is_ipv4_fast(str text):
    """True only for a canonical dotted quad (a subset of what inet_pton accepts)."""
    cdef Py_ssize_t n = len(text), i
    cdef int parts = 0, digits = 0, value = 0
    cdef Py_UCS4 ch
    if n < 7 or n > 15:
        return False
    for i in range(n):
        ch = text[i]
        if ch == ".":
            if digits == 0:
                return False
            parts += 1
            digits = 0
            value = 0
        elif "0" <= ch <= "9":
            if digits > 0 and value == 0:
                return False  # leading zero
            value = value * 10 + (<int>ch - 48)
            digits += 1
            if value > 255:
                return False
        else:
            return False
    return parts == 3 and digits > 0


cdef inline bint _is_ip(str host):
    return _is_ipv4_fast(host) or _is_ip_py(host)


cdef object _socket_address(object issues, object doc, str path):
    """`_address.socket_address(..., ip_only=False, port_min=1)`, fast when well-formed."""
    cdef object sa, host, port, protocol
    if type(doc) is dict and len(<dict>doc) == 1:
        sa = (<dict>doc).get("socket_address")
        if type(sa) is dict and _SOCKET.issuperset(<dict>sa):
            host = (<dict>sa).get("address")
            port = (<dict>sa).get("port_value")
            protocol = (<dict>sa).get("protocol")
            if (
                (protocol is None or protocol == "TCP")
                and type(host) is str
                and host
                and type(port) is int
                and 1 <= port <= 65535
            ):
                return host, port
    return _socket_address_py(issues, doc, path, ip_only=False, port_min=1)


def translate_endpoints(issues, la, str path, discovery):
    """Same contract as `fastmesh.config._endpoints.translate_endpoints`."""
    cdef list out = []
    cdef str epath = at(path, "endpoints")
    cdef str lp, bpath, p, ep_path, apath, host_field
    cdef Py_ssize_t i, j
    cdef dict endpoint
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
            ep = get_map(issues, lbe, "endpoint", p, _ENDPOINT, True)
            if ep is None:
                continue
            ep_path = at(p, "endpoint")
            if "address" not in ep:
                issues.add(at(ep_path, "address"), "required field is missing")
                continue
            apath = at(ep_path, "address")
            hp = _socket_address(issues, ep["address"], apath)
            if hp is None:
                continue
            host, port = hp
            if not _is_ip(host):
                host_field = at(at(apath, "socket_address"), "address")
                if discovery == "static":
                    issues.add(
                        host_field,
                        f"a STATIC cluster needs IP addresses, got hostname {host!r} "
                        "(use type: STRICT_DNS or LOGICAL_DNS)",
                    )
                    continue
                if not _HOSTNAME_FULLMATCH(host):
                    issues.add(host_field, f"expected an IP address or a DNS name, got {host!r}")
                    continue
            endpoint = {"host": host, "port": port}
            if weight is not None:
                endpoint["weight"] = weight
            if priority:
                endpoint["priority"] = priority
            out.append(endpoint)
    return out
