"""`fastmesh up shift|fault|deny|mtls`: rewrite one file of the running mesh's config; the
control plane sees the edit and pushes it to every sidecar (no restart)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastmesh.controlplane._fields import parse_duration
from fastmesh.up._layout import NAMESPACE, SERVICES
from fastmesh.up._mesh import (
    fault_file,
    fault_virtual_service,
    write_yaml,
)

__all__ = ["TweakError", "parse_weights", "set_deny", "set_fault", "set_mtls"]


class TweakError(Exception):
    """A bad argument, said in the words of the command line."""


def parse_weights(text: str) -> dict[str, int]:
    """`v2=50,v3=50` -> every version of reviews with its weight (unnamed ones 0); sum 100."""
    weights = dict.fromkeys(SERVICES["reviews"], 0)
    for item in filter(None, text.split(",")):
        version, sep, value = item.partition("=")
        if not sep or version not in weights or not value.isdigit():
            raise TweakError(
                f"{item!r}: expected VERSION=PERCENT with VERSION one of "
                f"{', '.join(weights)} (e.g. v2=50,v3=50)"
            )
        weights[version] = int(value)
    if sum(weights.values()) != 100:
        raise TweakError(f"{text!r}: the weights sum to {sum(weights.values())}, not 100")
    return weights


def set_fault(
    directory: Path, app: str, *, abort: int | None, delay: str | None, percent: float
) -> Path:
    """A fault on every call to `app` (or none: the file is removed)."""
    if app not in SERVICES or app == "reviews":
        others = ", ".join(a for a in SERVICES if a != "reviews")
        raise TweakError(f"{app!r}: faults go on {others} (reviews has its own routing)")
    if delay is not None and parse_duration(delay) is None:  # as the control plane reads it
        raise TweakError(f"--delay {delay!r}: expected a duration such as 2s, 500ms or 1.5s")
    path = fault_file(directory, app)
    fault: dict[str, object] = {}
    if abort is not None:
        fault["abort"] = {"httpStatus": abort, "percentage": {"value": percent}}
    if delay is not None:
        fault["delay"] = {"fixedDelay": delay, "percentage": {"value": percent}}
    if fault:
        write_yaml(path, fault_virtual_service(app, fault))
    else:
        path.unlink(missing_ok=True)
    return path


def _security(
    kind: str, name: str, namespace: str, spec: Mapping[str, object]
) -> dict[str, object]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def set_deny(directory: Path, app: str, caller: str | None) -> Path:
    """An AuthorizationPolicy denying `caller`'s identity (its service account) on `app`
    (None: the policy is removed)."""
    for who in (app, caller):
        if who is not None and who not in SERVICES:
            raise TweakError(f"{who!r}: expected one of {', '.join(SERVICES)}")
    path = directory / "mesh" / f"{app}-deny.yaml"
    if caller is None:
        path.unlink(missing_ok=True)
        return path
    principal = f"cluster.local/ns/{NAMESPACE}/sa/{caller}"
    spec = {
        "selector": {"matchLabels": {"app": app}},
        "action": "DENY",
        "rules": [{"from": [{"source": {"principals": [principal]}}]}],
    }
    write_yaml(path, _security("AuthorizationPolicy", f"deny-{caller}", NAMESPACE, spec))
    return path


def set_mtls(directory: Path, mode: str) -> Path:
    """The mesh-wide PeerAuthentication (root namespace istio-system): STRICT refuses
    plaintext on every inbound port; PERMISSIVE (Istio's default) accepts both."""
    if mode not in ("STRICT", "PERMISSIVE"):
        raise TweakError(f"{mode!r}: expected strict or permissive")
    path = directory / "mesh" / "mtls.yaml"
    spec = {"mtls": {"mode": mode}}
    write_yaml(path, _security("PeerAuthentication", "default", "istio-system", spec))
    return path
