"""Envoy route actions beyond a plain forward: traffic splits, rewrites, retries, hashing,
stream timeouts, mirroring, and redirects.

Both route translators (`_routes` and its compiled twin) call these for the fields they
name, so the twins cannot drift on them.
"""

from __future__ import annotations

from typing import Any, Final

from ._errors import Issues
from ._fields import (
    NOT_SUPPORTED,
    Doc,
    at,
    get_bool,
    get_duration_ms,
    get_enum,
    get_int,
    get_list,
    get_map,
    get_runtime_fraction,
    get_str,
    item,
    obj,
    typed_config,
)
from ._headers import MUTATION_FIELDS, header_mutation
from ._match import check_regex, header_name

__all__ = [
    "FORWARD_POLICIES",
    "forward_policies",
    "prefix_rewrite",
    "redirect_action",
    "retry_policy",
]

#: Route action fields handled here rather than by the route translator's fast path.
FORWARD_POLICIES: Final = frozenset(
    {
        "weighted_clusters",
        "regex_rewrite",
        "retry_policy",
        "hash_policy",
        "idle_timeout",
        "max_stream_duration",
        "request_mirror_policies",
    }
)

_WEIGHTED: Final = frozenset({"clusters", "total_weight"})
_WEIGHTED_CLUSTER: Final = frozenset({"name", "weight", "host_rewrite_literal"}) | MUTATION_FIELDS
_REGEX_REWRITE: Final = frozenset({"pattern", "substitution"})
_RETRY: Final = frozenset(
    {
        "retry_on",
        "num_retries",
        "per_try_timeout",
        "retriable_status_codes",
        "retry_back_off",
        "retry_host_predicate",
        "host_selection_retry_max_attempts",
    }
)
_BACK_OFF: Final = frozenset({"base_interval", "max_interval"})
_PREDICATE: Final = frozenset({"name", "typed_config"})
PREVIOUS_HOSTS: Final = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_HOSTS_TYPE: Final = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
# Envoy's `retry_on` names the engine implements (HTTP, then gRPC status names).
_RETRY_ON: Final = (
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-status-codes",
    "retriable-4xx",
    "refused-stream",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
)
_HASH_POLICY: Final = frozenset(
    {"header", "cookie", "connection_properties", "query_parameter", "terminal"}
)
_HASH_KINDS: Final = ("header", "cookie", "connection_properties", "query_parameter")
_HASH_HEADER: Final = frozenset({"header_name"})
_HASH_COOKIE: Final = frozenset({"name", "ttl", "path"})
_HASH_CONNECTION: Final = frozenset({"source_ip"})
_HASH_QUERY: Final = frozenset({"name"})
_MAX_STREAM: Final = frozenset({"max_stream_duration"})
# `trace_sampled` is accepted and ignored: fastmesh does no tracing (Istio sets it false).
_MIRROR: Final = frozenset({"cluster", "runtime_fraction", "trace_sampled"})
_REDIRECT: Final = frozenset(
    {
        "https_redirect",
        "scheme_redirect",
        "host_redirect",
        "port_redirect",
        "path_redirect",
        "prefix_rewrite",
        "regex_rewrite",
        "strip_query",
        "response_code",
    }
)
_REDIRECT_CODES: Final = {
    "MOVED_PERMANENTLY": "301",
    "FOUND": "302",
    "SEE_OTHER": "303",
    "TEMPORARY_REDIRECT": "307",
    "PERMANENT_REDIRECT": "308",
}
_U32_MAX: Final = 2**32 - 1


def _exclusive(issues: Issues, doc: Doc, path: str, keys: tuple[str, ...]) -> bool:
    """True unless more than one of `keys` (an Envoy oneof) is set; then a problem."""
    present = [k for k in keys if k in doc]
    if len(present) > 1:
        issues.add(path, f"expected at most one of {', '.join(keys)}, got {', '.join(present)}")
        return False
    return True


def prefix_rewrite(issues: Issues, doc: Doc, path: str, is_regex: bool) -> str | None:
    """`prefix_rewrite` of a route or redirect; Envoy refuses it on a safe_regex match (there is
    no prefix to replace)."""
    prefix = get_str(issues, doc, "prefix_rewrite", path)
    if prefix is not None and is_regex:
        issues.add(
            at(path, "prefix_rewrite"),
            "prefix_rewrite needs a prefix or path match, not safe_regex",
        )
    return prefix


