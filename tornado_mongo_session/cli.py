"""tornado-session: the command line for a session store (``python -m tornado_mongo_session``).

Reads :class:`SessionSettings` from the environment (``TORNADO_SESSION_*``, then ``.env``) and
works on the store those settings name: ``MongoSessionStore.from_settings(settings)``, or what
``--store MODULE:CALLABLE`` builds from them. Every failure is one line on stderr, with an exit
code a script can act on (:data:`EXIT_CODES`); never a traceback. Imports no tornado module.

The user commands (``list``, ``revoke``) call the store's ``list_user_sessions``,
``revoke_session`` and ``revoke_user`` when the store has them, and otherwise answer that it
does not support them (exit 3).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import SessionError, SessionStoreUnavailable
from tornado_mongo_session.settings import SessionSettings

__all__ = ["EXIT_CODES", "main"]

_T = TypeVar("_T")
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

_EPILOG = (
    "Settings come from TORNADO_SESSION_* variables (e.g. TORNADO_SESSION_MONGODB_URL, "
    "TORNADO_SESSION_DATABASE, TORNADO_SESSION_COLLECTION) and .env.\n\n"
    "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."
)


class CliError(Exception):
    """A failure to report in one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Options:
    store_factory: str | None


# -- the store ---------------------------------------------------------------------------------


def _settings() -> SessionSettings:
    try:
        return SessionSettings()
    except ValidationError as exc:
        problems = "; ".join(
            # A rule across fields (the cookie rules) has no location: its message names them.
            f"TORNADO_SESSION_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in exc.errors()
        )
        raise CliError(f"invalid settings: {problems}", USAGE) from None


def _make_store(settings: SessionSettings, factory: str | None) -> Any:
    if factory is None:
        from tornado_mongo_session.stores.mongo import MongoSessionStore

        return MongoSessionStore.from_settings(settings)
    module_name, _, name = factory.partition(":")
    try:
        made = getattr(importlib.import_module(module_name), name or "make_store")
        return made(settings)
    except Exception as exc:  # any import or construction failure is the option's fault
        raise CliError(f"--store {factory!r}: {type(exc).__name__}: {exc}", USAGE) from None


