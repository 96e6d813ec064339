"""Problems with an inventory, for people: where (file and key), what is wrong, what to do.

Every check of the project reports through these, so ``municloud validate``, the lab, the
filter plugin inside Ansible and the acceptance tests print the same words for the same mistake,
and all of them at once rather than the first.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory: where, what, and what to do about it."""

    file: str
    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}; {self.fix}"


class InventoryError(Exception):
    """The inventory is not valid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def print(self, stream: TextIO | None = None) -> None:
        """Print every problem, one a line, for a person at a terminal (stderr by default)."""
        for problem in self.problems:
            print(problem, file=stream or sys.stderr)


def kind(value: object) -> str:
    """How to name a value that is not what was expected, e.g. "a int (312011)"."""
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r})"


class Collector:
    """Collects problems while a loader walks the data, so that all of them are reported.

    ``root`` problems (a range that overlaps another, a key given twice) are causes of others and
    are printed first, so that a reader starts with the cause.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.roots: list[Problem] = []
        self.others: list[Problem] = []

    @property
    def problems(self) -> list[Problem]:
        return [*self.roots, *self.others]

    def add(self, key: str, message: str, fix: str, *, root: bool = False) -> None:
        (self.roots if root else self.others).append(Problem(self.file, key, message, fix))

    def mapping(self, value: object, key: str, what: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.add(key, f"expected a mapping ({what}), found {kind(value)}", f"write {what} here")
        return None

    def string(self, parent: Mapping[str, Any], name: str, key: str, fix: str) -> str | None:
        value = parent.get(name)
        if isinstance(value, str) and value.strip():
            return value
        self.add(f"{key}.{name}", f"missing or not a string ({kind(value)})", fix)
        return None
