"""An experiment, not a benchmark of the library: how low could write and rotate go?

``bench/cpu.py`` measures the library's extra CPU per request; its write and rotate targets
(issue 10) are missed. This asks whether the library's structure is what stands in the way:
it measures write and rotate again with the save step of ``finish()`` hand-inlined, with no save
policy, no ``SaveContext``/``SavePlan``/``SessionUpdate``/``SaveResult`` records, no store
``save``/``_update`` layers and none of the glue's checks, keeping only what the request must
do: the session's ``changes()`` and size bound, the deadline, for a rotation a new token and its
hash and the evicted ones retired, one call of the memory store's update primitive, the same
three headers (``Vary``, ``Set-Cookie``, ``Cache-Control``) and the session's bookkeeping. The
load is the library's, unchanged.

It patches private parts of the library, for the benchmark's own handlers only, and skips
checks a real save needs (a cookie the handler set itself, an existing ``Cache-Control``, the
compare-and-set's loser, size limits of the document): its figures are a lower bound for
*this* load path, store and header set, never a design to copy.

Usage: ``python bench/inline_floor.py [--requests 1000] [--repeats 10] [--rounds 2]``; prints
each scenario's extra CPU as the library does it and inlined, alternating rounds, and the
ratios against ``bench/cpu.py``'s targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app as bench_app
import cpu

from tornado_mongo_session import SessionMixin
from tornado_mongo_session.stores._document_layout import RETIRED_KEPT, DocumentWrite
from tornado_mongo_session.tokens import encode_cookie, hash_token, new_token

SHOWN = ("read", "write", "rotate")


def _run(coro: Any) -> Any:
    """The result of a coroutine that never waits (the memory store's primitive)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the memory store waited")


def inlined_finish(library_finish: Callable[..., Any]) -> Callable[..., Any]:
    """``finish`` with the save of the benchmark's write and rotate requests hand-inlined."""

    def finish(self: Any, chunk: Any = None) -> Any:
        session, loaded = self._session, self._session_record
        config = self._session_config
        rotating = isinstance(config.rotator, bench_app.EveryRequest)
        kind = type(self)
        if (
            session is None
            or loaded is None
            or session.is_new
            or self._headers_written
            or not (kind is bench_app.Write or (kind is bench_app.Read and rotating))
        ):
            return library_finish(self, chunk)
        headers = self._headers
        headers["Vary"] = "Cookie"
        now = config.clock()
        changed, removed = session.changes()
        rules = config.rules
        if session.size_bound() > rules.max_session_bytes:
            raise RuntimeError("over max_session_bytes")
        expires = now + rules.idle
        if rules.absolute is not None:
            expires = min(expires, loaded.created_at + rules.absolute)
        store = config.store_for(kind)
        if rotating:
            keep = config.rotator.keep
            token = new_token()
            hashes = loaded.token_hashes
            evicted = hashes[keep - 1 :]
            retired = None
            if evicted:
                retired = [*({"h": h, "at": now} for h in evicted), *loaded.retired]
                retired = retired[:RETIRED_KEPT]
            write = DocumentWrite(
                changed, removed, now, expires, [hash_token(token), *hashes][:keep], now, retired
            )
            if not _run(store._update_document(loaded.id, loaded.rotated_at, write)):
                raise RuntimeError("the rotation lost its compare-and-set")
            cookie = encode_cookie(loaded.id, token)
            session.rotated_at = now
        else:
            write = DocumentWrite(changed, removed, now, expires)
            if not _run(store._update_document(loaded.id, None, write)):
                raise RuntimeError("the session is gone")
            cookie = self._session_cookie_in
        max_age = int((expires - now).total_seconds())
        headers["Set-Cookie"] = config.cookie_header(cookie, max_age)
        headers["Cache-Control"] = "private"
        session.accessed_at, session.expires_at = now, expires
        session._stored, session._encoded = dict(session._encoded or {}), None
        session._size_stored = None
        return tornado.web.RequestHandler.finish(self, chunk)

    return finish


async def rounds(requests: int, repeats: int, count: int) -> dict[str, dict[str, list[float]]]:
    """Alternate ``count`` measurements of the library as it is and with the inlined save."""
    library_finish = SessionMixin.finish
    patched = inlined_finish(library_finish)
    keep = {name: cpu.SCENARIOS[name] for name in ("bare", *SHOWN, "headers: write")}
    cpu.SCENARIOS.clear()
    cpu.SCENARIOS.update(keep)
    found: dict[str, dict[str, list[float]]] = {"library": {}, "inlined": {}}
    try:
        for _ in range(count):
            for label, finish in (("library", library_finish), ("inlined", patched)):
                SessionMixin.finish = finish  # type: ignore[method-assign]
                result = await cpu.measure(requests, repeats)
                for name, value in result["cpu_us_per_request"].items():
                    found[label].setdefault(name, []).append(value)
    finally:
        SessionMixin.finish = library_finish  # type: ignore[method-assign]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    found = asyncio.run(rounds(args.requests, args.repeats, args.rounds))
    out: dict[str, Any] = {}
    print(f"{'scenario':<8} {'library µs':>11} {'inlined µs':>11}   ratios (target)")
    for name in SHOWN:
        row = {}
        for label in ("library", "inlined"):
            runs = found[label]
            pairs = list(zip(runs[name], runs["bare"], strict=True))
            extra = statistics.median(value - bare for value, bare in pairs)
            ratio = statistics.median((value - bare) / bare for value, bare in pairs)
            row[label] = {"extra_us": round(extra, 1), "ratio": round(ratio, 3)}
        out[name] = row
        print(
            f"{name:<8} {row['library']['extra_us']:>11.1f} {row['inlined']['extra_us']:>11.1f}"
            f"   {row['library']['ratio']:.2f}x -> {row['inlined']['ratio']:.2f}x"
            f" ({cpu.TARGETS[name]:.2f}x)"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
