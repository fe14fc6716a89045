"""examples/metrics.py through HTTP: browse, log in and out, then scrape /metrics and read it
with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import Browser, Server, serve
from test_examples import load_example

from tornado_mongo_session import MongoSessionStore, SessionSettings

parser = pytest.importorskip("prometheus_client.parser")


@pytest.fixture
async def server(collection: Any) -> AsyncIterator[Server]:
    app = load_example("metrics").make_app(
        SessionSettings(cookie_secure=False), MongoSessionStore(collection)
    )
    async with serve(app.wildcard_router.rules, **app.settings) as running:
        yield running


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_events_and_time_the_store(server: Server) -> None:
    browser = Browser(server)
    assert (await browser.fetch("/")).text == "visits: 1\n"  # created
    assert (await browser.fetch("/")).text == "visits: 2\n"  # loaded, saved
    await browser.fetch("/login", method="POST", body="")  # loaded, created, revoked
    await browser.fetch("/logout", method="POST", body="")  # loaded, revoked
    response = await server.fetch("/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert "Set-Cookie" not in response.headers
    found = samples(response.text)

    def events(name: str) -> float:
        return found.get(("tornado_session_events_total", (("event", name), ("outcome", "ok"))), 0)

    assert {name: events(name) for name in ("created", "loaded", "saved", "revoked")} == {
        "created": 2,
        "loaded": 3,
        "saved": 1,
        "revoked": 2,
    }
    assert events("rotated") == 0
    for operation, calls in (("load", 3), ("save", 3), ("delete", 2)):
        labels = (("operation", operation),)
        assert found[("tornado_session_store_seconds_count", labels)] == calls
        assert 0 < found[("tornado_session_store_seconds_sum", labels)] < calls * 5
        # The histogram's largest bucket holds every call.
        assert found[("tornado_session_store_seconds_bucket", (("le", "+Inf"), *labels))] == calls
    cookie = browser.cookie
    assert cookie is None or cookie not in response.text
