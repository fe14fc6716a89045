"""What the stress tests share: routes that echo the session, a load client, a cookie jar.

Everything talks to 127.0.0.1 only. Every loop in these tests is bounded in count and time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pymongo
import tornado.httpclient
from handlers import ReadJSON, WriteJSON
from helpers import Response
from mongo_helpers import SERVER_SELECTION_TIMEOUT_MS

MAX_CLIENTS = 64
REQUEST_TIMEOUT = 20.0
"""Seconds before the load client gives up on a request: a hang detector, not a threshold."""


ROUTES = [("/w", WriteJSON, {"with_data": False}), ("/r", ReadJSON)]
"""``POST /w?k=&v=``: set one key; answer which session it was and whether it was loaded.
``GET /r``: the session's id, whether it was loaded, and its data."""


@dataclass
class Outcome:
    """One request as the load client saw it."""

    code: int
    started: float
    ended: float
    response: Response | None

    @property
    def latency(self) -> float:
        return self.ended - self.started

    def json(self) -> dict[str, Any]:
        assert self.response is not None
        loaded: dict[str, Any] = json.loads(self.response.body)
        return loaded


class LoadClient:
    """An HTTP client for many concurrent requests (Tornado's default allows only 10)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = tornado.httpclient.AsyncHTTPClient(
            force_instance=True, max_clients=MAX_CLIENTS
        )

    async def fetch(self, path: str, *, cookie: str | None = None, method: str = "GET") -> Outcome:
        headers = {"Cookie": f"session={cookie}"} if cookie else {}
        started = time.monotonic()
        try:
            raw = await self.client.fetch(
                self.base + path,
                method=method,
                body="" if method == "POST" else None,
                headers=headers,
                raise_error=False,
                follow_redirects=False,
                request_timeout=REQUEST_TIMEOUT,
            )
        except OSError:
            return Outcome(599, started, time.monotonic(), None)
        ended = time.monotonic()
        response = Response(raw.code, raw.body or b"", raw.headers)
        return Outcome(raw.code, started, ended, response)

    def close(self) -> None:
        self.client.close()


@dataclass
class Jar:
    """A browser's cookie jar for one site: the last ``Set-Cookie`` to arrive wins.

    That is what a browser does with concurrent responses: it applies each response's
    ``Set-Cookie`` in arrival order, whatever order the requests were sent in.
    """

    value: str | None = None
    history: list[str] = field(default_factory=list)

    def update(self, response: Response | None) -> None:
        if response is None:
            return
        morsel = response.cookie()
        if morsel is None:
            return
        self.value = morsel.value or None
        if morsel.value:
            self.history.append(morsel.value)


def server_description(url: str) -> str:
    """ "FerretDB v2.5.0", "FerretDB v1.24.2" or "MongoDB 7.0.1": what was measured against."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS
    )
    try:
        info = client.admin.command("buildInfo")
    finally:
        client.close()
    if "ferretdbVersion" in info:  # FerretDB 1.x
        return f"FerretDB {info['ferretdbVersion']}"
    if isinstance(info.get("ferretdb"), dict):  # FerretDB 2.x
        return f"FerretDB {info['ferretdb'].get('version', '?')}"
    return f"MongoDB {info.get('version', '?')}"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
