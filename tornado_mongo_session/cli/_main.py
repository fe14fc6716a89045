"""The entry point: run the click group, and turn every failure into one line and its code."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import click

from tornado_mongo_session.cli._commands import cli
from tornado_mongo_session.cli._exits import (
    INTERRUPTED,
    OK,
    PROG,
    UNREACHABLE,
    UNSUPPORTED,
    USAGE,
    CliError,
)
from tornado_mongo_session.errors import SessionError, SessionStoreUnavailable

__all__ = ["main"]


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _unreachable(exc: SessionStoreUnavailable) -> str:
    """The driver's reason, without its timeouts and topology dump (and never the URL, which
    may hold a password)."""
    reason = str(exc.__cause__ or exc)
    reason = reason.split(", Timeout:")[0]
    reason = re.sub(r"\s*\(configured timeouts:[^)]*\)", "", reason)
    return f"session store unreachable: {_one_line(reason)}"


def _fail(message: str, code: int) -> int:
    click.echo(f"{PROG}: {_one_line(message)}", err=True)
    return code


# click >= 8.2 raises it for a bare group; older versions print the help themselves.
_NO_ARGS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit code (see :data:`EXIT_CODES`)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format=f"{PROG}: %(message)s")
    # An unreachable server is reported as the command's one error line: the store's outage
    # log (written for long-running apps: a traceback, once per outage) would repeat it.
    logging.getLogger("tornado_mongo_session.outage").setLevel(logging.CRITICAL)
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except _NO_ARGS as exc:  # the bare command: its help, which is many lines
        click.echo(exc.format_message(), err=True)
        return USAGE
    except click.UsageError as exc:
        return _fail(f"{exc.format_message()} (see {PROG} --help)", USAGE)
    except click.ClickException as exc:
        return _fail(exc.format_message(), USAGE)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", INTERRUPTED)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except SessionStoreUnavailable as exc:
        return _fail(_unreachable(exc), UNREACHABLE)
    except SessionError as exc:
        return _fail(f"the store refused: {exc}", UNSUPPORTED)
    return result if isinstance(result, int) else OK
