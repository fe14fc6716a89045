"""The command line's exit codes, and the error that carries one."""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "INTERRUPTED",
    "NOT_FOUND",
    "OK",
    "PROG",
    "UNREACHABLE",
    "UNSUPPORTED",
    "USAGE",
    "CliError",
]

PROG = "tornado-session"

OK, USAGE, UNREACHABLE, UNSUPPORTED, NOT_FOUND, INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES: dict[int, str] = {
    OK: "done",
    USAGE: "usage: a bad option, argument, setting or --store",
    UNREACHABLE: "the session store is unreachable",
    UNSUPPORTED: "the store does not support the command, or refused it",
    NOT_FOUND: "nothing to act on (revoke --session of a handle that opens no live session)",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


class CliError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
