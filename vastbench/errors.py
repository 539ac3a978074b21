"""The one exception type for errors a user can cause.

A ``VastbenchError`` carries a one-line message that names the thing that is
wrong (a file, a key, a voice) and how to fix it.  The CLI prints it on one line
without a traceback (``--debug`` shows the traceback).
"""

from __future__ import annotations


class VastbenchError(Exception):
    """A user-facing error: bad file, bad config, missing weights, bad value."""

    def __init__(self, message: str):
        # Keep it one line: the CLI prints str(exc) as is.
        super().__init__(" ".join(str(message).split()))
