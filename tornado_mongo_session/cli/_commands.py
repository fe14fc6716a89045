"""The ``tornado-session`` click group and its commands; each builds its report through the
store (``_store.run``) and prints it (``_output``)."""

from __future__ import annotations

import io
import sys
from typing import Any

import click

from tornado_mongo_session.cli._exits import EXIT_CODES, NOT_FOUND, PROG, CliError
from tornado_mongo_session.cli._output import emit_json, shorten, table, when
from tornado_mongo_session.cli._store import Options, method, run
from tornado_mongo_session.clock import utc_now

__all__ = ["cli"]

_EPILOG = (
    "Settings come from TORNADO_SESSION_* variables (e.g. TORNADO_SESSION_MONGODB_URL, "
    "TORNADO_SESSION_DATABASE, TORNADO_SESSION_COLLECTION) and .env.\n\n"
    "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items()) + "."
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


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
    ctx.obj = Options(store_factory)


@cli.command("ensure-indexes")
@json_option
@click.pass_context
def ensure_indexes(ctx: click.Context, as_json: bool) -> None:
    """Create the store's indexes (the TTL index on expires_at); idempotent.

    A server that refuses the TTL index (FerretDB 1.24, a user without the privilege) logs a
    warning: then run purge-expired from cron.
    """

    async def work(store: Any) -> dict[str, Any]:
        await method(store, "ensure_indexes", "ensure-indexes")()
        collection = getattr(store, "collection", None)
        names = None
        if collection is not None:
            names = sorted(await collection.index_information())
        return {"collection": getattr(collection, "full_name", None), "indexes": names}

    report = run(ctx, work)
    if as_json:
        emit_json(report)
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
            deleted = await method(store, "purge_expired", "purge-expired")(now=now)
            return {"deleted": deleted, "batches": 1, "expired_before": now}
        total = await method(store, "count_expired", "purge-expired")(now=now)
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

    report = run(ctx, work)
    if as_json:
        emit_json(report)
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
        return await method(store, "stats", "stats")(limit=limit)

    found = run(ctx, work)
    if as_json:
        emit_json(found)
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
        listing = method(store, "list_user_sessions", "list --user")
        found: list[Any] = await listing(user_id)
        return found

    sessions = [{name: getattr(s, name, None) for name in _USER_FIELDS} for s in run(ctx, work)]
    if as_json:
        emit_json({"user": user_id, "sessions": sessions})
    elif not sessions:
        click.echo(f"no live sessions for user {user_id}")
    else:
        rows = (
            (
                s["handle"],
                when(s["created_at"]),
                when(s["accessed_at"]),
                s["ip"] or "",
                shorten(s["user_agent"], 60),
            )
            for s in sessions
        )
        click.echo(table(rows, ["handle", "created", "last used", "ip", "user agent"]))


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
            revoked = await method(store, "revoke_session", "revoke --session")(handle)
            return 1 if revoked else 0
        count: int = await method(store, "revoke_user", "revoke --user")(user_id, keep=keep)
        return count

    revoked = run(ctx, work)
    if as_json:
        emit_json({"revoked": revoked})
    else:
        click.echo(f"revoked {revoked} session{'' if revoked == 1 else 's'}")
    if handle is not None and not revoked:
        raise CliError(f"no live session has the handle {handle!r}", NOT_FOUND)
