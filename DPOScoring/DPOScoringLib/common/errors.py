"""Errors that name what is wrong with the user's input (a file, a field path, a value)."""

from __future__ import annotations


class DPOInputError(ValueError):
    """Bad input: the message is one line a user can act on, naming the file or field."""

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)


class DPOCancelled(RuntimeError):
    """Long work stopped because the caller asked it to."""


class DPOOutputError(DPOInputError):
    """An output that cannot be written (a folder not writable, a file in the way, a full
    disk): one line naming the path, exit 2 like bad input; nothing half-written is left."""
