"""Config problems of the control plane, each naming its file, resource and field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem"]


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
