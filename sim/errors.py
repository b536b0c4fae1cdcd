"""Errors caused by the user's input, which the CLI reports with exit code 2 and no traceback."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a key path, ``workloads.chat.replicas``) and what.

    ``related`` names the other keys a cross-field problem compares ``key`` with
    (``scenario.duration`` for a warmup that is too long), so a ``--set`` of any of them is blamed.
    """

    key: str
    message: str
    related: tuple[str, ...] = ()

    def render(self, source: str) -> str:
        """Format as ``source: key: message`` (the key is left out when empty)."""
        where = f"{source}: {self.key}" if self.key else source
        return f"{where}: {self.message}"


class UserError(Exception):
    """Bad input from the user: a file, a key, a value or a path. Exit code 2."""

    def render(self) -> str:
        """The message shown to the user."""
        return str(self)


class ScenarioError(UserError):
    """A scenario that cannot be run, with every problem found, each with its key path."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """One line per problem, headed by the number of problems when there are several."""
        lines = [p.render(self.source) for p in self.problems]
        if len(lines) > 1:
            lines.insert(0, f"{self.source}: {len(lines)} problems")
            return "\n  ".join(lines)
        return lines[0] if lines else f"{self.source}: invalid scenario"
