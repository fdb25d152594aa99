"""Config problems of the control plane, each naming its file, resource and field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a mesh config file: where exactly, and what."""

    #: The file, as given to the loader (relative to the config directory).
    file: str
    #: `Kind namespace/name` of the resource, or "" when the document has none yet.
    resource: str
    #: Dotted field path inside the resource, e.g. `spec.http[0].route[1].weight`.
    field: str
    message: str

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.resource, self.field) if part)
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Finding:
    """What analysis of a valid config found (`fastmesh analyze`): a dangling reference, a
    conflict, a selector that selects nothing. Its text names file, resource and field."""

    #: "Error" (traffic will fail), "Warning" (likely not what was meant) or "Info".
    severity: str
    #: Istio's analyzer code where Istio has one (IST0101 ReferencedResourceNotFound, ...),
    #: else fastmesh's (FM...).
    code: str
    text: str

    def __str__(self) -> str:
        return self.text

    def render(self) -> str:
        """As `istioctl analyze` prints it."""
        return f"{self.severity} [{self.code}] {self.text}"
