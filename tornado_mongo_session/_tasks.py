"""How the mixin runs its saves: at once when the store never waits, else as asyncio tasks."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["in_background", "start"]

_background: set[asyncio.Future[None]] = set()


def in_background(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` as a task nobody awaits, kept referenced until it ends."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def start(coro: Coroutine[Any, Any, None], *, eagerly: bool) -> asyncio.Future[None]:
    """Run ``coro``; return a future of its end.

    ``eagerly``: step it here, now, as far as it goes without waiting, like Python 3.12's eager
    tasks. A save to a store that never waits for I/O (memory, cookie) then ends within the call,
    costing no task and no turn of the event loop. Only for coroutines that wait on nothing but
    plain futures (a lock, a stream write): what remains runs in a task other than the one that
    began it, which primitives bound to the current task (``asyncio.timeout``) would not expect.
    """
    if not eagerly:
        return asyncio.ensure_future(coro)
    try:
        awaiting = coro.send(None)
    except StopIteration:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
    return asyncio.ensure_future(_go_on(coro, awaiting))


async def _go_on(coro: Coroutine[Any, Any, None], awaiting: Any) -> None:
    await _resume(coro, awaiting)  # a native coroutine: tasks take no generators (3.12+)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], awaiting: Any) -> Generator[Any, Any, None]:
    """Go on with ``coro``, stepped by hand until it yielded ``awaiting`` (as ``yield from``
    would: what the task sends or throws in is passed on)."""
    while True:
        try:
            sent = yield awaiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation, thrown in by the task
            try:
                awaiting = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                awaiting = coro.send(sent)
            except StopIteration:
                return
