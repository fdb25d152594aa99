"""AuthorizationPolicy -> Envoy RBAC filters for one workload's inbound side, as Istio
compiles them: a DENY filter (when any DENY policy selects the workload), then an ALLOW
filter (when any ALLOW policy does; an ALLOW policy without rules then denies everything).
One RBAC policy per rule, named `ns[NS]-policy[NAME]-rule[I]`.

A rule's sources, operations and conditions become the policy's principals (who: `from`,
and the `when` keys about the caller) and permissions (what: `to`, and `destination.port`).
On a TCP port the HTTP-only fields (hosts, paths, methods, request headers) cannot be
checked: an ALLOW rule using them matches nothing, a DENY rule is applied without them
(denying more, never less), as in Istio.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._model import Workload
from ._model_security import AuthorizationPolicy, Condition, Operation, Rule, Source

__all__ = ["authz_filters"]

Json = dict[str, Any]
T = TypeVar("T", str, int)
_RBAC = "type.googleapis.com/envoy.extensions.filters.{}.rbac.v3.RBAC"
_HEADER_KEY = re.compile(r"^request\.headers\[(.+)\]$")
_ANY: Json = {"any": True}


def _string(value: str, *, prefix: str = "") -> Json:
    """Istio's string match: `*` (present), `abc*` (prefix), `*abc` (suffix), else exact;
    `prefix` is prepended where the value is anchored at the start (`spiffe://`)."""
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.startswith("*"):
        return {"suffix": value[1:]}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    return {"exact": prefix + value}


def _any_of(nodes: list[Json], key: str) -> Json:
    return nodes[0] if len(nodes) == 1 else {key: {"rules" if key == "or_rules" else "ids": nodes}}


def _all_of(nodes: list[Json], key: str) -> Json:
    if not nodes:
        return _ANY
    return nodes[0] if len(nodes) == 1 else {key: {"rules" if key == "and_rules" else "ids": nodes}}


def _not(node: Json, key: str) -> Json:
    return {key: node}


# --- principals (who) --------------------------------------------------------------------


def _principal(value: str) -> Json:
    return {"authenticated": {"principal_name": _string(value, prefix="spiffe://")}}


def _namespace(value: str) -> Json:
    pattern = re.escape(value).replace(r"\*", "[^/]*")
    return {"authenticated": {"principal_name": {"safe_regex": {"regex": f".*/ns/{pattern}/.*"}}}}


def _ip(value: str) -> Json:
    net = ipaddress.ip_network(value, strict=False)
    return {
        "direct_remote_ip": {
            "address_prefix": str(net.network_address),
            "prefix_len": net.prefixlen,
        }
    }


def _header(name: str, value: str) -> Json:
    return {"header": {"name": name, "string_match": _string(value)}}


def _field(
    values: Sequence[T], make: Callable[[T], Json], negated: Sequence[T], ors: str, neg: str
) -> list[Json]:
    """One field of a source or operation: any of `values`, none of `negated`."""
    out = []
    if values:
        out.append(_any_of([make(v) for v in values], ors))
    if negated:
        out.append(_not(_any_of([make(v) for v in negated], ors), neg))
    return out


def _source_ids(s: Source) -> list[Json]:
    ids: list[Json] = []
    ids += _field(s.principals, _principal, s.not_principals, "or_ids", "not_id")
    ids += _field(s.namespaces, _namespace, s.not_namespaces, "or_ids", "not_id")
    ids += _field(s.ip_blocks, _ip, s.not_ip_blocks, "or_ids", "not_id")
    return ids


# --- permissions (what) ------------------------------------------------------------------


def _host(value: str) -> Json:
    return {
        "header": {"name": ":authority", "string_match": {**_string(value), "ignore_case": True}}
    }


def _path(value: str) -> Json:
    return {"url_path": {"path": _string(value)}}


def _method(value: str) -> Json:
    return {"header": {"name": ":method", "string_match": {"exact": value}}}


def _port(value: int) -> Json:
    return {"destination_port": value}


def _operation_rules(o: Operation, http: bool) -> list[Json]:
    rules: list[Json] = []
    if http:
        rules += _field(o.hosts, _host, o.not_hosts, "or_rules", "not_rule")
        rules += _field(o.paths, _path, o.not_paths, "or_rules", "not_rule")
        rules += _field(o.methods, _method, o.not_methods, "or_rules", "not_rule")
    rules += _field(o.ports, _port, o.not_ports, "or_rules", "not_rule")
    return rules


def _http_only(rule: Rule) -> bool:
    ops = any(
        o.hosts or o.not_hosts or o.paths or o.not_paths or o.methods or o.not_methods
        for o in rule.operations
    )
    return ops or any(_HEADER_KEY.match(c.key) for c in rule.conditions)


# --- conditions --------------------------------------------------------------------------


def _condition(c: Condition, http: bool) -> tuple[list[Json], list[Json]]:
    """(principal nodes, permission nodes) for one `when` condition."""
    header = _HEADER_KEY.match(c.key)
    if header is not None:
        if not http:
            return [], []
        name = header.group(1)
        return _field(c.values, lambda v: _header(name, v), c.not_values, "or_ids", "not_id"), []
    if c.key == "destination.port":
        ports = [int(v) for v in c.values if v.isdigit()]
        not_ports = [int(v) for v in c.not_values if v.isdigit()]
        return [], _field(ports, _port, not_ports, "or_rules", "not_rule")
    make = {"source.ip": _ip, "source.namespace": _namespace, "source.principal": _principal}[c.key]
    return _field(c.values, make, c.not_values, "or_ids", "not_id"), []


def _policy(rule: Rule, http: bool) -> Json:
    who: list[Json] = []
    what: list[Json] = []
    for c in rule.conditions:
        ids, rules = _condition(c, http)
        who += ids
        what += rules
    principals = [_all_of(_source_ids(s) + who, "and_ids") for s in rule.sources] or [
        _all_of(who, "and_ids")
    ]
    permissions = [
        _all_of(_operation_rules(o, http) + what, "and_rules") for o in rule.operations
    ] or [_all_of(what, "and_rules")]
    return {"permissions": permissions, "principals": principals}


def _rules(action: str, policies: Sequence[AuthorizationPolicy], http: bool) -> Json:
    out: Json = {}
    for p in policies:
        for i, rule in enumerate(p.rules):
            if not http and action == "ALLOW" and _http_only(rule):
                continue  # cannot be checked on TCP: this rule allows nothing
            out[f"ns[{p.namespace}]-policy[{p.name}]-rule[{i}]"] = _policy(rule, http)
    return {"action": action, "policies": out}


def authz_filters(
    policies: Sequence[AuthorizationPolicy], workload: Workload, *, http: bool, stat_prefix: str
) -> list[Json]:
    """The RBAC filters for `workload`'s inbound HTTP connection manager (`http`) or TCP
    chain, in order (DENY first); [] when no policy selects it."""
    selected = [p for p in policies if p.applies_to(workload.namespace, workload.labels)]
    by_action = {
        action: sorted(
            (p for p in selected if p.action == action), key=lambda p: (p.namespace, p.name)
        )
        for action in ("DENY", "ALLOW")
    }
    actions = [a for a, chosen in by_action.items() if chosen]
    kind = "http" if http else "network"
    out = []
    for action in actions:
        config: Json = {
            "@type": _RBAC.format(kind),
            "rules": _rules(action, by_action[action], http),
        }
        if not http:
            config["stat_prefix"] = stat_prefix
        # two filters get distinct names: Envoy runs only one of several same-named filters
        name = f"envoy.filters.{kind}.rbac" + (f".{action.lower()}" if len(actions) > 1 else "")
        out.append({"name": name, "typed_config": config})
    return out
