"""``asyncio.wait_for`` as Python 3.12 has it, for the Python 3.11 we run on.

Pipecat replaces ``asyncio.wait_for`` with ``wait_for2`` on Python < 3.12, because 3.11's own
``wait_for`` can lose a cancellation. ``wait_for2`` wraps what it waits for in a new task,
which costs ~3 event-loop iterations per call even when the result is already there. Pipecat
calls it for every 20 ms audio frame a call receives (``SmallWebRTCClient.read_audio_frame``,
``BaseInputTransport._audio_task_handler``) and sends. With 8 calls in one process the
iterations were too slow for that: each call read fewer than 50 frames a second, and the audio
it had not heard yet grew ~0.7 s per second (``bench/room_load.py``, ``audio_in_backlog_ms``).

Python 3.12 fixed ``wait_for`` by building it on ``asyncio.timeout`` (cpython#98518): no
task, the awaitable runs in the caller's. ``asyncio.timeout`` is in 3.11 already, including
3.12's fix for a cancellation arriving during a timeout (``uncancel() <= cancelling``,
3.11.3+), so on 3.11 ``bots.patches`` installs 3.12's function, verbatim, in its place: the
``wait_for`` Pipecat itself uses on 3.12 and later, where nothing is replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def _cancel_and_wait(fut: asyncio.Future) -> None:
    """Cancel ``fut`` and wait until it is done (from 3.12's ``asyncio.tasks``)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def release(_fut: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_result(None)

    fut.add_done_callback(release)
    try:
        fut.cancel()
        # Not waiting for ``fut`` itself: a cancelled wait_for must not wait for it to end.
        await waiter
    finally:
        fut.remove_done_callback(release)


async def wait_for(fut: Awaitable[T], timeout: float | None) -> T:
    """Wait for ``fut`` to complete, for at most ``timeout`` seconds (3.12 semantics).

    Raises:
        TimeoutError: ``fut`` did not complete in time; it was cancelled.
    """
    if timeout is not None and timeout <= 0:
        # Zero or less: no time to run a coroutine, but a done future still counts.
        task = asyncio.ensure_future(fut)
        if task.done():
            return task.result()
        await _cancel_and_wait(task)
        try:
            return task.result()
        except asyncio.CancelledError as exc:
            raise TimeoutError from exc

    async with asyncio.timeout(timeout):
        return await fut
