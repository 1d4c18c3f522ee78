"""User errors: problems with the user's files or settings, reported as one clear message.

A ``UserError`` says what is wrong (the file, line or value) and how to fix it; a traceback
adds nothing to it, so ``kedro run`` (``simlabel.cli``) prints just ``Error: <message>`` and
exits with status 1. Any other exception is a bug and keeps its full traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input or settings; the message names it and how to fix it."""


def find_user_error(error: BaseException | None) -> UserError | None:
    """The first ``UserError`` in ``error``'s chain (itself, then its ``__cause__`` or
    ``__context__``, ...), or None. Kedro wraps errors raised while loading a dataset in a
    ``DatasetError`` whose cause is the original error."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def format_user_error(error: BaseException) -> str:
    """``Error: <message>`` for the user error in ``error``'s chain (``error`` itself if none)."""
    found = find_user_error(error) or error
    return f"Error: {str(found).strip() or type(found).__name__}"
