"""How the mixin runs its saves: at once when the store never waits, else as asyncio tasks."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["in_background", "step"]

_background: set[asyncio.Future[None]] = set()


def in_background(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` as a task nobody awaits, kept referenced until it ends."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def step(coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None] | None:
    """Run ``coro`` here, now, as far as it goes without waiting, like Python 3.12's eager
    tasks; ``None`` when it ended, else a coroutine that goes on with it from where it waits
    (await it, or run it as a task).

    A save to a store that never waits for I/O (memory, cookie) then ends within the call,
    costing no task and no turn of the event loop. Only for coroutines that wait on nothing but
    plain futures (a lock, a stream write): what remains runs in a task other than the one that
    began it, which primitives bound to the current task (``asyncio.timeout``) would not expect.
    What ``coro`` raises before it first waits is raised here.
    """
    try:
        awaiting = coro.send(None)
    except StopIteration:
        return None
    return _go_on(coro, awaiting)


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
