"""Run one voice session per connection, and end each one cleanly.

Every browser connection (WebRTC peer or WebSocket) gets its own pipeline worker, built from
its avatar's config; heavy models are shared per process (see ``processors``). A session ends
when its client disconnects, when it idles out, or on shutdown, and is then forgotten.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from loguru import logger
from pipecat.processors.frameworks.rtvi.frames import RTVIServerMessageFrame
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from bots.config import AvatarConfig, load_avatar
from bots.llm_backend import LLMBackend, resolve_backend
from bots.pipeline import VoiceSession, build_session
from memory.session import LOCAL_USER
from memory.writer import when_llm_idle
from processors.turn_latency import TurnLatency

_background: set[asyncio.Task] = set()


@dataclass
class RunningSession:
    """A session and the task running it."""

    id: str
    session: VoiceSession
    task: asyncio.Task


class SessionManager:
    """Starts, tracks and stops voice sessions in this process."""

    def __init__(self, *, greet: bool = True):
        self.greet = greet
        self.active: dict[str, RunningSession] = {}
        when_llm_idle(lambda: not self.active)

    async def prepare(self, avatar_id: str) -> tuple[AvatarConfig, LLMBackend]:
        """Check that a session for ``avatar_id`` can start, before accepting a connection.

        Raises:
            AvatarConfigError, LLMUnavailableError: with a message that says what to do.
        """
        avatar = load_avatar(avatar_id)
        # Probing the LLM servers is blocking HTTP: keep it off the event loop.
        backend = await asyncio.to_thread(resolve_backend, avatar.llm.ollama_model)
        return avatar, backend

    async def start(
        self,
        avatar: AvatarConfig,
        backend: LLMBackend,
        transport: BaseTransport,
        *,
        user_id: str = LOCAL_USER,
    ) -> RunningSession:
        """Build and start a session for ``user_id`` talking to ``avatar`` on ``transport``."""
        # Unique across restarts: conversations are stored under this id.
        sid = f"{avatar.id}-{uuid.uuid4().hex[:10]}"
        session = build_session(avatar, transport, backend=backend, session_id=sid, user_id=user_id)
        await session.prepare()

        @transport.event_handler("on_client_connected")
        async def _on_connected(_transport, _client):
            logger.info(f"[{sid}] client connected")
            if self.greet:
                await session.greet()

        @transport.event_handler("on_client_disconnected")
        async def _on_disconnected(_transport, _client):
            logger.info(f"[{sid}] client disconnected")
            await session.worker.cancel()

        async def _send_latency(lat: TurnLatency):
            # Shown under the transcript on the page (RTVI server message).
            await session.worker.queue_frame(
                RTVIServerMessageFrame(data={"type": "turn-latency", **lat.as_dict()})
            )

        session.latency.add_listener(_send_latency)
        task = asyncio.create_task(self._run(sid, session), name=f"session-{sid}")
        running = RunningSession(sid, session, task)
        self.active[sid] = running
        logger.info(f"[{sid}] session started ({len(self.active)} active)")
        return running

    async def _run(self, sid: str, session: VoiceSession) -> None:
        try:
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(session.worker)
            await runner.run()
        except Exception:
            logger.exception(f"[{sid}] session failed")
        finally:
            self.active.pop(sid, None)
            logger.info(f"[{sid}] session ended ({len(self.active)} active)")
            # The last chunk and the LLM's distillation happen after the person has gone.
            task = asyncio.create_task(session.finish(), name=f"finish-{sid}")
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def stop_all(self) -> None:
        """Cancel every session (server shutdown)."""
        for running in list(self.active.values()):
            await running.session.worker.cancel()
        await asyncio.gather(*(r.task for r in list(self.active.values())), return_exceptions=True)
        if _background:
            await asyncio.wait(list(_background), timeout=30)
