"""Metrics example: the session events as Prometheus metrics, scraped from ``/metrics``.

    GET  /          a counter kept in the session (every visit loads and saves it)
    POST /login     regenerate(): a new session, the old one revoked
    POST /logout    invalidate()
    GET  /metrics   the Prometheus text format

Needs the ``metrics`` extra (``pip install 'tornado-mongo-session[metrics]'``, which brings
``prometheus_client``). Run it with ``make demo DEMO=metrics`` (or ``python
examples/metrics.py`` with ``TORNADO_SESSION_MONGODB_URL`` set), then::

    curl -s -c jar -b jar http://127.0.0.1:8888/
    curl -s http://127.0.0.1:8888/metrics | grep tornado_session

Two metrics, one listener (:class:`SessionMetrics`, registered through the application
setting ``session_events``): ``tornado_session_events_total{event, outcome}`` counts every
event, and ``tornado_session_store_seconds{operation}`` is a histogram of the store calls'
latency. Neither has a label that could hold a token or a session id.
"""

from __future__ import annotations

import asyncio
import logging
import os

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from tornado_mongo_session import MongoSessionStore, SessionEvent, SessionMixin, SessionSettings

log = logging.getLogger("metrics")

# Store calls take from well under a millisecond (memory) to seconds (a failover).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


# --8<-- [start:listener]
class SessionMetrics:
    """A ``session_events`` listener that counts events and times store calls.

    Cheap enough for the event loop: a counter and a histogram update per store call.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "tornado_session_events",
            "Session events by name and outcome (see docs/observability.md).",
            ["event", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "tornado_session_store_seconds",
            "Latency of the session store's calls, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def __call__(self, event: SessionEvent) -> None:
        self.events.labels(event.name, event.outcome).inc()
        self.latency.labels(event.operation).observe(event.latency)


# --8<-- [end:listener]


class Metrics(tornado.web.RequestHandler):
    """The registry in the Prometheus text format (no session: it is not a SessionMixin)."""

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(generate_latest(self.settings["metrics_registry"]))


class Visits(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.session["visits"] = self.session.get("visits", 0) + 1
        self.write(f"visits: {self.session['visits']}\n")


class Login(SessionMixin, tornado.web.RequestHandler):
    def post(self) -> None:
        self.session.regenerate()
        self.session["user"] = self.get_argument("user", "ada")
        self.write("logged in\n")


class Logout(SessionMixin, tornado.web.RequestHandler):
    def post(self) -> None:
        self.session.invalidate()
        self.write("logged out\n")


# --8<-- [start:app]
def make_app(
    settings: SessionSettings, store: MongoSessionStore, registry: CollectorRegistry | None = None
) -> tornado.web.Application:
    """The application; ``registry`` defaults to a new one (not the process-wide default, so
    several applications, or tests, never share counters)."""
    registry = registry or CollectorRegistry()
    return tornado.web.Application(
        [("/", Visits), ("/login", Login), ("/logout", Logout), ("/metrics", Metrics)],
        session_store=store,
        session_settings=settings,
        session_events=[SessionMetrics(registry)],
        metrics_registry=registry,
    )


# --8<-- [end:app]


async def main() -> None:
    # Plain HTTP on loopback: the example turns off the Secure cookie flag a real site keeps on.
    settings = SessionSettings(cookie_secure=False)
    store = MongoSessionStore.from_settings(settings)
    try:
        port = int(os.environ.get("DEMO_PORT", "8888"))
        make_app(settings, store).listen(port, "127.0.0.1")
        log.info("metrics example on http://127.0.0.1:%d/metrics; Ctrl-C stops it", port)
        await asyncio.Event().wait()
    finally:
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        log.info("stopped")