def _run(ctx: click.Context, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Build the store, run ``work(store)`` on an event loop, close the store."""
    options: _Options = ctx.find_object(_Options) or _Options(None)
    settings = _settings()
    store = _make_store(settings, options.store_factory)

    async def run() -> _T:
        try:
            return await work(store)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                await close()

    return asyncio.run(run())


def _method(store: Any, name: str, command: str) -> Callable[..., Awaitable[Any]]:
    """The store's method ``name``, or a CliError: this store does not support ``command``."""
    method = getattr(store, name, None)
    if not callable(method):
        raise CliError(
            f"this store does not support {command}: {type(store).__name__} has no {name}()",
            UNSUPPORTED,
        )
    return method  # type: ignore[no-any-return]


# -- output ------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: dataclasses as objects, datetimes as ISO 8601."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(_plain(value), ensure_ascii=False))


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else str(value or "")


def _table(rows: Iterable[Iterable[Any]], headers: list[str]) -> str:
    lines = [headers, *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


# -- the commands ------------------------------------------------------------------------------


@click.group(
    name=PROG,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--store",
    "store_factory",
    metavar="MODULE:CALLABLE",
    help="Build the store with CALLABLE(settings) from MODULE (CALLABLE defaults to make_store; "
    "without --store: MongoSessionStore.from_settings).",
)
@click.version_option(package_name="tornado-mongo-session", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, store_factory: str | None) -> None:
    """Look after the session store: indexes, expired sessions, statistics, users' sessions."""
    ctx.obj = _Options(store_factory)


@cli.command("ensure-indexes")
@json_option
@click.pass_context
def ensure_indexes(ctx: click.Context, as_json: bool) -> None:
    """Create the store's indexes (the TTL index on expires_at); idempotent.

    A server that refuses the TTL index (FerretDB 1.24, a user without the privilege) logs a
    warning: then run purge-expired from cron.
    """

    async def work(store: Any) -> dict[str, Any]:
        await _method(store, "ensure_indexes", "ensure-indexes")()
        collection = getattr(store, "collection", None)
        names = None
        if collection is not None:
            names = sorted(await collection.index_information())
        return {"collection": getattr(collection, "full_name", None), "indexes": names}

    report = _run(ctx, work)
    if as_json:
        _emit_json(report)
    elif report["indexes"] is None:
        click.echo("indexes ensured")
    else:
        click.echo(f"indexes on {report['collection']}: {', '.join(report['indexes'])}")


@cli.command("purge-expired")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Sessions deleted per batch.",
)
@json_option
@click.pass_context
def purge_expired(ctx: click.Context, batch_size: int, as_json: bool) -> None:
    """Delete the sessions whose deadline has passed, in batches.

    On a terminal a progress bar shows the batches; otherwise one line reports the total.
    """
    show_bar = not as_json and sys.stderr.isatty()

    async def work(store: Any) -> dict[str, Any]:
        now = utc_now()
        batch = getattr(store, "purge_expired_batch", None)
        if batch is None:  # a store without batches: one call
            deleted = await _method(store, "purge_expired", "purge-expired")(now=now)
            return {"deleted": deleted, "batches": 1, "expired_before": now}
        total = await _method(store, "count_expired", "purge-expired")(now=now)
        deleted = batches = 0
        with click.progressbar(
            length=total,
            label="deleting expired sessions",
            file=sys.stderr if show_bar else io.StringIO(),  # the bar on a terminal only
            show_pos=True,
        ) as bar:
            while True:
                done = await batch(now=now, limit=batch_size)
                if not done:
                    break
                deleted += done
                batches += 1
                bar.update(done)
        return {"deleted": deleted, "batches": batches, "expired_before": now}

    report = _run(ctx, work)
    if as_json:
        _emit_json(report)
    else:
        click.echo(f"deleted {report['deleted']} expired sessions in {report['batches']} batches")


@cli.command()
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=None,
    help="Read at most this many live sessions for the distributions (default: all).",
)
@json_option
@click.pass_context
def stats(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """Live sessions, bound users, and the sessions' age and size distribution.

    One count and one aggregation on the server: it reads every live session (at most
    --limit) and sends back only the summary.
    """

    async def work(store: Any) -> Any:
        return await _method(store, "stats", "stats")(limit=limit)

    found = _run(ctx, work)
    if as_json:
        _emit_json(found)
        return
    click.echo(f"live sessions: {found.live}")
    if found.scanned != found.live:
        click.echo(f"described below: the first {found.scanned} (--limit)")
    click.echo(f"bound users:   {found.bound_users}")
    for title, buckets, summary, unit in (
        ("age", found.ages, found.age_seconds, "s"),
        ("size", found.sizes, found.size_bytes, "bytes"),
    ):
        line = "  ".join(f"{label}: {count}" for label, count in buckets.items())
        click.echo(f"{title:<6} {line}")
        if summary:
            parts = ", ".join(f"{k} {v:,.0f}" for k, v in summary.items())
            click.echo(f"       {parts} ({unit})")


_USER_FIELDS = ("handle", "created_at", "accessed_at", "ip", "user_agent", "current")


@cli.command("list")
@click.option("--user", "user_id", required=True, metavar="ID", help="The user's id.")
@json_option
@click.pass_context
def list_sessions(ctx: click.Context, user_id: str, as_json: bool) -> None:
    """List a user's live sessions (their handles revoke one)."""

    async def work(store: Any) -> list[Any]:
        method = _method(store, "list_user_sessions", "list --user")
        found: list[Any] = await method(user_id)
        return found

    sessions = [{name: getattr(s, name, None) for name in _USER_FIELDS} for s in _run(ctx, work)]
    if as_json:
        _emit_json({"user": user_id, "sessions": sessions})
    elif not sessions:
        click.echo(f"no live sessions for user {user_id}")
    else:
        rows = (
            (s["handle"], _when(s["created_at"]), _when(s["accessed_at"]), s["ip"] or "", _short(s))
            for s in sessions
        )
        click.echo(_table(rows, ["handle", "created", "last used", "ip", "user agent"]))


def _short(session: dict[str, Any]) -> str:
    agent = str(session["user_agent"] or "")
    return agent if len(agent) <= 60 else agent[:59] + "…"


@cli.command()
@click.option("--session", "handle", metavar="HANDLE", help="Revoke the session with this handle.")
@click.option("--user", "user_id", metavar="ID", help="Revoke every session of this user.")
@click.option("--keep", metavar="HANDLE", help="With --user: except this session.")
@json_option
@click.pass_context
def revoke(
    ctx: click.Context, handle: str | None, user_id: str | None, keep: str | None, as_json: bool
) -> None:
    """Log out one session (--session) or a user's sessions (--user, --keep)."""
    if (handle is None) == (user_id is None):
        raise click.UsageError("give exactly one of --session and --user")
    if keep is not None and user_id is None:
        raise click.UsageError("--keep goes with --user")

    async def work(store: Any) -> int:
        if handle is not None:
            revoked = await _method(store, "revoke_session", "revoke --session")(handle)
            return 1 if revoked else 0
        count: int = await _method(store, "revoke_user", "revoke --user")(user_id, keep=keep)
        return count

    revoked = _run(ctx, work)
    if as_json:
        _emit_json({"revoked": revoked})
    else:
        click.echo(f"revoked {revoked} session{'' if revoked == 1 else 's'}")
    if handle is not None and not revoked:
        raise CliError(f"no live session has the handle {handle!r}", NOT_FOUND)


# -- the entry point ---------------------------------------------------------------------------


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
