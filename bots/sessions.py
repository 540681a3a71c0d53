"""The calls this process runs: start each one, know who is in which, end each one cleanly.

Every connection (WebRTC peer, WebSocket, the local sound card, a Daily room) gets its own
``VoiceSession``, built from its avatar's config on the process's ``Runtime`` (models are
shared). A session ends when its client disconnects, when it idles out, on shutdown, or after
its turn when the person's sign-in ends; it then finishes writing its memories in the
background and is forgotten.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from dataclasses import dataclass

from loguru import logger

from bots.config import AvatarConfig
from bots.llm_backend import LLMBackend
from bots.runtime import Runtime
from bots.session import TransportFactory, VoiceSession

FORGOTTEN = "Everything about you was deleted, so this call ended."


@dataclass
class RunningSession:
    """A session, the task running it, and who it belongs to."""

    id: str
    session: VoiceSession
    task: asyncio.Task
    user_id: str
    username: str = ""
    login: str | None = None
    """The sign-in token it was started with (room sessions); the call ends when it does."""


class SessionManager:
    """Starts, tracks and stops voice sessions in this process.

    Args:
        runtime: the process's runtime, which every session is built on.
        greet: whether avatars greet people when they connect.
    """

    def __init__(self, runtime: Runtime, *, greet: bool = True):
        self.runtime = runtime
        self.greet = greet
        self.active: dict[str, RunningSession] = {}
        # Ended sessions still writing their memories (last chunk, distillation).
        self.finishing: dict[str, RunningSession] = {}
        # Every session ever started, weakly: what is still alive after ending is a leak.
        self._all: list[weakref.ref[VoiceSession]] = []

    async def prepare(self, avatar_id: str) -> tuple[AvatarConfig, LLMBackend]:
        """Check that a session for ``avatar_id`` can start, before accepting a connection.

        Raises:
            AvatarConfigError, LLMUnavailableError: with a message that says what to do.
        """
        avatar = self.runtime.avatars.load(avatar_id)
        # Probing the LLM servers is blocking HTTP: keep it off the event loop.
        backend = await asyncio.to_thread(self.runtime.llm.resolve, avatar.llm.ollama_model)
        return avatar, backend

    async def start(
        self,
        avatar: AvatarConfig,
        backend: LLMBackend,
        transport: TransportFactory,
        *,
        user_id: str,
        username: str = "",
        login: str | None = None,
    ) -> RunningSession:
        """Build and start a session for ``user_id`` talking to ``avatar`` on ``transport``.

        Args:
            avatar: the character.
            backend: the LLM server.
            transport: opens the connection (with the session's audio-out filter).
            user_id: whose memories this session reads and writes.
            username: shown to others in the lobby.
            login: the sign-in token behind the connection, if any (see ``end_calls``).
        """
        # Unique across restarts: conversations are stored under this id.
        sid = f"{avatar.id}-{uuid.uuid4().hex[:10]}"
        slot = self.runtime.llm.slots.acquire(backend)
        session = VoiceSession(
            avatar,
            transport,
            self.runtime,
            backend=backend,
            user_id=user_id,
            session_id=sid,
            greet=self.greet,
            llm_slot=slot,
        )
        try:
            await session.prepare()
        except BaseException:
            self.runtime.llm.slots.release(backend, slot)
            raise
        task = asyncio.create_task(self._run(sid, session), name=f"session-{sid}")
        running = RunningSession(sid, session, task, user_id, username, login)
        self._all = [r for r in self._all if r() is not None] + [weakref.ref(session)]
        self.active[sid] = running
        logger.info(f"[{sid}] session started ({len(self.active)} active)")
        return running

    async def _run(self, sid: str, session: VoiceSession) -> None:
        try:
            await session.run()
        except Exception:
            logger.exception(f"[{sid}] session failed")
        finally:
            self.runtime.llm.slots.release(session.backend, session.llm_slot)
            running = self.active.pop(sid, None)
            logger.info(f"[{sid}] session ended ({len(self.active)} active)")
            # The last chunk and the LLM's distillation happen after the person has gone.
            if running is not None:
                self.finishing[sid] = running
            self.runtime.jobs.spawn(self._finish(sid, session), f"finish-{sid}")

    async def _finish(self, sid: str, session: VoiceSession) -> None:
        try:
            await session.finish()
        finally:
            self.finishing.pop(sid, None)

    def alive(self) -> int:
        """Sessions still in memory (after a garbage collection), ended or not."""
        gc.collect()
        return sum(r() is not None for r in self._all)

    def present(self) -> list[dict]:
        """Who is talking to which avatar right now (for the lobby)."""
        return [
            {"username": r.username, "avatar": r.session.avatar.id}
            for r in self.active.values()
            if r.username
        ]

    def calls_with(self, avatar_id: str) -> int:
        """How many live calls are with ``avatar_id``."""
        return sum(r.session.avatar.id == avatar_id for r in self.active.values())

    def end_calls(self, reason: str, *, user_id: str | None = None, login: str | None = None):
        """End every call of ``user_id`` (or started with sign-in ``login``) after its turn."""
        for running in list(self.active.values()):
            if (user_id and running.user_id == user_id) or (login and running.login == login):
                self.runtime.jobs.spawn(running.session.end_after_turn(reason), f"end-{running.id}")

    async def forget(self, user_id: str) -> None:
        """Before "forget me": end the person's calls now and stop every write of theirs."""
        everyone = [*self.active.values(), *self.finishing.values()]
        mine = [r for r in everyone if r.user_id == user_id]
        for running in mine:
            if running.session.memory:
                await running.session.memory.writer.discard()
            if running.id in self.active:
                await running.session.end_after_turn(FORGOTTEN, max_wait_secs=0)

    async def watch_logins(self, still_valid, every_secs: float = 5.0) -> None:
        """Forever: end (after their turn) the calls whose sign-in expired.

        Args:
            still_valid: ``still_valid(token) -> bool``.
            every_secs: how often to check.
        """
        while True:
            await asyncio.sleep(every_secs)
            for running in list(self.active.values()):
                if (
                    running.login
                    and not running.session.ending
                    and not await asyncio.to_thread(still_valid, running.login)
                ):
                    self.runtime.jobs.spawn(
                        running.session.end_after_turn(
                            "Your sign-in expired. Sign in again to keep talking."
                        ),
                        f"end-{running.id}",
                    )

    async def stop_all(self) -> None:
        """Cancel every session (server shutdown)."""
        for running in list(self.active.values()):
            await running.session.worker.cancel()
        await asyncio.gather(*(r.task for r in list(self.active.values())), return_exceptions=True)
        await self.runtime.close()
