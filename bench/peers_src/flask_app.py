"""Peer for bench/run.py: Flask-Session's MongoDB backend on the same MongoDB-compatible server.

Runs in the venv ``make bench-deps`` makes in bench/peers/venv (Flask, Flask-Session, pymongo,
gunicorn), as one gunicorn worker with threads: ``BENCH_MONGO_URL=... BENCH_DB=...
gunicorn -k gthread -w 1 --threads 8 -b 127.0.0.1:PORT --chdir bench/peers_src flask_app:app``.

``/plain/bare`` goes to a Flask app without Flask-Session (the framework's bare handler); the rest
to the app with it: ``/untouched``, ``/read``, ``/write``, ``/new`` (``/new?keys=K&kib=B``: a
session of bench/scale.py's sizes, bench/scale_data.py). ``GET /_stats`` answers the
commands the app's MongoClient sent (PyMongo command monitoring), the scenario requests served
and the worker's CPU time. Benchmark code, not part of the library.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from flask import Flask, request, session
from flask_session import Session
from pymongo import MongoClient, monitoring
from pymongo.collection import Collection
from pymongo.errors import OperationFailure
from werkzeug.middleware.dispatcher import DispatcherMiddleware

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scale_data import sized_data

_NOT_REQUEST_WORK = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "buildinfo"}
    | {"saslStart", "saslContinue"}
)
_lock = threading.Lock()
_commands: Counter[str] = Counter()
_counts = {"requests": 0, "misses": 0}


class _CommandCounter(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _NOT_REQUEST_WORK:
            with _lock:
                _commands[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _count(miss: bool = False) -> None:
    with _lock:
        _counts["requests"] += 1
        if miss:
            _counts["misses"] += 1


_original_create_index = Collection.create_index


def _create_index_where_possible(self: Collection[Any], keys: Any, **kwargs: Any) -> str:
    # Flask-Session creates a TTL index when its interface is built; FerretDB 1.x answers
    # NotImplemented (238) and the app would not start. Skip that one refusal, as this
    # library does; nothing per request changes.
    try:
        return _original_create_index(self, keys, **kwargs)
    except OperationFailure as exc:
        if exc.code != 238 or "expireAfterSeconds" not in kwargs:
            raise
        return ""


Collection.create_index = _create_index_where_possible  # type: ignore[method-assign]

client: MongoClient[dict[str, Any]] = MongoClient(
    os.environ["BENCH_MONGO_URL"], event_listeners=[_CommandCounter()], appname="tms-bench-flask"
)
_db = os.environ["BENCH_DB"]
# Flask-Session finds by the "id" field and creates no index for it: give it one, so the peer
# is not measured doing collection scans.
client[_db]["sessions"].create_index("id")

app = Flask(__name__)
app.config.update(
    SECRET_KEY="bench-only-secret",  # noqa: S106 - a benchmark on loopback
    SESSION_TYPE="mongodb",
    SESSION_MONGODB=client,
    SESSION_MONGODB_DB=_db,
    SESSION_MONGODB_COLLECT="sessions",
    SESSION_COOKIE_SECURE=False,
)
Session(app)


@app.get("/untouched")
def untouched() -> str:
    _count()
    return "ok"


@app.get("/read")
def read() -> str:
    n = session.get("n")
    _count(miss=n is None)
    return f"n={n}"


@app.get("/write")
def write() -> str:
    n = session.get("n")
    _count(miss=n is None)
    session["n"] = (n or 0) + 1
    return f"n={session['n']}"


@app.get("/new")
def new() -> str:
    keys = int(request.args.get("keys", 0))
    kib = int(request.args.get("kib", 0))
    if keys or kib:  # bench/scale.py's session sizes
        session.update(sized_data(max(keys, 1), kib))
        return "new"
    session["n"] = 0
    session["user"] = {"name": "bench", "roles": ["reader"], "theme": "dark"}
    return "new"


@app.get("/_stats")
def stats() -> dict[str, Any]:
    with _lock:
        return {**_counts, "commands": dict(_commands), "cpu_s": time.process_time()}


plain = Flask("plain")


@plain.get("/bare")
def bare() -> str:
    _count()
    return "ok"


app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/plain": plain})  # type: ignore[method-assign]
