"""Config errors: every problem of a file, each with its field path, reported together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._stamp import Stamp

__all__ = ["ConfigError", "Issues", "Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: where (a field path) and what was expected."""

    #: Dotted field path from the document root, e.g.
    #: ``static_resources.clusters[2].load_assignment.endpoints[0]``; "" for the root.
    path: str
    #: What is wrong or what was expected there.
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """An Envoy config fastmesh cannot run, with every problem found in it.

    ``str(err)`` reads like compiler output, one problem per line::

        envoy.yaml: 2 errors
        envoy.yaml: static_resources.clusters[0].type: expected one of STATIC, ...
        envoy.yaml: static_resources.listeners[0].name: duplicate listener name "a"
    """

    def __init__(
        self,
        source: str,
        problems: Iterable[Problem],
        *,
        files: Mapping[str, Stamp | None] | None = None,
    ) -> None:
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems)
        #: The files the failed translation read or tried to read, with their stamps
        #: (see `Bootstrap.files`): live reload retries when one of them changes.
        self.files: dict[str, Stamp | None] = dict(files or {})
        super().__init__(self.render())

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable across processes (keyword-only `files` goes through the state).
        return (type(self), (self.source, self.problems), {"files": self.files})

    def render(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} error{'' if n == 1 else 's'}"
        return "\n".join([head, *(f"{self.source}: {p}" for p in self.problems)])


class Issues:
    """Collects problems while translating one document; raises them all at the end."""

    __slots__ = ("problems", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.source, self.problems)
