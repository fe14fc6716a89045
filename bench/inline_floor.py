"""An experiment, not a benchmark of the library: how low could read, write and rotate go?

``bench/cpu.py`` measures the library's extra CPU per request; its read, write and rotate
targets (issue 10) are missed. This asks whether the library's structure is what stands in the
way, measuring the three again in two hand-inlined variants, alternating with the library:

- **save inlined**: the save step of ``finish()`` for write and rotate with no save policy, no
  ``SaveContext``/``SavePlan``/``SessionUpdate``/``SaveResult`` records, no store
  ``save``/``_update`` layers and none of the glue's checks; only what the request must do: the
  session's ``changes()`` and size bound, the deadline, for a rotation a new token and its hash
  and the evicted ones retired, one call of the memory store's update primitive, the same three
  headers (``Vary``, ``Set-Cookie``, ``Cache-Control``) and the session's bookkeeping.
- **all inlined**: that, and the load of ``prepare()`` inlined too (the one cookie the client
  sends, split; the document found; its deadline; the token's hash compared; the record
  built), and a read's ``finish()`` (``Vary``, nothing due).

It patches private parts of the library, for the benchmark's own handlers only, and skips
checks a real request needs (several cookie values, a cookie the handler set itself, an existing
``Cache-Control``, a retired token, the compare-and-set's loser, the document's size limit):
its figures are a lower bound for this store and header set, never a design to copy.

Usage: ``python bench/inline_floor.py [--requests 1000] [--repeats 10] [--rounds 2]``; prints
each scenario's extra CPU and its ratio to the bare handler's per variant (medians over the
rounds), and ``bench/cpu.py``'s target.
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
from tornado_mongo_session.stores.base import SessionRecord
from tornado_mongo_session.tokens import (
    encode_cookie,
    hash_token,
    new_token,
    parse_cookie,
    token_rank,
)

SHOWN = ("read", "write", "rotate")


def _run(coro: Any) -> Any:
    """The result of a coroutine that never waits (the memory store's primitive)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the memory store waited")


class _Done:
    """A completed awaitable: what ``prepare`` returns when the load ended within the call (a
    handler's ``await super().prepare()`` needs an awaitable)."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_DONE = _Done()


def inlined_prepare(library_prepare: Callable[..., Any]) -> Callable[..., Any]:
    """``prepare`` with the load of the benchmark's read and write requests hand-inlined: the
    one cookie the benchmark's client sends, split, the document found, its deadline, the
    token's hash compared, the record built. Anything else goes to the library's."""

    def prepare(self: Any) -> Any:
        kind = type(self)
        if kind is not bench_app.Read and kind is not bench_app.Write:
            return library_prepare(self)
        config = self._session_config
        header = self.request.headers.get("Cookie") or ""
        prefix = config.cookie_name + "="
        cookie = header[len(prefix) :] if header.startswith(prefix) else None
        parsed = parse_cookie(cookie)
        if parsed is None:
            return library_prepare(self)
        session_id, token = parsed
        found = _run(config.store_for(kind)._find(session_id))
        if found is None or found.expires_at <= config.clock():
            return library_prepare(self)
        rank = token_rank(hash_token(token), found.tokens)
        if rank is None:
            return library_prepare(self)
        # DocumentStore.load's record, written out here on purpose: every call is in sight.
        self._session_record = SessionRecord(
            id=session_id,
            data=dict(found.data),
            created_at=found.created_at,
            accessed_at=found.accessed_at,
            rotated_at=found.rotated_at,
            expires_at=found.expires_at,
            token=token,
            token_hashes=list(found.tokens),
            token_newest=rank == 0,
            retired=found.retired,
            size=found.size,
        )
        self._session_cookie_in = cookie
        return _DONE

    return prepare


def inlined_finish(library_finish: Callable[..., Any], *, read: bool = False) -> Callable[..., Any]:
    """``finish`` with the save of the benchmark's write and rotate requests hand-inlined;
    ``read``: also a read's (nothing due: ``Vary``, the clock, the touch's check)."""

    def finish(self: Any, chunk: Any = None) -> Any:
        session, loaded = self._session, self._session_record
        config = self._session_config
        rotating = isinstance(config.rotator, bench_app.EveryRequest)
        kind = type(self)
        if read and kind is bench_app.Read and not rotating and session is not None and loaded:
            self._headers["Vary"] = "Cookie"
            if session.unchanged and config.clock() - loaded.accessed_at < config.rules.touch:
                return tornado.web.RequestHandler.finish(self, chunk)
            return library_finish(self, chunk)
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
        if rotating:  # rotated_write's tokens and retired entries, written out on purpose
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
    """Alternate ``count`` measurements of each variant: the library as it is, the save
    inlined, and the load and the save inlined."""
    library_finish, library_prepare = SessionMixin.finish, SessionMixin.prepare
    variants = {
        "library": (library_prepare, library_finish),
        "save inlined": (library_prepare, inlined_finish(library_finish)),
        "all inlined": (
            inlined_prepare(library_prepare),
            inlined_finish(library_finish, read=True),
        ),
    }
    keep = {name: cpu.SCENARIOS[name] for name in ("bare", *SHOWN)}
    cpu.SCENARIOS.clear()
    cpu.SCENARIOS.update(keep)
    found: dict[str, dict[str, list[float]]] = {label: {} for label in variants}
    try:
        for _ in range(count):
            for label, (prepare, finish) in variants.items():
                SessionMixin.prepare = prepare  # type: ignore[method-assign]
                SessionMixin.finish = finish  # type: ignore[method-assign]
                result = await cpu.measure(requests, repeats)
                for name, value in result["cpu_us_per_request"].items():
                    found[label].setdefault(name, []).append(value)
    finally:
        SessionMixin.prepare = library_prepare  # type: ignore[method-assign]
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
    labels = list(found)
    print(f"{'scenario':<8} " + " ".join(f"{label:>16}" for label in labels) + "  target")
    for name in SHOWN:
        row = {}
        for label in labels:
            runs = found[label]
            pairs = list(zip(runs[name], runs["bare"], strict=True))
            extra = statistics.median(value - bare for value, bare in pairs)
            ratio = statistics.median((value - bare) / bare for value, bare in pairs)
            row[label] = {"extra_us": round(extra, 1), "ratio": round(ratio, 3)}
        out[name] = row
        cells = " ".join(
            f"{row[label]['extra_us']:>7.1f} µs {row[label]['ratio']:.2f}x" for label in labels
        )
        print(f"{name:<8} {cells}  {cpu.TARGETS[name]:.2f}x")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
