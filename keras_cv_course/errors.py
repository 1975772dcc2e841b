"""Errors shared by the whole package.

Every error a user can cause is a ``KCCError``: a ``ValueError`` whose message
is one line naming what was expected and what was received. The CLI prints
that line and exits non-zero, with no traceback.
"""

import difflib


class KCCError(ValueError):
    """A user-facing error with a one-line message."""


def unknown_name_error(kind, name, valid_names):
    """Builds the error for an unknown name, listing the closest valid names.

    Args:
        kind: what was being looked up, e.g. ``"model"`` or ``"dataset"``.
        name: the name the user gave.
        valid_names: every valid name.

    Returns:
        A ``KCCError`` ready to raise.
    """
    valid_names = sorted(valid_names)
    closest = difflib.get_close_matches(str(name), valid_names, n=5, cutoff=0.4)
    suggestions = closest or valid_names[:8]
    return KCCError(
        f"unknown {kind} {name!r}; closest valid names: {', '.join(suggestions)}"
    )
