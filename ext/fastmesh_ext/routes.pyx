# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of `fastmesh.config._routes`: Envoy RouteConfiguration -> native routes.

The per-virtual-host/per-route loop is the translator's hot spot on large configs
(10k virtual hosts: ~60% of `translate_bootstrap`). This file mirrors `_routes.py`
function by function; only the field readers are C fast paths. Any problem is
delegated to the pure-Python readers in `fastmesh.config._fields`, so error
messages are identical by construction; `tests/unit/test_config_speedups.py` checks that
both produce identical snapshots and identical problems.
"""

from collections.abc import Mapping

from fastmesh.config import _actions
from fastmesh.config import _fields as _py
from fastmesh.config import _headers
from fastmesh.config import _match
from fastmesh.config import _routes as _twin

__all__ = ["translate_route_config"]

# Same constants as the twin (one definition, no drift).
cdef frozenset _ROUTE_CONFIG = _twin._ROUTE_CONFIG
cdef frozenset _VHOST = _twin._VHOST
cdef frozenset _ROUTE = _twin._ROUTE
cdef frozenset _MATCH = _twin._MATCH
cdef frozenset _ACTION = _twin._ACTION
cdef tuple _ACTIONS = _twin._ACTIONS
cdef frozenset _DIRECT = _twin._DIRECT
cdef frozenset _BODY = _twin._BODY
cdef frozenset _VHOST_POLICIES = _twin._VHOST_POLICIES
cdef frozenset _FORWARD_POLICIES = _actions.FORWARD_POLICIES
cdef frozenset _HEADER_MATCHER = _match._HEADER_MATCHER
cdef frozenset _STRING_MATCH = _match._STRING_MATCH
cdef frozenset _HVO = _headers._HVO
cdef frozenset _HEADER = _headers._HEADER
cdef dict _APPEND_ACTIONS = _headers._APPEND_ACTIONS
cdef object _HEADER_NAME_FULLMATCH = _match._HEADER_NAME.fullmatch
cdef object _check_regex = _match.check_regex
cdef object _header_name_slow = _match.header_name
cdef object _header_value = _headers.header_value
cdef object _check_domain = _twin._check_domain
# Fields off the hot path: the twin's own functions, so both give identical results.
cdef object _query_parameters = _twin.query_parameters
cdef object _route_overrides = _twin.route_overrides
cdef object _vhost_policies = _twin.vhost_policies
cdef object _forward_policies = _actions.forward_policies
cdef object _redirect_action = _actions.redirect_action
# Memo of well-formed header names: configs repeat the same few.
cdef set _header_names = set()


include "_readers.pxi"


# ---- the route tree (mirrors _routes.py) ----

cdef object _header_name(object issues, str name, str path, bint mutation):
    cdef str lower = name.lower()
    # A plain token name (not `host`, no ':') is valid for matchers and mutations alike.
    if lower in _header_names:
        return lower
    if lower != "host" and not lower.startswith(":") and _HEADER_NAME_FULLMATCH(lower):
        if len(_header_names) < 4096:
            _header_names.add(lower)
        return lower
    return _header_name_slow(issues, name, path, mutation=mutation)


cdef list _headers_to_add(object issues, object doc, str key, str path):
    cdef list out = []
    cdef str base = at(path, key)
    cdef str p, hp
    cdef Py_ssize_t i
    cdef bint append
    for i, raw in enumerate(get_list(issues, doc, key, path)):
        p = item(base, i)
        hvo = obj(issues, raw, p, _HVO)
        if hvo is None:
            continue
        header = get_map(issues, hvo, "header", p, _HEADER, True)
        append = True
        action = _get(hvo, "append_action")
        legacy = get_bool(issues, hvo, "append", p)
        if action is not None:
            if legacy is not None:
                issues.add(at(p, "append"), "append and append_action are mutually exclusive")
            if isinstance(action, str) and action in _APPEND_ACTIONS:
                append = _APPEND_ACTIONS[action]
            else:
                issues.add(
                    at(p, "append_action"),
                    f"expected APPEND_IF_EXISTS_OR_ADD or OVERWRITE_IF_EXISTS_OR_ADD, "
                    f"got {action!r}",
                )
        elif legacy is not None:
            append = legacy
        if header is None:
            continue
        hp = at(p, "header")
        key_ = get_str(issues, header, "key", hp, True, True)
        value = get_str(issues, header, "value", hp)
        if value is not None and "%" in value:
            value = _header_value(issues, value, at(hp, "value"))
            if value is None:
                continue
        if key_ is None:
            continue
        name = _header_name(issues, key_, at(hp, "key"), True)
        if name is not None:
            out.append({"name": name, "value": value or "", "append": append})
    return out


cdef list _headers_to_remove(object issues, object doc, str key, str path):
    cdef list out = []
    cdef str base = at(path, key)
    cdef str p
    cdef Py_ssize_t i
    for i, raw in enumerate(get_list(issues, doc, key, path)):
        p = item(base, i)
        if not isinstance(raw, str) or not raw:
            issues.add(p, f"expected a header name, got {raw!r}")
            continue
        name = _header_name(issues, raw, p, True)
        if name is not None:
            out.append(name)
    return out


cdef dict header_mutation(object issues, object doc, str path):
    cdef dict out = {}
    if "request_headers_to_add" in doc:
        out["request_add"] = _headers_to_add(issues, doc, "request_headers_to_add", path)
    if "request_headers_to_remove" in doc:
        out["request_remove"] = _headers_to_remove(issues, doc, "request_headers_to_remove", path)
    if "response_headers_to_add" in doc:
        out["response_add"] = _headers_to_add(issues, doc, "response_headers_to_add", path)
    if "response_headers_to_remove" in doc:
        out["response_remove"] = _headers_to_remove(issues, doc, "response_headers_to_remove", path)
    return out


cdef object _string_match(object issues, object doc, str path):
    sm = obj(issues, doc, path, _STRING_MATCH)
    if sm is None:
        return None
    if get_bool(issues, sm, "ignore_case", path):
        issues.add(at(path, "ignore_case"), "only ignore_case: false is supported")
    cdef list kinds = [k for k in ("exact", "prefix", "suffix", "contains", "safe_regex") if k in sm]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of exact, prefix, suffix, contains, safe_regex"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        return None
    cdef str kind = kinds[0]
    if kind == "safe_regex":
        pattern = _check_regex(issues, sm["safe_regex"], at(path, "safe_regex"))
        return None if pattern is None else {"regex": pattern}
    value = get_str(issues, sm, kind, path)
    return None if value is None else {kind: value}


cdef object _header_matcher(object issues, object raw, str path):
    hm = obj(issues, raw, path, _HEADER_MATCHER)
    if hm is None:
        return None
    name = get_str(issues, hm, "name", path, True, True)
    invert = get_bool(issues, hm, "invert_match", path) or False
    present = get_bool(issues, hm, "present_match", path)
    if "string_match" in hm:
        if present is not None:
            issues.add(path, "expected only one of string_match, present_match")
        kind = _string_match(issues, hm["string_match"], at(path, "string_match"))
    else:
        kind = {"present": True if present is None else present}
    if name is None or kind is None:
        return None
    lower = _header_name(issues, name, at(path, "name"), False)
    if lower is None:
        return None
    cdef dict out = {"name": lower, "match": kind}
    if invert:
        out["invert"] = True
    return out


cdef object _route_match(object issues, object raw, str path):
    m = obj(issues, raw, path, _MATCH)
    if m is None:
        return None
    cdef list kinds = [k for k in ("prefix", "path", "safe_regex") if k in m]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of prefix, path, safe_regex"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        path_match = None
    elif kinds[0] == "safe_regex":
        pattern = _check_regex(issues, m["safe_regex"], at(path, "safe_regex"))
        path_match = None if pattern is None else {"regex": pattern}
    else:
        value = get_str(issues, m, kinds[0], path)
        path_match = (
            None if value is None else {"prefix" if kinds[0] == "prefix" else "exact": value}
        )
    cdef dict out = {"path": path_match}
    case_sensitive = get_bool(issues, m, "case_sensitive", path)
    if case_sensitive is False:
        out["case_sensitive"] = False
    cdef str base
    cdef list headers
    cdef Py_ssize_t i
    if "headers" in m:
        base = at(path, "headers")
        headers = [
            _header_matcher(issues, h, item(base, i))
            for i, h in enumerate(get_list(issues, m, "headers", path))
        ]
        out["headers"] = headers
        if None in headers:
            return None
    if "query_parameters" in m:
        params = _query_parameters(issues, m, path)
        out["query_parameters"] = params
        if None in params:
            return None
    return None if path_match is None else out


cdef object _forward(object issues, object raw, str path, bint is_regex, list refs):
    a = obj(issues, raw, path, _ACTION)
    if a is None:
        return None
    cdef dict out = {}
    if "weighted_clusters" not in a:  # else `forward_policies` reads the split
        cluster = get_str(issues, a, "cluster", path, True, True)
        if cluster is not None:
            refs.append((at(path, "cluster"), cluster))
            out["cluster"] = cluster
    timeout = get_duration_ms(issues, a, "timeout", path)
    if timeout is not None:
        out["timeout_ms"] = timeout
    rewrite = _actions.prefix_rewrite(issues, a, path, is_regex)
    if rewrite is not None:
        out["prefix_rewrite"] = rewrite
    host = get_str(issues, a, "host_rewrite_literal", path, False, True)
    if host is not None:
        out["host_rewrite"] = host
    if not _FORWARD_POLICIES.isdisjoint(a):
        _forward_policies(issues, a, path, out, refs)
    return out if "cluster" in out or "weighted_clusters" in out else None


cdef object _direct(object issues, object raw, str path):
    d = obj(issues, raw, path, _DIRECT)
    if d is None:
        return None
    status = get_int(issues, d, "status", path, 200, 599, True)
    body = ""
    b = get_map(issues, d, "body", path, _BODY)
    if b is not None:
        body = get_str(issues, b, "inline_string", at(path, "body"), True) or ""
    return None if status is None else {"status": status, "body": body}


cdef object _route(object issues, object raw, str path, list refs, object filters):
    r = obj(issues, raw, path, _ROUTE)
    if r is None:
        return None
    name = get_str(issues, r, "name", path) or ""
    if "match" not in r:
        issues.add(at(path, "match"), "required field is missing")
    matcher = _route_match(issues, _get(r, "match"), at(path, "match")) if "match" in r else None
    cdef list actions = [k for k in _ACTIONS if k in r]
    action = None
    match = _get(r, "match")
    is_regex = isinstance(match, Mapping) and "safe_regex" in match
    if len(actions) != 1:
        issues.add(
            path,
            f"expected exactly one of {', '.join(_ACTIONS)}"
            + (f", got {', '.join(actions)}" if actions else ""),
        )
    elif actions[0] == "route":
        fwd = _forward(issues, r["route"], at(path, "route"), is_regex, refs)
        action = None if fwd is None else {"forward": fwd}
    elif actions[0] == "direct_response":
        direct = _direct(issues, r["direct_response"], at(path, "direct_response"))
        action = None if direct is None else {"direct": direct}
    else:
        redirect = _redirect_action(issues, r["redirect"], at(path, "redirect"), is_regex)
        action = None if redirect is None else {"redirect": redirect}
    headers = header_mutation(issues, r, path)
    overrides = None
    route_doc = _get(r, "route")
    if "typed_per_filter_config" in r or (isinstance(route_doc, Mapping) and "cors" in route_doc):
        overrides = _route_overrides(issues, r, path, filters)
    if matcher is None or action is None:
        return None
    cdef dict out = {"name": name, "match": matcher, "action": action}
    if headers:
        out["headers"] = headers
    if overrides:
        out["filter_overrides"] = overrides
    return out


cdef object _virtual_host(
    object issues, object raw, str path, list refs, dict seen_domains, object filters
):
    vh = obj(issues, raw, path, _VHOST)
    if vh is None:
        return None
    name = get_str(issues, vh, "name", path, True, True)
    cdef list domains = []
    cdef str dpath = at(path, "domains")
    cdef str p, rpath, lower
    cdef Py_ssize_t i
    raw_domains = get_list(issues, vh, "domains", path, True)
    if "domains" in vh and not raw_domains and isinstance(vh["domains"], list):
        issues.add(dpath, "expected at least one domain")
    for i, d in enumerate(raw_domains):
        p = item(dpath, i)
        if not isinstance(d, str):
            issues.add(p, f"expected a domain string, got {d!r}")
            continue
        lower = d.lower()
        if (not lower or "*" in lower) and not _check_domain(issues, lower, p):
            continue
        first = seen_domains.setdefault(lower, p)
        if first != p:
            issues.add(
                p, f"domain {d!r} is already used at {first} (Envoy requires unique domains)"
            )
        domains.append(lower)
    rpath = at(path, "routes")
    cdef list routes = [
        _route(issues, r, item(rpath, i), refs, filters)
        for i, r in enumerate(get_list(issues, vh, "routes", path))
    ]
    headers = header_mutation(issues, vh, path)
    overrides = None
    if not _VHOST_POLICIES.isdisjoint(vh):
        overrides = _vhost_policies(issues, vh, path, routes, filters)
    if name is None or None in routes:
        return None
    cdef dict out = {"name": name, "domains": domains, "routes": routes}
    if headers:
        out["headers"] = headers
    if overrides:
        out["filter_overrides"] = overrides
    return out


def translate_route_config(issues, raw, str path, list refs, filters):
    """An inline Envoy `RouteConfiguration` at `path` -> native `RouteConfiguration`.

    Same contract as `fastmesh.config._routes.translate_route_config`.
    """
    rc = obj(issues, raw, path, _ROUTE_CONFIG)
    if rc is None:
        return None
    name = get_str(issues, rc, "name", path) or ""
    cdef str vpath = at(path, "virtual_hosts")
    cdef dict seen_names = {}
    cdef dict seen_domains = {}
    cdef list vhosts = []
    cdef str p
    cdef Py_ssize_t i
    for i, raw_vh in enumerate(get_list(issues, rc, "virtual_hosts", path)):
        p = item(vpath, i)
        vh = _virtual_host(issues, raw_vh, p, refs, seen_domains, filters)
        vhosts.append(vh)
        if vh is not None:
            first = seen_names.setdefault(vh["name"], p)
            if first != p:
                issues.add(
                    at(p, "name"), f"duplicate virtual host name {vh['name']!r} (first at {first})"
                )
    headers = header_mutation(issues, rc, path)
    if None in vhosts:
        return None
    cdef dict out = {"name": name, "virtual_hosts": vhosts}
    if headers:
        out["headers"] = headers
    return out
