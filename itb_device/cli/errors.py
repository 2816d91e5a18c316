"""The command line's errors and exit statuses, in one place: every command raises these, and
:func:`itb_device.cli.main.main` turns them into one line on stderr and the exit status."""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


class Interrupted(Exception):
    """Ctrl-C, handled: the command stopped cleanly; the message (one line) says how far it got."""
