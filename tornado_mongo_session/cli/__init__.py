"""tornado-session: the command line for a session store (``python -m tornado_mongo_session``).

Reads :class:`~tornado_mongo_session.SessionSettings` from the environment
(``TORNADO_SESSION_*``, then ``.env``) and works on the store those settings name:
``MongoSessionStore.from_settings(settings)``, or what ``--store MODULE:CALLABLE`` builds from
them. Every failure is one line on stderr, with an exit code a script can act on
(:data:`EXIT_CODES`); never a traceback. Imports no tornado module.

The user commands (``list``, ``revoke``) call the store's ``list_user_sessions``,
``revoke_session`` and ``revoke_user`` when the store has them, and otherwise answer that it
does not support them (exit 3).

By job: ``_exits`` (the exit codes and the one-line error), ``_store`` (settings, building the
store, running a command's work on it), ``_output`` (JSON and tables), ``_commands`` (the click
group and its commands), ``_main`` (the entry point: every failure to its line and code).
"""

from __future__ import annotations

from tornado_mongo_session.cli._exits import EXIT_CODES
from tornado_mongo_session.cli._main import main

__all__ = ["EXIT_CODES", "main"]
