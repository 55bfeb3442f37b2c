"""The one exception a catalogue raises: every problem, each naming the file, the key and the fix."""
from __future__ import annotations


class CatalogueError(Exception):
    """One or more problems in catalogue files; str() is the message for the user."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems

