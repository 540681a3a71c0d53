"""Work that must never hold up a conversation: memory writes and end-of-call distillation.

One ``BackgroundJobs`` per process (the ``Runtime`` owns it). It keeps a reference to every
job it runs (asyncio only keeps weak ones), counts the calls in progress, and lets jobs that
need the LLM wait until nobody is talking: the local LLM server answers one request at a time,
so a distillation while someone in the room is talking would hold up their reply by seconds.
On shutdown, ``drain`` waits for what is still running (a call's last chunk, its
distillation) before the process exits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger


class BackgroundJobs:
    """Runs background jobs, and knows whether any call is in progress.

    Args:
        poll_secs: how often a job waiting for an idle LLM looks again.
    """

    def __init__(self, *, poll_secs: float = 2.0):
        self.poll_secs = poll_secs
        self._tasks: set[asyncio.Task[Any]] = set()
        self._calls = 0
        # One LLM job (a distillation) at a time: they queue rather than share the server.
        self.llm_turn = asyncio.Lock()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.opt(exception=error).warning(f"background job {task.get_name()} failed")

    @contextmanager
    def call(self) -> Iterator[None]:
        """Mark a call in progress for as long as the ``with`` block runs."""
        self._calls += 1
        try:
            yield
        finally:
            self._calls -= 1

    async def until_idle(
        self, max_wait_secs: float, *, give_up: Callable[[], bool] = lambda: False
    ) -> bool:
        """Wait until no call is in progress.

        Returns:
            False if that took longer than ``max_wait_secs`` or ``give_up()`` became true.
        """
        waited = 0.0
        while self._calls:
            if waited >= max_wait_secs or give_up():
                return False
            await asyncio.sleep(self.poll_secs)
            waited += self.poll_secs
        return True

    async def drain(self, timeout_secs: float = 30.0) -> None:
        """Wait (up to ``timeout_secs``) for the jobs still running, e.g. at shutdown."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_secs)
