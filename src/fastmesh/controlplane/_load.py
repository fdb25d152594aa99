"""Load a directory of YAML files into a validated MeshConfig plus every problem found."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from ._errors import Problem
from ._fields import Fields
from ._model import DestinationRule, MeshConfig, Service, ServiceEntry, VirtualService, Workload
from ._model_security import AuthorizationPolicy, PeerAuthentication
from ._model_sidecar import Sidecar
from ._parse_entry import parse_service_entry
from ._parse_istio import parse_destination_rule, parse_virtual_service
from ._parse_registry import parse_service, parse_workload_entry
from ._parse_security import parse_authorization_policy, parse_peer_authentication
from ._parse_sidecar import parse_sidecar

__all__ = [
    "SUFFIXES",
    "ParsedFile",
    "assemble",
    "config_files",
    "load_directory",
    "load_documents",
    "parse_file",
]

SUFFIXES = (".yaml", ".yml")
#: libyaml's safe loader when PyYAML was built with it (10x faster), else the pure-Python one.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ISTIO_VERSIONS = (
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
)
_SECURITY_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")

Parsed = (
    Service
    | Workload
    | ServiceEntry
    | VirtualService
    | DestinationRule
    | PeerAuthentication
    | AuthorizationPolicy
    | Sidecar
)
Parser = Callable[[Fields, str, str, dict[str, Any]], Parsed]

#: The kind each parsed class comes from (for messages).
_KIND_OF: dict[type, str] = {
    Service: "Service",
    Workload: "WorkloadEntry",
    ServiceEntry: "ServiceEntry",
    VirtualService: "VirtualService",
    DestinationRule: "DestinationRule",
    PeerAuthentication: "PeerAuthentication",
    AuthorizationPolicy: "AuthorizationPolicy",
    Sidecar: "Sidecar",
}

_KINDS: dict[tuple[str, str], Parser] = {
    ("v1", "Service"): parse_service,
    **{(v, "WorkloadEntry"): parse_workload_entry for v in _ISTIO_VERSIONS},
    **{(v, "ServiceEntry"): parse_service_entry for v in _ISTIO_VERSIONS},
    **{(v, "VirtualService"): parse_virtual_service for v in _ISTIO_VERSIONS},
    **{(v, "DestinationRule"): parse_destination_rule for v in _ISTIO_VERSIONS},
    **{(v, "Sidecar"): parse_sidecar for v in _ISTIO_VERSIONS},
    **{(v, "PeerAuthentication"): parse_peer_authentication for v in _SECURITY_VERSIONS},
    **{(v, "AuthorizationPolicy"): parse_authorization_policy for v in _SECURITY_VERSIONS},
}


def config_files(directory: Path) -> list[Path]:
    """The YAML files of `directory` (recursively, hidden files skipped), in a stable order."""
    return sorted(
        p
        for p in directory.rglob("*")
        if p.suffix in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def load_directory(directory: Path) -> tuple[MeshConfig, list[Problem]]:
    """Every resource of every YAML file under `directory`; a resource with a problem is left
    out (the others still apply), and the problem says file, resource and field."""
    texts: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for path in config_files(directory):
        name = str(path.relative_to(directory))
        try:
            texts.append((name, path.read_text()))
        except OSError as exc:
            problems.append(Problem(name, "", "", f"cannot read: {exc.strerror or exc}"))
    config, more = load_documents(texts)
    return config, problems + more


def load_documents(texts: Iterable[tuple[str, str]]) -> tuple[MeshConfig, list[Problem]]:
    """Like `load_directory`, from (file name, YAML text) pairs."""
    return assemble(parse_file(file, text) for file, text in texts)


ParsedFile = tuple[list["Parsed"], list[Problem]]


def parse_file(file: str, text: str) -> ParsedFile:
    """One file's valid resources and problems (duplicates across files: `assemble`)."""
    parsed: list[Parsed] = []
    problems: list[Problem] = []
    try:
        docs = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
    except yaml.YAMLError as exc:
        return [], [Problem(file, "", "", f"invalid YAML: {exc}")]
    for index, doc in enumerate(docs):
        resource = _parse_document(file, index, doc, problems)
        if resource is not None:
            parsed.append(resource)
    return parsed, problems


def assemble(files: Iterable[ParsedFile]) -> tuple[MeshConfig, list[Problem]]:
    """Parsed files, in order, into one config; a resource defined again (same kind,
    namespace and name) is a problem at the later one, which is left out."""
    kept: list[Parsed] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str], str] = {}
    for parsed, found in files:
        problems.extend(found)
        for resource in parsed:
            kind = _KIND_OF[type(resource)]
            key = (kind, resource.namespace, resource.name)
            first = seen.get(key)
            if first is not None:
                problems.append(
                    Problem(
                        resource.source,
                        f"{kind} {resource.namespace}/{resource.name}",
                        "metadata.name",
                        f"also defined in {first}",
                    )
                )
                continue
            seen[key] = resource.source
            kept.append(resource)
    by_kind: dict[type, list[Parsed]] = {kind: [] for kind in _KIND_OF}
    for resource in kept:
        by_kind[type(resource)].append(resource)
    config = MeshConfig(
        services=tuple(by_kind[Service]),  # type: ignore[arg-type]
        workloads=tuple(by_kind[Workload]),  # type: ignore[arg-type]
        virtual_services=tuple(by_kind[VirtualService]),  # type: ignore[arg-type]
        destination_rules=tuple(by_kind[DestinationRule]),  # type: ignore[arg-type]
        peer_authentications=tuple(by_kind[PeerAuthentication]),  # type: ignore[arg-type]
        authorization_policies=tuple(by_kind[AuthorizationPolicy]),  # type: ignore[arg-type]
        service_entries=tuple(by_kind[ServiceEntry]),  # type: ignore[arg-type]
        sidecars=tuple(by_kind[Sidecar]),  # type: ignore[arg-type]
    )
    return config, problems


def _parse_document(
    file: str,
    index: int,
    doc: Any,
    problems: list[Problem],
) -> Parsed | None:
    f = Fields(file, f"document {index}")
    top = f.mapping(doc, "", required=True)
    api = f.string(top.get("apiVersion"), "apiVersion", required=True)
    kind = f.string(top.get("kind"), "kind", required=True)
    meta = f.mapping(top.get("metadata"), "metadata", required=True)
    name = f.string(meta.get("name"), "metadata.name", required=True)
    namespace = f.string(meta.get("namespace"), "metadata.namespace", default="default")
    if f.problems:
        problems.extend(f.problems)
        return None
    f.resource = f"{kind} {namespace}/{name}"
    parser = _KINDS.get((api, kind))
    if parser is None:
        known = sorted({f"{a} {k}" for a, k in _KINDS})
        f.problem("kind", f"unsupported {api} {kind} (supported: {', '.join(known)})")
        problems.extend(f.problems)
        return None
    f.only(top, "", {"apiVersion", "kind", "metadata", "spec"})
    spec = f.mapping(top.get("spec"), "spec", required=True)
    if f.problems:
        problems.extend(f.problems)
        return None
    resource = parser(f, name, namespace, spec)
    problems.extend(f.problems)
    return None if f.problems else resource
