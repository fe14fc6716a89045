"""_tasks.py: a save stepped eagerly runs at once when nothing waits, and goes on otherwise."""

from __future__ import annotations

import asyncio

import pytest

from tornado_mongo_session._tasks import in_background, step


async def test_a_coroutine_that_never_waits_is_done_on_return() -> None:
    steps: list[str] = []

    async def save() -> None:
        steps.append("saved")

    assert step(save()) is None
    assert steps == ["saved"]


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
    rest = step(save())
    assert rest is not None
    assert steps == ["began"]
    future = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not future.done()
    lock.release()
    asyncio.get_running_loop().call_later(0.01, later.set_result, "answered")
    await future
    assert steps == ["began", "locked", "answered"]


async def test_an_error_before_waiting_is_raised_at_once() -> None:
    async def save() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        step(save())


async def test_an_error_after_waiting_reaches_who_awaits_the_rest() -> None:
    async def save() -> None:
        await asyncio.sleep(0)
        raise ValueError("refused")

    rest = step(save())
    assert rest is not None
    with pytest.raises(ValueError, match="refused"):
        await rest


async def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    seen: list[str] = []

    async def save() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    rest = step(save())
    assert rest is not None
    future = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await future
    assert seen == ["cancelled inside"]


async def test_a_background_task_runs_to_its_end() -> None:
    done = asyncio.Event()

    async def save() -> None:
        await asyncio.sleep(0)
        done.set()

    in_background(save())
    await asyncio.wait_for(done.wait(), 1)
