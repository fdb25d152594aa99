"""Envoy `RouteConfiguration` (inline in the HTTP connection manager) -> native route config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    Doc,
    at,
    get_bool,
    get_duration_ms,
    get_int,
    get_list,
    get_map,
    get_str,
    item,
    obj,
)

__all__ = ["ClusterRefs", "translate_route_config"]

#: (field path, cluster name) of every cluster a route names; checked once clusters are known.
ClusterRefs = list[tuple[str, str]]

_MUTATION_FIELDS: Final = frozenset(
    {
        "request_headers_to_add",
        "request_headers_to_remove",
        "response_headers_to_add",
        "response_headers_to_remove",
    }
)
_ROUTE_CONFIG: Final = frozenset({"name", "virtual_hosts"}) | _MUTATION_FIELDS
_VHOST: Final = frozenset({"name", "domains", "routes"}) | _MUTATION_FIELDS
_ROUTE: Final = frozenset({"name", "match", "route", "direct_response"}) | _MUTATION_FIELDS
_MATCH: Final = frozenset({"prefix", "path", "safe_regex", "case_sensitive", "headers"})
_REGEX: Final = frozenset({"regex", "google_re2"})
_HEADER_MATCHER: Final = frozenset({"name", "string_match", "present_match", "invert_match"})
_STRING_MATCH: Final = frozenset(
    {"exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"}
)
_ACTION: Final = frozenset({"cluster", "timeout", "prefix_rewrite", "host_rewrite_literal"})
_DIRECT: Final = frozenset({"status", "body"})
_BODY: Final = frozenset({"inline_string"})
_HVO: Final = frozenset({"header", "append_action", "append"})
_HEADER: Final = frozenset({"key", "value"})

_APPEND_ACTIONS: Final = {"APPEND_IF_EXISTS_OR_ADD": True, "OVERWRITE_IF_EXISTS_OR_ADD": False}
# Envoy: pseudo-headers and `host` cannot be added or removed by header mutations.
_PROTECTED: Final = "pseudo-headers (':...') and 'host' cannot be modified"
# Python `re` accepts these, RE2 (Envoy's engine) does not.
_NOT_RE2: Final = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=|\(\?>|[*+?}]\+")
_ESCAPED: Final = re.compile(r"\\[^1-9]")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")


def check_regex(issues: Issues, doc: Doc, path: str) -> str | None:
    """A `RegexMatcher` ({regex, google_re2: {}}) -> the pattern.

    Python's `re` is a close first check of RE2 syntax; the constructs where the two
    differ in *acceptance* (lookaround, backreferences, possessive/atomic groups) are
    refused explicitly because Envoy's RE2 rejects them.
    """
    m = obj(issues, doc, path, _REGEX)
    if m is None:
        return None
    google = m.get("google_re2")
    if google is not None and google != {}:
        issues.add(at(path, "google_re2"), "only an empty google_re2 {} is supported")
    pattern = get_str(issues, m, "regex", path, required=True)
    if pattern is None:
        return None
    if _NOT_RE2.search(_ESCAPED.sub("x", pattern)):
        issues.add(
            at(path, "regex"),
            f"RE2 does not support lookaround, backreferences or possessive/atomic groups: "
            f"{pattern!r}",
        )
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        issues.add(at(path, "regex"), f"invalid regular expression {pattern!r}: {exc}")
        return None
    return pattern


def _header_name(issues: Issues, name: str, path: str, *, mutation: bool) -> str | None:
    lower = name.lower()
    body = lower[1:] if lower.startswith(":") and not mutation else lower
    if not _HEADER_NAME.fullmatch(body):
        issues.add(path, f"expected a valid HTTP header name, got {name!r}")
        return None
    if mutation and (lower.startswith(":") or lower == "host"):
        issues.add(path, f"{_PROTECTED}, got {name!r}")
        return None
    return lower


def header_value(issues: Issues, value: str, path: str) -> str | None:
    """A header value to add. Envoy reads `%COMMAND%` in values (`%%` is a literal `%`);
    fastmesh sends values literally, so a command is an error rather than a silent change.
    """
    if "%" not in value:
        return value
    if "%" in value.replace("%%", ""):
        issues.add(
            path,
            f"%COMMAND% substitutions are {NOT_SUPPORTED}; write %% for a literal %, got {value!r}",
        )
        return None
    return value.replace("%%", "%")


def _headers_to_add(issues: Issues, doc: Doc, key: str, path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = at(path, key)
    for i, raw in enumerate(get_list(issues, doc, key, path)):
        p = item(base, i)
        hvo = obj(issues, raw, p, _HVO)
        if hvo is None:
            continue
        header = get_map(issues, hvo, "header", p, _HEADER, required=True)
        append = True
        action = hvo.get("append_action")
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
        key_ = get_str(issues, header, "key", hp, required=True, non_empty=True)
        value = get_str(issues, header, "value", hp)
        if value is not None:
            value = header_value(issues, value, at(hp, "value"))
            if value is None:
                continue
        if key_ is None:
            continue
        name = _header_name(issues, key_, at(hp, "key"), mutation=True)
        if name is not None:
            out.append({"name": name, "value": value or "", "append": append})
    return out


def _headers_to_remove(issues: Issues, doc: Doc, key: str, path: str) -> list[str]:
    out: list[str] = []
    base = at(path, key)
    for i, raw in enumerate(get_list(issues, doc, key, path)):
        p = item(base, i)
        if not isinstance(raw, str) or not raw:
            issues.add(p, f"expected a header name, got {raw!r}")
            continue
        name = _header_name(issues, raw, p, mutation=True)
        if name is not None:
            out.append(name)
    return out


def header_mutation(issues: Issues, doc: Doc, path: str) -> dict[str, Any]:
    """The four `*_headers_to_{add,remove}` fields of one level as a native HeaderMutation.

    Empty lists are omitted (native defaults), which keeps 10k-vhost snapshots small.
    """
    out: dict[str, Any] = {}
    if "request_headers_to_add" in doc:
        out["request_add"] = _headers_to_add(issues, doc, "request_headers_to_add", path)
    if "request_headers_to_remove" in doc:
        out["request_remove"] = _headers_to_remove(issues, doc, "request_headers_to_remove", path)
    if "response_headers_to_add" in doc:
        out["response_add"] = _headers_to_add(issues, doc, "response_headers_to_add", path)
    if "response_headers_to_remove" in doc:
        out["response_remove"] = _headers_to_remove(issues, doc, "response_headers_to_remove", path)
    return out


def _string_match(issues: Issues, doc: Doc, path: str) -> dict[str, Any] | None:
    sm = obj(issues, doc, path, _STRING_MATCH)
    if sm is None:
        return None
    if get_bool(issues, sm, "ignore_case", path):
        issues.add(at(path, "ignore_case"), "only ignore_case: false is supported")
    kinds = [k for k in ("exact", "prefix", "suffix", "contains", "safe_regex") if k in sm]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of exact, prefix, suffix, contains, safe_regex"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        return None
    kind = kinds[0]
    if kind == "safe_regex":
        pattern = check_regex(issues, sm["safe_regex"], at(path, "safe_regex"))  # type: ignore[arg-type]
        return None if pattern is None else {"regex": pattern}
    value = get_str(issues, sm, kind, path)
    return None if value is None else {kind: value}


def _header_matcher(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    hm = obj(issues, raw, path, _HEADER_MATCHER)
    if hm is None:
        return None
    name = get_str(issues, hm, "name", path, required=True, non_empty=True)
    invert = get_bool(issues, hm, "invert_match", path) or False
    present = get_bool(issues, hm, "present_match", path)
    kind: dict[str, Any] | None
    if "string_match" in hm:
        if present is not None:
            issues.add(path, "expected only one of string_match, present_match")
        kind = _string_match(issues, hm["string_match"], at(path, "string_match"))  # type: ignore[arg-type]
    else:
        # Envoy: no match specifier means "the header is present".
        kind = {"present": True if present is None else present}
    if name is None or kind is None:
        return None
    lower = _header_name(issues, name, at(path, "name"), mutation=False)
    if lower is None:
        return None
    out: dict[str, Any] = {"name": lower, "match": kind}
    if invert:
        out["invert"] = True
    return out


def _route_match(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    m = obj(issues, raw, path, _MATCH)
    if m is None:
        return None
    kinds = [k for k in ("prefix", "path", "safe_regex") if k in m]
    if len(kinds) != 1:
        issues.add(
            path,
            "expected exactly one of prefix, path, safe_regex"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        path_match: dict[str, str] | None = None
    elif kinds[0] == "safe_regex":
        pattern = check_regex(issues, m["safe_regex"], at(path, "safe_regex"))  # type: ignore[arg-type]
        path_match = None if pattern is None else {"regex": pattern}
    else:
        value = get_str(issues, m, kinds[0], path)
        path_match = (
            None if value is None else {"prefix" if kinds[0] == "prefix" else "exact": value}
        )
    out: dict[str, Any] = {"path": path_match}
    case_sensitive = get_bool(issues, m, "case_sensitive", path)
    if case_sensitive is False:
        out["case_sensitive"] = False
    if "headers" in m:
        base = at(path, "headers")
        headers = [
            _header_matcher(issues, h, item(base, i))
            for i, h in enumerate(get_list(issues, m, "headers", path))
        ]
        out["headers"] = headers
        if None in headers:
            return None
    return None if path_match is None else out


def _forward(
    issues: Issues, raw: object, path: str, is_regex: bool, refs: ClusterRefs
) -> dict[str, Any] | None:
    a = obj(issues, raw, path, _ACTION)
    if a is None:
        return None
    cluster = get_str(issues, a, "cluster", path, required=True, non_empty=True)
    out: dict[str, Any] = {"cluster": cluster}
    if cluster is not None:
        refs.append((at(path, "cluster"), cluster))
    timeout = get_duration_ms(issues, a, "timeout", path)
    if timeout is not None:
        out["timeout_ms"] = timeout
    prefix_rewrite = get_str(issues, a, "prefix_rewrite", path)
    if prefix_rewrite is not None:
        if is_regex:
            issues.add(
                at(path, "prefix_rewrite"),
                "prefix_rewrite needs a prefix or path match, not safe_regex",
            )
        out["prefix_rewrite"] = prefix_rewrite
    host = get_str(issues, a, "host_rewrite_literal", path, non_empty=True)
    if host is not None:
        out["host_rewrite"] = host
    return out if cluster is not None else None


def _direct(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    d = obj(issues, raw, path, _DIRECT)
    if d is None:
        return None
    status = get_int(issues, d, "status", path, 200, 599, required=True)
    body = ""
    b = get_map(issues, d, "body", path, _BODY)
    if b is not None:
        body = get_str(issues, b, "inline_string", at(path, "body"), required=True) or ""
    return None if status is None else {"status": status, "body": body}


def _route(issues: Issues, raw: object, path: str, refs: ClusterRefs) -> dict[str, Any] | None:
    r = obj(issues, raw, path, _ROUTE)
    if r is None:
        return None
    name = get_str(issues, r, "name", path) or ""
    if "match" not in r:
        issues.add(at(path, "match"), "required field is missing")
    matcher = _route_match(issues, r.get("match"), at(path, "match")) if "match" in r else None
    actions = [k for k in ("route", "direct_response") if k in r]
    action: dict[str, Any] | None = None
    if len(actions) != 1:
        issues.add(
            path,
            "expected exactly one of route, direct_response"
            + (f", got {', '.join(actions)}" if actions else ""),
        )
    elif actions[0] == "route":
        is_regex = isinstance(r.get("match"), Mapping) and "safe_regex" in r["match"]  # type: ignore[operator]
        fwd = _forward(issues, r["route"], at(path, "route"), is_regex, refs)
        action = None if fwd is None else {"forward": fwd}
    else:
        direct = _direct(issues, r["direct_response"], at(path, "direct_response"))
        action = None if direct is None else {"direct": direct}
    headers = header_mutation(issues, r, path)
    if matcher is None or action is None:
        return None
    out: dict[str, Any] = {"name": name, "match": matcher, "action": action}
    if headers:
        out["headers"] = headers
    return out


def _check_domain(issues: Issues, domain: str, path: str) -> bool:
    if domain == "*":
        return True
    if not domain or domain.count("*") > 1 or "*" in domain[1:-1]:
        issues.add(
            path,
            f"expected a domain, optionally with one leading or trailing '*' wildcard, "
            f"got {domain!r}",
        )
        return False
    return True


def _virtual_host(
    issues: Issues, raw: object, path: str, refs: ClusterRefs, seen_domains: dict[str, str]
) -> dict[str, Any] | None:
    vh = obj(issues, raw, path, _VHOST)
    if vh is None:
        return None
    name = get_str(issues, vh, "name", path, required=True, non_empty=True)
    domains: list[str] = []
    dpath = at(path, "domains")
    raw_domains = get_list(issues, vh, "domains", path, required=True)
    if "domains" in vh and not raw_domains and isinstance(vh["domains"], list):
        issues.add(dpath, "expected at least one domain")
    for i, d in enumerate(raw_domains):
        p = item(dpath, i)
        if not isinstance(d, str):
            issues.add(p, f"expected a domain string, got {d!r}")
            continue
        lower = d.lower()
        if not _check_domain(issues, lower, p):
            continue
        first = seen_domains.setdefault(lower, p)
        if first != p:
            issues.add(
                p, f"domain {d!r} is already used at {first} (Envoy requires unique domains)"
            )
        domains.append(lower)
    rpath = at(path, "routes")
    routes = [
        _route(issues, r, item(rpath, i), refs)
        for i, r in enumerate(get_list(issues, vh, "routes", path))
    ]
    headers = header_mutation(issues, vh, path)
    if name is None or None in routes:
        return None
    out: dict[str, Any] = {"name": name, "domains": domains, "routes": routes}
    if headers:
        out["headers"] = headers
    return out


def translate_route_config(
    issues: Issues, raw: object, path: str, refs: ClusterRefs
) -> dict[str, Any] | None:
    """An inline Envoy `RouteConfiguration` at `path` -> native `RouteConfiguration`.

    Cluster names that routes forward to are appended to `refs` for the caller to
    check against the clusters it knows.
    """
    rc = obj(issues, raw, path, _ROUTE_CONFIG)
    if rc is None:
        return None
    name = get_str(issues, rc, "name", path) or ""
    vpath = at(path, "virtual_hosts")
    seen_names: dict[str, str] = {}
    seen_domains: dict[str, str] = {}
    vhosts: list[dict[str, Any] | None] = []
    for i, raw_vh in enumerate(get_list(issues, rc, "virtual_hosts", path)):
        p = item(vpath, i)
        vh = _virtual_host(issues, raw_vh, p, refs, seen_domains)
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
    out: dict[str, Any] = {"name": name, "virtual_hosts": vhosts}
    if headers:
        out["headers"] = headers
    return out
