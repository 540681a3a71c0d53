"""One session's memory: who is talking, what to restore, what to write, what to retrieve.

``SessionMemory`` ties a :class:`~memory.recall.Recaller` and a
:class:`~memory.writer.MemoryWriter` to one ``(user_id, avatar_id, session_id)``; the
pipeline builder puts its retrieval processor in the graph and hands it finished turns.

Who the user is comes from outside: the room's signed-in account id (``web.auth``), or the
operating-system user for a launch on this machine's sound card (``python -m bots --transport
local``). Every store call is keyed by the id passed here.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from memory.distill import Distiller
from memory.jobs import BackgroundJobs
from memory.recall import Recaller
from memory.store import MemoryStore, Turn
from memory.writer import MemoryWriter


def epoch(iso: str | None, default: float) -> float:
    """Seconds since the epoch from Pipecat's ISO-8601 timestamps."""
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else default
    except ValueError:
        return default


def restorable(turns: list[Turn], budget_tokens: int) -> list[Turn]:
    """The most recent turns that fit in ``budget_tokens`` (~4 characters a token).

    Starts at a user turn where possible, so the restored history doesn't open mid-exchange.
    """
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        cost = len(turn.text) // 4 + 4  # + role markers
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    while kept and kept[0].role != "user" and len(kept) > 1:
        kept.pop(0)
    return kept


class SessionMemory:
    """Memory for one person talking to one avatar in one session.

    Args:
        store: the memory store.
        jobs: where the session's writes run (in the background).
        user_id: the person.
        avatar_id: the avatar.
        avatar_name: the avatar's display name (labels its lines in chunks and the block).
        session_id: this conversation's id.
        distiller: LLM fact distillation at the end (None: patterns only).
        restore_tokens: budget for the previous conversation restored on connect.
    """

    def __init__(
        self,
        store: MemoryStore,
        jobs: BackgroundJobs,
        *,
        user_id: str,
        avatar_id: str,
        avatar_name: str,
        session_id: str,
        distiller: Distiller | None = None,
        restore_tokens: int = 400,
    ):
        self.store = store
        self.user_id = user_id
        self.avatar_id = avatar_id
        self.avatar_name = avatar_name
        self.restore_tokens = restore_tokens
        self.recaller = Recaller(store, user_id=user_id, avatar_id=avatar_id, session_id=session_id)
        self.writer = MemoryWriter(
            store, self.recaller, jobs, avatar_name=avatar_name, distiller=distiller
        )
        self.restored: list[Turn] = []

    @property
    def name(self) -> str | None:
        """The person's name, if they have told any avatar."""
        return self.recaller.name

    async def open(self) -> list[dict]:
        """Load the profile and the recent conversation; returns it as context messages."""

        def load() -> list[Turn]:
            restored = []
            if self.restore_tokens > 0:
                recent = self.store.recent_turns(self.user_id, self.avatar_id, limit=60)
                restored = restorable(recent, self.restore_tokens)
            # Restored conversations are in the context: their chunks would only repeat them.
            self.recaller.in_context |= {t.session_id for t in restored}
            self.recaller.refresh_profile()
            return restored

        self.restored = await asyncio.to_thread(load)
        return [{"role": t.role, "content": t.text} for t in self.restored]

    async def close(self) -> None:
        """Finish writing this session (last chunk, distillation)."""
        await self.writer.close()
