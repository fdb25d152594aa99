"""Envoy's RBAC (`envoy.config.rbac.v3.RBAC` policies) for the HTTP filter, its per-route
config and the network filter -> native `RbacConfig`.

In the HTTP filter the native config has one stat prefix where Envoy has one per rule
set (`rules_stat_prefix`, `shadow_rules_stat_prefix`): they must agree for the rule sets
that are present, otherwise it is an error. The network filter's
`shadow_rules_stat_prefix` (Istio's dry-run filters) is kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    Doc,
    at,
    get_enum,
    get_int,
    get_list,
    get_map,
    get_str,
    is_ip,
    item,
    obj,
    one_of,
)
from ._match import header_matcher, string_matcher

__all__ = [
    "HTTP_RBAC_FIELDS",
    "HTTP_RBAC_TYPE",
    "NETWORK_RBAC_FIELDS",
    "NETWORK_RBAC_NAME",
    "NETWORK_RBAC_TYPE",
    "PER_ROUTE_FIELDS",
    "RBAC_PER_ROUTE_TYPE",
    "http_rbac",
    "network_rbac",
    "per_route_rbac",
]

HTTP_RBAC_TYPE: Final = "envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_PER_ROUTE_TYPE: Final = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
NETWORK_RBAC_NAME: Final = "envoy.filters.network.rbac"
NETWORK_RBAC_TYPE: Final = "envoy.extensions.filters.network.rbac.v3.RBAC"

_HTTP: Final = frozenset({"rules", "shadow_rules", "rules_stat_prefix", "shadow_rules_stat_prefix"})
HTTP_RBAC_FIELDS: Final = _HTTP | {"@type"}
PER_ROUTE_FIELDS: Final = frozenset({"@type", "rbac"})
NETWORK_RBAC_FIELDS: Final = frozenset(
    {
        "@type",
        "stat_prefix",
        "rules",
        "shadow_rules",
        "shadow_rules_stat_prefix",
        "enforcement_type",
    }
)
_RULES: Final = frozenset({"action", "policies"})
_POLICY: Final = frozenset({"permissions", "principals"})
_PERMISSIONS: Final = (
    "any",
    "and_rules",
    "or_rules",
    "not_rule",
    "header",
    "url_path",
    "destination_port",
    "destination_ip",
    "requested_server_name",
)
_PRINCIPALS: Final = (
    "any",
    "and_ids",
    "or_ids",
    "not_id",
    "authenticated",
    "direct_remote_ip",
    "remote_ip",
    "source_ip",
    "header",
)
_HTTP_ONLY: Final = frozenset({"header", "url_path"})
_CIDR: Final = frozenset({"address_prefix", "prefix_len"})
_AUTHENTICATED: Final = frozenset({"principal_name"})
_PATH: Final = frozenset({"path"})
_ACTIONS: Final = {"ALLOW": "allow", "DENY": "deny", "LOG": "log"}
_ENFORCEMENT: Final = {"ONE_TIME_ON_FIRST_BYTE": ""}
_RULE_SETS: Final = ("rules", "shadow_rules")

# The tree shape of each kind of node: the key of a set's list (`and_rules: {rules: []}`),
# then the names of its "all of", "any of" and negation kinds.
_PERMISSION_TREE: Final = ("rules", "and_rules", "or_rules", "not_rule")
_PRINCIPAL_TREE: Final = ("ids", "and_ids", "or_ids", "not_id")


def _cidr(issues: Issues, raw: object, path: str) -> str | None:
    """A `CidrRange` -> `ip/prefix_len` (an unset length is 0, as in Envoy)."""
    c = obj(issues, raw, path, _CIDR)
    if c is None:
        return None
    ip = get_str(issues, c, "address_prefix", path, required=True)
    if ip is not None and not is_ip(ip):
        issues.add(at(path, "address_prefix"), f"expected an IP address, got {ip!r}")
        return None
    bits = get_int(issues, c, "prefix_len", path, 0, 128 if ip and ":" in ip else 32)
    if ip is None or (bits is None and "prefix_len" in c):
        return None
    return f"{ip}/{bits or 0}"


def _node(
    issues: Issues,
    raw: object,
    path: str,
    kinds: tuple[str, ...],
    tree: tuple[str, ...],
    http: bool,
) -> Any:
    """One `Permission` or `Principal` (as `kinds` and `tree` say) -> its native variant;
    `http`: the HTTP filter's (header and path matchers allowed)."""
    node = obj(issues, raw, path, frozenset(kinds))
    if node is None:
        return None
    kind = one_of(issues, node, path, kinds)
    if kind is None:
        return None
    p = at(path, kind)
    value = node[kind]
    list_key, and_kind, or_kind, not_kind = tree
    if kind in _HTTP_ONLY and not http:
        issues.add(p, f"{kind} matches HTTP requests only; use it in the HTTP RBAC filter")
        return None
    if kind == "any":
        if value is not True:
            issues.add(p, f"expected true, got {value!r}")
            return None
        return "any"
    if kind in (and_kind, or_kind):
        s = obj(issues, value, p, frozenset({list_key}))
        if s is None:
            return None
        entries = get_list(issues, s, list_key, p, required=True)
        if not entries and list_key in s:
            issues.add(at(p, list_key), "expected at least one entry")
        base = at(p, list_key)
        children = [
            _node(issues, e, item(base, i), kinds, tree, http) for i, e in enumerate(entries)
        ]
        return None if None in children or not children else {kind: children}
    if kind == not_kind:
        child = _node(issues, value, p, kinds, tree, http)
        return None if child is None else {kind: child}
    leaf: object
    if kind == "header":
        leaf = header_matcher(issues, value, p)
    elif kind == "url_path":
        pm = obj(issues, value, p, _PATH)
        leaf = None
        if pm is not None:
            if "path" not in pm:
                issues.add(at(p, "path"), "required field is missing")
            else:
                leaf = string_matcher(issues, pm["path"], at(p, "path"))
    elif kind == "requested_server_name":
        leaf = string_matcher(issues, value, p)
    elif kind == "destination_port":
        leaf = get_int(issues, node, kind, path, 0, 65535)
    elif kind == "authenticated":
        a = obj(issues, value, p, _AUTHENTICATED)
        if a is None:
            return None
        if "principal_name" not in a:
            return {kind: None}  # any authenticated peer
        leaf = string_matcher(issues, a["principal_name"], at(p, "principal_name"))
    else:  # destination_ip, direct_remote_ip, remote_ip, source_ip
        leaf = _cidr(issues, value, p)
        kind = "remote_ip" if kind == "source_ip" else kind
    return None if leaf is None else {kind: leaf}


