"""The one error type users see.

Libraries raise :class:`UserError` for anything the user can fix (bad input, a missing file, a
refused option). The CLI prints it as one red line and exits with code 2; ``poke --verbose``
also shows the traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix. The message names the input and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} ({self.hint})" if self.hint else msg
