"""Parse Istio's `security.istio.io` resources: PeerAuthentication and AuthorizationPolicy."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ._fields import Fields
from ._model_security import (
    AuthorizationPolicy,
    Condition,
    MtlsMode,
    Operation,
    PeerAuthentication,
    Rule,
    Source,
)

__all__ = ["parse_authorization_policy", "parse_peer_authentication"]

_MODES = {m.value: m for m in MtlsMode}
#: `when[].key`s fastmesh translates (Istio's names).
_KEYS = ("source.ip", "source.namespace", "source.principal", "destination.port")
_HEADER_KEY = re.compile(r"^request\.headers\[([A-Za-z0-9!#$%&'*+.^_`|~-]+)\]$")


def _selector(f: Fields, spec: dict[str, Any], key: str) -> dict[str, str] | None:
    """`selector.matchLabels` (`workloadSelector` style); None when absent."""
    if key not in spec:
        return None
    entry = f.mapping(spec[key], f"spec.{key}")
    f.only(entry, f"spec.{key}", {"matchLabels"})
    labels = f.labels(entry.get("matchLabels"), f"spec.{key}.matchLabels")
    if not labels:
        f.problem(f"spec.{key}.matchLabels", "expected at least one label")
    return labels


def _mode(f: Fields, obj: Any, path: str) -> MtlsMode:
    entry = f.mapping(obj, path)
    f.only(entry, path, {"mode"})
    text = f.string(entry.get("mode"), f"{path}.mode", default="UNSET")
    mode = _MODES.get(text)
    if mode is None:
        f.problem(f"{path}.mode", f"expected one of {', '.join(_MODES)}, got {text!r}")
        return MtlsMode.UNSET
    return mode


def parse_peer_authentication(
    f: Fields, name: str, namespace: str, spec: dict[str, Any]
) -> PeerAuthentication:
    f.only(spec, "spec", {"selector", "mtls", "portLevelMtls"})
    selector = _selector(f, spec, "selector")
    ports: dict[int, MtlsMode] = {}
    for key, value in f.mapping(spec.get("portLevelMtls"), "spec.portLevelMtls").items():
        path = f"spec.portLevelMtls.{key}"
        port = int(key) if key.isdigit() and 1 <= int(key) <= 65535 else None
        if port is None:
            f.problem(path, f"expected a port number (1-65535) as the key, got {key!r}")
            continue
        ports[port] = _mode(f, value, path)
    if ports and selector is None:
        f.problem("spec.portLevelMtls", "needs spec.selector (as in Istio: workload scope only)")
    return PeerAuthentication(
        name, namespace, selector, _mode(f, spec.get("mtls"), "spec.mtls"), ports, f.file
    )


def _strings(f: Fields, entry: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    out = []
    for i, value in enumerate(f.seq(entry.get(key), f"{path}.{key}")):
        text = f.string(value, f"{path}.{key}[{i}]", required=True)
        if text:
            out.append(text)
    return tuple(out)


def _cidrs(f: Fields, entry: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    out = []
    for i, text in enumerate(_strings(f, entry, key, path)):
        try:
            out.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            f.problem(f"{path}.{key}[{i}]", f"expected an IP address or CIDR, got {text!r}")
    return tuple(out)


def _ports(f: Fields, entry: dict[str, Any], key: str, path: str) -> tuple[int, ...]:
    out = []
    for i, text in enumerate(_strings(f, entry, key, path)):
        if text.isdigit() and 1 <= int(text) <= 65535:
            out.append(int(text))
        else:
            f.problem(f"{path}.{key}[{i}]", f"expected a port number as a string, got {text!r}")
    return tuple(out)


def _source(f: Fields, obj: Any, path: str) -> Source:
    entry = f.mapping(f.mapping(obj, path, required=True).get("source"), f"{path}.source")
    path = f"{path}.source"
    known = {"principals", "notPrincipals", "namespaces", "notNamespaces", "ipBlocks"}
    known |= {"notIpBlocks", "requestPrincipals", "notRequestPrincipals"}
    f.only(entry, path, known)
    for key in ("requestPrincipals", "notRequestPrincipals"):
        if key in entry:
            f.problem(f"{path}.{key}", "not supported: fastmesh has no RequestAuthentication (JWT)")
    return Source(
        principals=_strings(f, entry, "principals", path),
        not_principals=_strings(f, entry, "notPrincipals", path),
        namespaces=_strings(f, entry, "namespaces", path),
        not_namespaces=_strings(f, entry, "notNamespaces", path),
        ip_blocks=_cidrs(f, entry, "ipBlocks", path),
        not_ip_blocks=_cidrs(f, entry, "notIpBlocks", path),
    )


def _operation(f: Fields, obj: Any, path: str) -> Operation:
    entry = f.mapping(f.mapping(obj, path, required=True).get("operation"), f"{path}.operation")
    path = f"{path}.operation"
    known = {"hosts", "notHosts", "paths", "notPaths", "methods", "notMethods", "ports"}
    f.only(entry, path, known | {"notPorts"})
    return Operation(
        hosts=_strings(f, entry, "hosts", path),
        not_hosts=_strings(f, entry, "notHosts", path),
        paths=_strings(f, entry, "paths", path),
        not_paths=_strings(f, entry, "notPaths", path),
        methods=_strings(f, entry, "methods", path),
        not_methods=_strings(f, entry, "notMethods", path),
        ports=_ports(f, entry, "ports", path),
        not_ports=_ports(f, entry, "notPorts", path),
    )


def _condition(f: Fields, obj: Any, path: str) -> Condition:
    entry = f.mapping(obj, path, required=True)
    f.only(entry, path, {"key", "values", "notValues"})
    key = f.string(entry.get("key"), f"{path}.key", required=True)
    if key and key not in _KEYS and not _HEADER_KEY.match(key):
        f.problem(
            f"{path}.key",
            f"expected request.headers[<name>] or one of {', '.join(_KEYS)}, got {key!r}",
        )
    values = _strings(f, entry, "values", path)
    not_values = _strings(f, entry, "notValues", path)
    if not values and not not_values:
        f.problem(path, "expected values or notValues")
    return Condition(key, values, not_values)


def parse_authorization_policy(
    f: Fields, name: str, namespace: str, spec: dict[str, Any]
) -> AuthorizationPolicy:
    f.only(spec, "spec", {"selector", "action", "rules"})
    action = f.string(spec.get("action"), "spec.action", default="ALLOW")
    if action not in ("ALLOW", "DENY"):
        f.problem(
            "spec.action",
            f"expected ALLOW or DENY (AUDIT and CUSTOM are not supported), got {action!r}",
        )
    rules = []
    for i, raw in enumerate(f.seq(spec.get("rules"), "spec.rules")):
        path = f"spec.rules[{i}]"
        entry = f.mapping(raw, path)
        f.only(entry, path, {"from", "to", "when"})
        rules.append(
            Rule(
                tuple(
                    _source(f, s, f"{path}.from[{j}]")
                    for j, s in enumerate(f.seq(entry.get("from"), f"{path}.from"))
                ),
                tuple(
                    _operation(f, o, f"{path}.to[{j}]")
                    for j, o in enumerate(f.seq(entry.get("to"), f"{path}.to"))
                ),
                tuple(
                    _condition(f, c, f"{path}.when[{j}]")
                    for j, c in enumerate(f.seq(entry.get("when"), f"{path}.when"))
                ),
            )
        )
    return AuthorizationPolicy(
        name, namespace, _selector(f, spec, "selector"), action, tuple(rules), f.file
    )
