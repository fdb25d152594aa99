"""The etcd key layout of the registry, and etcd entries -> the documents the file source reads.

    <prefix>services/<ns>/<name>              v1 Service
    <prefix>workloads/<ns>/<name>/<id>        networking.istio.io/v1 WorkloadEntry `<name>.<id>`
    <prefix>config/<Kind>/<ns>/<name>         ServiceEntry, VirtualService, DestinationRule,
                                              Sidecar, PeerAuthentication, AuthorizationPolicy

The default prefix is `/fastmesh/`. A value is YAML or JSON: either a whole resource (as in a
config file) or only its `spec`. The key names the resource: `kind`, `metadata.name` and
`metadata.namespace` written in the value must agree with it or are filled in from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

import yaml

from ._errors import Problem
from ._load import load_documents
from ._model import MeshConfig

__all__ = [
    "DEFAULT_PREFIX",
    "EntryCache",
    "load_entries",
    "load_entry",
    "merge",
    "service_key",
    "workload_key",
]

DEFAULT_PREFIX = "/fastmesh/"
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ISTIO = "networking.istio.io/v1"
_SECURITY = "security.istio.io/v1"
#: `config/<Kind>` path segment (exactly: one key per resource) -> (apiVersion, kind).
_CONFIG_KINDS = {
    "ServiceEntry": (_ISTIO, "ServiceEntry"),
    "VirtualService": (_ISTIO, "VirtualService"),
    "DestinationRule": (_ISTIO, "DestinationRule"),
    "Sidecar": (_ISTIO, "Sidecar"),
    "PeerAuthentication": (_SECURITY, "PeerAuthentication"),
    "AuthorizationPolicy": (_SECURITY, "AuthorizationPolicy"),
}


def service_key(namespace: str, name: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}services/{namespace}/{name}"


def workload_key(namespace: str, name: str, id: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}workloads/{namespace}/{name}/{id}"


def _identity(key: str, prefix: str) -> tuple[str, str, str, str] | str:
    """(apiVersion, kind, namespace, name) the key names, or why it names nothing."""
    parts = key[len(prefix) :].split("/")
    if any(not p for p in parts):
        return "empty path segment"
    if parts[0] == "services" and len(parts) == 3:
        return ("v1", "Service", parts[1], parts[2])
    if parts[0] == "workloads" and len(parts) == 4:
        return (_ISTIO, "WorkloadEntry", parts[1], f"{parts[2]}.{parts[3]}")
    if parts[0] == "config" and len(parts) == 4:
        known = _CONFIG_KINDS.get(parts[1])
        if known is None:
            kinds = ", ".join(k for _, k in _CONFIG_KINDS.values())
            return f"unsupported config kind {parts[1]!r} (supported: {kinds})"
        return (*known, parts[2], parts[3])
    return (
        "expected services/<ns>/<name>, workloads/<ns>/<name>/<id> "
        "or config/<Kind>/<ns>/<name> under " + prefix
    )


def _document(key: str, text: str, prefix: str) -> tuple[dict[str, Any] | None, Problem | None]:
    who = _identity(key, prefix)
    if isinstance(who, str):
        return None, Problem(key, "", "", who)
    api, kind, namespace, name = who
    try:
        value = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        return None, Problem(key, "", "", f"invalid YAML: {exc}")
    resource = f"{kind} {namespace}/{name}"
    if not isinstance(value, Mapping):
        return None, Problem(key, resource, "", "expected a mapping (a resource or its spec)")
    if "spec" not in value and "kind" not in value and "apiVersion" not in value:
        value = {"spec": dict(value)}
    doc = dict(value)
    if doc.setdefault("kind", kind) != kind:
        return None, Problem(key, resource, "kind", f"{doc['kind']!r} under a {kind} key")
    doc.setdefault("apiVersion", api)
    meta = doc.get("metadata") or {}
    if not isinstance(meta, Mapping):
        return None, Problem(key, resource, "metadata", "expected a mapping")
    meta = dict(meta)
    for field, want in (("namespace", namespace), ("name", name)):
        if kind == "WorkloadEntry" and field == "name":
            meta["name"] = name  # the registrar's id is part of the name
        elif meta.setdefault(field, want) != want:
            return None, Problem(
                key, resource, f"metadata.{field}", f"differs from the key ({want})"
            )
    doc["metadata"] = meta
    return doc, None


def load_entry(
    key: str, text: str, *, prefix: str = DEFAULT_PREFIX
) -> tuple[MeshConfig, list[Problem]]:
    """One etcd entry -> the config it holds (at most one resource) and its problems."""
    doc, problem = _document(key, text, prefix)
    if problem is not None:
        return MeshConfig(), [problem]
    return load_documents([(key, json.dumps(doc, default=str))])


def merge(configs: Iterable[MeshConfig]) -> MeshConfig:
    """The resources of every config, in order, in one config."""
    parts: dict[str, list[Any]] = {f.name: [] for f in fields(MeshConfig)}
    for config in configs:
        for name, items in parts.items():
            items.extend(getattr(config, name))
    return MeshConfig(**{name: tuple(items) for name, items in parts.items()})


class EntryCache:
    """Each entry parsed once per value: a change of one key re-parses that key only.

    Keys name distinct resources (the key layout makes kind, namespace and name unique), so
    entries parsed alone and merged in key order equal `load_entries` of them all.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._parsed: dict[str, tuple[str, MeshConfig, list[Problem]]] = {}

    def load(self, entries: Mapping[str, str]) -> tuple[MeshConfig, list[Problem]]:
        for gone in self._parsed.keys() - entries.keys():
            del self._parsed[gone]
        configs: list[MeshConfig] = []
        problems: list[Problem] = []
        for key in sorted(entries):
            text = entries[key]
            cached = self._parsed.get(key)
            if cached is None or cached[0] != text:
                cached = (text, *load_entry(key, text, prefix=self.prefix))
                self._parsed[key] = cached
            configs.append(cached[1])
            problems.extend(cached[2])
        return merge(configs), problems


def load_entries(
    entries: Iterable[tuple[str, str]], *, prefix: str = DEFAULT_PREFIX
) -> tuple[MeshConfig, list[Problem]]:
    """(key, value text) pairs -> config, as `load_documents`; key order does not matter
    (they are sorted, so equal entries give an equal config on every replica)."""
    return EntryCache(prefix).load(dict(entries))
