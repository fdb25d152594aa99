"""What `fastmesh analyze` finds in AuthorizationPolicies: selectors that select no workload
(istioctl's IST0127), sources naming a namespace or service account no workload has, and an
ALLOW rule that a DENY policy on the same workloads repeats (the DENY wins)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._errors import Finding
from ._model import MeshConfig, Workload
from ._model_security import ROOT_NAMESPACE, AuthorizationPolicy

__all__ = ["authorization_findings"]

#: A SPIFFE-style principal as Istio writes it: `<trust domain>/ns/<namespace>/sa/<account>`.
_PRINCIPAL = re.compile(r"^[^/]+/ns/([^/]+)/sa/([^/]+)$")


def _where(policy: AuthorizationPolicy) -> str:
    return f"{policy.source}: AuthorizationPolicy {policy.namespace}/{policy.name}"


def _selected(policy: AuthorizationPolicy, workloads: tuple[Workload, ...]) -> set[str]:
    """The workloads (`ns/name`) the policy applies to."""
    return {
        f"{w.namespace}/{w.name}" for w in workloads if policy.applies_to(w.namespace, w.labels)
    }


def _no_workload(policy: AuthorizationPolicy, workloads: tuple[Workload, ...]) -> Finding | None:
    if policy.selector is None or _selected(policy, workloads):
        return None
    labels = ", ".join(f"{k}={v}" for k, v in sorted(policy.selector.items()))
    return Finding(
        "Warning",
        "IST0127",
        f"{_where(policy)}: spec.selector.matchLabels: no matching workloads for this "
        f"resource with the following labels: {labels}",
    )


def _named_sources(policy: AuthorizationPolicy) -> Iterator[tuple[str, str, str]]:
    """(field path, namespace, service account or "") of each source a rule names literally
    (wildcards match too much to be wrong)."""
    for i, rule in enumerate(policy.rules):
        for j, source in enumerate(rule.sources):
            path = f"spec.rules[{i}].from[{j}].source"
            for key, names in (
                ("namespaces", source.namespaces),
                ("notNamespaces", source.not_namespaces),
            ):
                for k, ns in enumerate(names):
                    yield f"{path}.{key}[{k}]", ns, ""
            for key, names in (
                ("principals", source.principals),
                ("notPrincipals", source.not_principals),
            ):
                for k, principal in enumerate(names):
                    m = _PRINCIPAL.match(principal)
                    if m:
                        yield f"{path}.{key}[{k}]", m.group(1), m.group(2)


def _unknown_sources(
    policy: AuthorizationPolicy, workloads: tuple[Workload, ...], namespaces: set[str]
) -> Iterator[Finding]:
    accounts = {(w.namespace, w.service_account) for w in workloads}
    for path, ns, account in _named_sources(policy):
        if "*" in ns:
            continue
        if ns not in namespaces:
            text = f"unknown namespace {ns!r} (no Service, WorkloadEntry or ServiceEntry in it)"
        elif account and "*" not in account and (ns, account) not in accounts:
            text = f"no WorkloadEntry of namespace {ns!r} has service account {account!r}"
        else:
            continue
        yield Finding("Warning", "FM0009", f"{_where(policy)}: {path}: {text}")


def _shadowed_allows(
    policies: tuple[AuthorizationPolicy, ...], workloads: tuple[Workload, ...]
) -> Iterator[Finding]:
    """An ALLOW rule that a DENY policy applying to the same workloads has too: those
    requests are denied (DENY policies are evaluated first)."""
    denies = [p for p in policies if p.action == "DENY"]
    for allow in (p for p in policies if p.action == "ALLOW"):
        scope = _selected(allow, workloads)
        for deny in denies:
            same_scope = (deny.namespace, deny.selector) == (allow.namespace, allow.selector)
            if not (same_scope or scope & _selected(deny, workloads)):
                continue
            for i, rule in enumerate(allow.rules):
                if rule in deny.rules:
                    j = deny.rules.index(rule)
                    yield Finding(
                        "Warning",
                        "FM0008",
                        f"{_where(allow)}: spec.rules[{i}]: the same rule as DENY policy "
                        f"{deny.namespace}/{deny.name} spec.rules[{j}], which wins: the "
                        "requests it allows are denied",
                    )


def authorization_findings(config: MeshConfig) -> list[Finding]:
    workloads = config.workloads
    namespaces = {ROOT_NAMESPACE}
    namespaces |= {w.namespace for w in workloads}
    namespaces |= {s.namespace for s in config.services}
    namespaces |= {e.namespace for e in config.service_entries}
    policies = config.authorization_policies
    out: list[Finding] = []
    for policy in policies:
        missing = _no_workload(policy, workloads)
        if missing is not None:
            out.append(missing)
        out += _unknown_sources(policy, workloads, namespaces)
    out += _shadowed_allows(policies, workloads)
    return out