def _policy(issues: Issues, raw: object, path: str, http: bool) -> dict[str, Any] | None:
    pol = obj(issues, raw, path, _POLICY)
    if pol is None:
        return None
    out: dict[str, Any] = {}
    for key, kinds, tree in (
        ("permissions", _PERMISSIONS, _PERMISSION_TREE),
        ("principals", _PRINCIPALS, _PRINCIPAL_TREE),
    ):
        entries = get_list(issues, pol, key, path, required=True)
        if not entries and key in pol:
            issues.add(at(path, key), "expected at least one entry")
        base = at(path, key)
        out[key] = [
            _node(issues, e, item(base, i), kinds, tree, http) for i, e in enumerate(entries)
        ]
    if any(not v or None in v for v in out.values()):
        return None
    return out


def _rules(issues: Issues, doc: Doc, key: str, path: str, http: bool) -> dict[str, Any] | None:
    """An `envoy.config.rbac.v3.RBAC` -> native `RbacRules`."""
    r = get_map(issues, doc, key, path, _RULES)
    if r is None:
        return None
    p = at(path, key)
    action = get_enum(issues, r, "action", p, _ACTIONS, "allow")
    raw_policies = r.get("policies")
    names = frozenset(raw_policies) if isinstance(raw_policies, Mapping) else frozenset()
    policies = get_map(issues, r, "policies", p, names)
    out: dict[str, Any] = {}
    for name, raw in (policies or {}).items():
        out[str(name)] = _policy(issues, raw, at(at(p, "policies"), str(name)), http)
    if None in out.values():
        return None
    return {"action": action, "policies": out}


def _rule_sets(issues: Issues, cfg: Doc, path: str, http: bool) -> dict[str, Any] | None:
    """`rules` and `shadow_rules` -> the native config without its stat prefix."""
    out: dict[str, Any] = {}
    failed = False
    for key in _RULE_SETS:
        if key in cfg:
            rules = _rules(issues, cfg, key, path, http)
            failed |= rules is None
            out[key] = rules
    return None if failed else out


def http_rbac(issues: Issues, cfg: Doc, path: str) -> dict[str, Any] | None:
    """The HTTP filter's `RBAC` (its `typed_config`) -> native `RbacConfig`; `stat_prefix`
    is the rules' prefix: stats are `http.<hcm stat_prefix>.rbac.<it>allowed`, ..."""
    out = _rule_sets(issues, cfg, path, http=True)
    given = {key: get_str(issues, cfg, f"{key}_stat_prefix", path) or "" for key in _RULE_SETS}
    prefixes = {given[key] for key in _RULE_SETS if key in cfg}
    if len(prefixes) > 1:
        issues.add(
            at(path, "shadow_rules_stat_prefix"),
            f"a prefix different from rules_stat_prefix is {NOT_SUPPORTED} (one prefix for both)",
        )
        return None
    if out is None:
        return None
    return {"stat_prefix": prefixes.pop() if prefixes else "", **out}


def per_route_rbac(issues: Issues, cfg: Doc, path: str) -> dict[str, Any] | None:
    """`RBACPerRoute` -> native `RbacConfig`. No `rbac`: the filter is off for the route (an
    empty config allows everything), as in Envoy. Envoy counts a route's decisions under
    the filter's own prefixes and ignores the route's; `_listeners` fills the filter's in."""
    inner = get_map(issues, cfg, "rbac", path, _HTTP)
    if inner is None:
        return {"stat_prefix": ""}
    p = at(path, "rbac")
    for key in _RULE_SETS:
        get_str(issues, inner, f"{key}_stat_prefix", p)
    out = _rule_sets(issues, inner, p, http=True)
    return None if out is None else {"stat_prefix": "", **out}


def network_rbac(issues: Issues, cfg: Doc, path: str) -> dict[str, Any] | None:
    """The network filter's `RBAC` (its `typed_config`) -> native `RbacConfig`;
    stats under `<stat_prefix>.rbac.*`, the shadow ones under
    `<stat_prefix>.rbac.<shadow_rules_stat_prefix>.*` (Istio's dry-run filters)."""
    stat_prefix = get_str(issues, cfg, "stat_prefix", path, required=True, non_empty=True)
    get_enum(
        issues, cfg, "enforcement_type", path, _ENFORCEMENT, "",
        rejected={"CONTINUOUS": f"{NOT_SUPPORTED} (policies are checked once per connection)"},
    )  # fmt: skip
    shadow_prefix = get_str(issues, cfg, "shadow_rules_stat_prefix", path)
    out = _rule_sets(issues, cfg, path, http=False)
    if out is None or stat_prefix is None:
        return None
    if shadow_prefix:
        out["shadow_rules_stat_prefix"] = shadow_prefix
    return {"stat_prefix": stat_prefix, **out}