def _regex_rewrite(issues: Issues, doc: Doc, path: str) -> dict[str, str] | None:
    """`regex_rewrite` {pattern: RegexMatcher, substitution} -> native `RegexRewrite`."""
    rr = get_map(issues, doc, "regex_rewrite", path, _REGEX_REWRITE)
    if rr is None:
        return None
    p = at(path, "regex_rewrite")
    if "pattern" not in rr:
        issues.add(at(p, "pattern"), "required field is missing")
    pattern = check_regex(issues, rr["pattern"], at(p, "pattern")) if "pattern" in rr else None
    substitution = get_str(issues, rr, "substitution", p, required=True)
    if pattern is None or substitution is None:
        return None
    return {"pattern": pattern, "substitution": substitution}


def _weighted_clusters(
    issues: Issues, a: Doc, path: str, refs: list[tuple[str, str]]
) -> list[dict[str, Any]] | None:
    wc = get_map(issues, a, "weighted_clusters", path, _WEIGHTED)
    if wc is None:
        return None
    p = at(path, "weighted_clusters")
    out: list[dict[str, Any]] = []
    base = at(p, "clusters")
    raw_clusters = get_list(issues, wc, "clusters", p, required=True)
    for i, raw in enumerate(raw_clusters):
        cp = item(base, i)
        c = obj(issues, raw, cp, _WEIGHTED_CLUSTER)
        if c is None:
            continue
        name = get_str(issues, c, "name", cp, required=True, non_empty=True)
        weight = get_int(issues, c, "weight", cp, 0, _U32_MAX)
        headers = header_mutation(issues, c, cp)
        host = get_str(issues, c, "host_rewrite_literal", cp, non_empty=True)
        if name is None:
            continue
        refs.append((at(cp, "name"), name))
        split: dict[str, Any] = {"name": name, "weight": weight or 0}
        if headers:
            split["headers"] = headers
        if host is not None:
            split["host_rewrite"] = host
        out.append(split)
    if len(out) != len(raw_clusters):
        return None
    if not out:
        issues.add(base, "expected at least one cluster")
        return None
    total = sum(c["weight"] for c in out)
    declared = get_int(issues, wc, "total_weight", p, 1, _U32_MAX)
    if declared is not None and declared != total:
        issues.add(
            at(p, "total_weight"), f"expected the sum of the weights ({total}), got {declared}"
        )
    elif not 0 < total <= _U32_MAX:
        issues.add(base, f"expected weights summing to 1..{_U32_MAX}, got {total}")
        return None
    return out


def _retry_on(issues: Issues, doc: Doc, path: str) -> list[str]:
    text = get_str(issues, doc, "retry_on", path)
    out: list[str] = []
    for token in (text or "").split(","):
        cond = token.strip()
        if not cond or cond in out:
            continue
        if cond in _RETRY_ON:
            out.append(cond)
        else:
            issues.add(
                at(path, "retry_on"),
                f"retry condition {cond!r} is {NOT_SUPPORTED}; supported: {', '.join(_RETRY_ON)}",
            )
    return out


def _back_off(issues: Issues, doc: Doc, path: str, out: dict[str, Any]) -> None:
    bo = get_map(issues, doc, "retry_back_off", path, _BACK_OFF)
    if bo is None:
        return
    p = at(path, "retry_back_off")
    base = get_duration_ms(issues, bo, "base_interval", p, positive=True)
    if "base_interval" not in bo:
        issues.add(at(p, "base_interval"), "required field is missing")
    cap = get_duration_ms(issues, bo, "max_interval", p, positive=True)
    if base is not None:
        out["base_interval_ms"] = base
    if cap is not None:
        if base is not None and cap < base:
            issues.add(at(p, "max_interval"), "expected at least base_interval")
        out["max_interval_ms"] = cap


