"""The project's one user-facing exception type."""

from __future__ import annotations

from pathlib import Path


class SynthSegError(Exception):
    """A problem with user input or configuration, reported as one line naming its source.

    ``str(error)`` is ``"<source>: <problem>"`` so a batch can print it as is.
    """

    def __init__(self, problem: str, source: str | Path | None = None) -> None:
        self.problem = " ".join(str(problem).split())
        self.source = None if source is None else str(source)
        super().__init__(self.problem if self.source is None else f"{self.source}: {self.problem}")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Refuse a setting outside its fixed set of values, naming the setting and the values allowed."""
    if value not in choices:
        raise SynthSegError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
