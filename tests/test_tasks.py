"""_tasks.py: a save started eagerly runs at once when nothing waits, and as a task otherwise."""

from __future__ import annotations

import asyncio

import pytest

from tornado_mongo_session._tasks import start


async def test_a_coroutine_that_never_waits_is_done_on_return() -> None:
    steps: list[str] = []

    async def save() -> None:
        steps.append("saved")

    future = start(save(), eagerly=True)
    assert future.done()
    assert steps == ["saved"]
    lazy = start(save(), eagerly=False)
    assert not lazy.done()  # a task: it runs on the next turn of the loop
    await lazy
    assert steps == ["saved", "saved"]


async def test_one_that_waits_goes_on_as_a_task_to_its_end() -> None:
    steps: list[object] = []
    lock = asyncio.Lock()
    later = asyncio.get_running_loop().create_future()

    async def save() -> None:
        steps.append("began")
        async with lock:  # held below: the first step stops here
            steps.append("locked")
        await asyncio.sleep(0)
        steps.append(await later)

    await lock.acquire()
    future = start(save(), eagerly=True)
    assert steps == ["began"]
    assert not future.done()
    lock.release()
    asyncio.get_running_loop().call_later(0.01, later.set_result, "answered")
    await future
    assert steps == ["began", "locked", "answered"]


async def test_an_error_after_waiting_reaches_the_future() -> None:
    async def save() -> None:
        await asyncio.sleep(0)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await start(save(), eagerly=True)


async def test_cancelling_the_future_cancels_the_coroutine_where_it_waits() -> None:
    seen: list[str] = []

    async def save() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    future = start(save(), eagerly=True)
    await asyncio.sleep(0)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await future
    assert seen == ["cancelled inside"]
