"""Envoy header mutations (`*_headers_to_add`, `*_headers_to_remove`) -> native forms."""

from __future__ import annotations

from typing import Any, Final

from ._errors import Issues
from ._fields import NOT_SUPPORTED, Doc, at, get_bool, get_list, get_map, get_str, item, obj
from ._match import header_name

__all__ = ["MUTATION_FIELDS", "header_mutation", "header_value", "headers_to_add"]

MUTATION_FIELDS: Final = frozenset(
    {
        "request_headers_to_add",
        "request_headers_to_remove",
        "response_headers_to_add",
        "response_headers_to_remove",
    }
)
_HVO: Final = frozenset({"header", "append_action", "append"})
_HEADER: Final = frozenset({"key", "value"})
_APPEND_ACTIONS: Final = {"APPEND_IF_EXISTS_OR_ADD": True, "OVERWRITE_IF_EXISTS_OR_ADD": False}


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


def headers_to_add(issues: Issues, doc: Doc, key: str, path: str) -> list[dict[str, Any]]:
    """A list of `HeaderValueOption` -> native `HeaderValueOption`s."""
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
        name = header_name(issues, key_, at(hp, "key"), mutation=True)
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
        name = header_name(issues, raw, p, mutation=True)
        if name is not None:
            out.append(name)
    return out


def header_mutation(issues: Issues, doc: Doc, path: str) -> dict[str, Any]:
    """The four `*_headers_to_{add,remove}` fields of one level as a native HeaderMutation.

    Empty lists are omitted (native defaults), which keeps 10k-vhost snapshots small.
    """
    out: dict[str, Any] = {}
    if "request_headers_to_add" in doc:
        out["request_add"] = headers_to_add(issues, doc, "request_headers_to_add", path)
    if "request_headers_to_remove" in doc:
        out["request_remove"] = _headers_to_remove(issues, doc, "request_headers_to_remove", path)
    if "response_headers_to_add" in doc:
        out["response_add"] = headers_to_add(issues, doc, "response_headers_to_add", path)
    if "response_headers_to_remove" in doc:
        out["response_remove"] = _headers_to_remove(issues, doc, "response_headers_to_remove", path)
    return out