def _host_predicates(issues: Issues, doc: Doc, path: str) -> bool:
    """`retry_host_predicate`: only Envoy's previous-hosts predicate. True when set."""
    base = at(path, "retry_host_predicate")
    found = False
    for i, raw in enumerate(get_list(issues, doc, "retry_host_predicate", path)):
        p = item(base, i)
        pred = obj(issues, raw, p, _PREDICATE)
        if pred is None:
            continue
        name = get_str(issues, pred, "name", p, required=True)
        if name is not None and name != PREVIOUS_HOSTS:
            issues.add(
                at(p, "name"),
                f"retry host predicate {name!r} is {NOT_SUPPORTED}; only {PREVIOUS_HOSTS} is",
            )
            continue
        found = (
            typed_config(issues, pred, "typed_config", p, PREVIOUS_HOSTS_TYPE, frozenset())
            is not None
        )
    return found


def retry_policy(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    """A route's or virtual host's `RetryPolicy` -> native `RetryPolicy`."""
    r = obj(issues, raw, path, _RETRY)
    if r is None:
        return None
    out: dict[str, Any] = {"retry_on": _retry_on(issues, r, path)}
    num = get_int(issues, r, "num_retries", path, 0, _U32_MAX)
    if num is not None:
        out["num_retries"] = num
    per_try = get_duration_ms(issues, r, "per_try_timeout", path)
    if per_try:  # Envoy: 0 means no per-try deadline, the native default
        out["per_try_timeout_ms"] = per_try
    if "retriable_status_codes" in r:
        base = at(path, "retriable_status_codes")
        codes: list[int] = []
        for i, code in enumerate(get_list(issues, r, "retriable_status_codes", path)):
            if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
                codes.append(code)
            else:
                issues.add(item(base, i), f"expected an HTTP status 100..599, got {code!r}")
        out["retriable_status_codes"] = codes
    _back_off(issues, r, path, out)
    if _host_predicates(issues, r, path):
        out["avoid_previous_hosts"] = True
    # How many times host selection may retry to satisfy the predicate; the engine
    # avoids previous hosts whenever another is available, so any bound is met.
    get_int(issues, r, "host_selection_retry_max_attempts", path, 0, 2**63 - 1)
    return out


def _hash_policy(issues: Issues, raw: object, path: str) -> dict[str, Any] | None:
    hp = obj(issues, raw, path, _HASH_POLICY)
    if hp is None:
        return None
    terminal = get_bool(issues, hp, "terminal", path)
    kinds = [k for k in _HASH_KINDS if k in hp]
    if len(kinds) != 1:
        issues.add(
            path,
            f"expected exactly one of {', '.join(_HASH_KINDS)}"
            + (f", got {', '.join(kinds)}" if kinds else ""),
        )
        return None
    kind = kinds[0]
    kp = at(path, kind)
    value: object = None
    if kind == "header":
        h = get_map(issues, hp, kind, path, _HASH_HEADER)
        name = None if h is None else get_str(issues, h, "header_name", kp, required=True)
        value = (
            None
            if name is None
            else header_name(issues, name, at(kp, "header_name"), mutation=False)
        )
    elif kind == "cookie":
        c = get_map(issues, hp, kind, path, _HASH_COOKIE)
        if c is not None:
            for key in ("ttl", "path"):
                if key in c:
                    issues.add(
                        at(kp, key),
                        f"cookie generation is {NOT_SUPPORTED}: a missing cookie yields no hash",
                    )
            value = get_str(issues, c, "name", kp, required=True, non_empty=True)
    elif kind == "connection_properties":
        cp = get_map(issues, hp, kind, path, _HASH_CONNECTION)
        if cp is not None:
            if get_bool(issues, cp, "source_ip", kp) is not True:
                issues.add(at(kp, "source_ip"), "expected source_ip: true")
            else:
                value = "source_ip"
    else:
        q = get_map(issues, hp, kind, path, _HASH_QUERY)
        value = None if q is None else get_str(issues, q, "name", kp, required=True, non_empty=True)
    if value is None:
        return None
    out: dict[str, Any] = {"kind": value if kind == "connection_properties" else {kind: value}}
    if terminal:
        out["terminal"] = True
    return out


def _mirrors(
    issues: Issues, a: Doc, path: str, refs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = at(path, "request_mirror_policies")
    for i, raw in enumerate(get_list(issues, a, "request_mirror_policies", path)):
        p = item(base, i)
        m = obj(issues, raw, p, _MIRROR)
        if m is None:
            continue
        cluster = get_str(issues, m, "cluster", p, required=True, non_empty=True)
        percent = get_runtime_fraction(issues, m, "runtime_fraction", p)
        get_bool(issues, m, "trace_sampled", p)
        if cluster is None:
            continue
        refs.append((at(p, "cluster"), cluster))
        mirror: dict[str, Any] = {"cluster": cluster}
        if percent is not None:
            mirror["percent"] = percent
        out.append(mirror)
    return out


def forward_policies(
    issues: Issues,
    a: Doc,
    path: str,
    out: dict[str, Any],
    refs: list[tuple[str, str]],
) -> None:
    """The `FORWARD_POLICIES` fields of route action `a` -> into native `ForwardAction` `out`."""
    if "weighted_clusters" in a:
        if "cluster" in a:
            issues.add(path, "expected exactly one of cluster, weighted_clusters, got both")
        splits = _weighted_clusters(issues, a, path, refs)
        if splits is not None:
            out["weighted_clusters"] = splits
    if "regex_rewrite" in a:
        _exclusive(issues, a, path, ("prefix_rewrite", "regex_rewrite"))
        rewrite = _regex_rewrite(issues, a, path)
        if rewrite is not None:
            out["regex_rewrite"] = rewrite
    if "retry_policy" in a:
        retry = retry_policy(issues, a["retry_policy"], at(path, "retry_policy"))
        if retry is not None:
            out["retry_policy"] = retry
    if "hash_policy" in a:
        base = at(path, "hash_policy")
        hashes = [
            _hash_policy(issues, h, item(base, i))
            for i, h in enumerate(get_list(issues, a, "hash_policy", path))
        ]
        out["hash_policy"] = [h for h in hashes if h is not None]
    idle = get_duration_ms(issues, a, "idle_timeout", path)
    if idle is not None:
        out["idle_timeout_ms"] = idle  # 0 disables, as in Envoy
    msd = get_map(issues, a, "max_stream_duration", path, _MAX_STREAM)
    if msd is not None:
        longest = get_duration_ms(
            issues, msd, "max_stream_duration", at(path, "max_stream_duration")
        )
        if longest:  # Envoy: 0 turns the limit off for this route, the native default
            out["max_stream_duration_ms"] = longest
    if "request_mirror_policies" in a:
        out["mirrors"] = _mirrors(issues, a, path, refs)


def redirect_action(
    issues: Issues, raw: object, path: str, is_regex: bool
) -> dict[str, Any] | None:
    """A route's `redirect` -> native `RedirectAction`."""
    r = obj(issues, raw, path, _REDIRECT)
    if r is None:
        return None
    out: dict[str, Any] = {}
    _exclusive(issues, r, path, ("https_redirect", "scheme_redirect"))
    if get_bool(issues, r, "https_redirect", path):
        out["scheme"] = "https"
    scheme = get_str(issues, r, "scheme_redirect", path, non_empty=True)
    if scheme is not None:
        out["scheme"] = scheme.lower()
    host = get_str(issues, r, "host_redirect", path, non_empty=True)
    if host is not None:
        out["host"] = host
    port = get_int(issues, r, "port_redirect", path, 1, 65535)
    if port is not None:
        out["port"] = port
    _exclusive(issues, r, path, ("path_redirect", "prefix_rewrite", "regex_rewrite"))
    new_path = get_str(issues, r, "path_redirect", path)
    if new_path is not None:
        out["path"] = new_path
    prefix = prefix_rewrite(issues, r, path, is_regex)
    if prefix is not None:
        out["prefix_rewrite"] = prefix
    rewrite = _regex_rewrite(issues, r, path)
    if rewrite is not None:
        out["regex_rewrite"] = rewrite
    if get_bool(issues, r, "strip_query", path):
        out["strip_query"] = True
    code = get_enum(issues, r, "response_code", path, _REDIRECT_CODES, "301")
    if code != "301":
        out["response_code"] = int(code)
    return out
