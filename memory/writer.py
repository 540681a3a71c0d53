"""Stores one conversation as it happens, off the latency path.

The pipeline hands every finished turn to ``MemoryWriter.turn()``, which only queues it; one
background task per session then, in a worker thread:

1. stores the turn (an interrupted reply as far as it was heard, flagged, with its latency);
2. for a user turn, runs the pattern extractor (``memory.extract``) and upserts the facts it
   finds as ``user`` cards, then refreshes the session's pinned profile, so a fact said in
   this turn is known from the next turn on;
3. writes recall chunks as turns accumulate (``memory.chunking``).

When the session ends, ``close()`` writes the last chunk and, if a distiller is configured,
asks the LLM for facts the patterns missed (``memory.distill``). That runs only at the end,
and only once no call is in progress (``memory.jobs``), because the local LLM server answers
one request at a time: a distillation mid-conversation would hold up the next reply for its
whole duration.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from loguru import logger

from memory.chunking import plan_chunks
from memory.distill import Distiller
from memory.extract import extract_facts
from memory.jobs import BackgroundJobs
from memory.recall import Recaller
from memory.store import MemoryStore, Turn

DISTILL_MAX_WAIT_SECS = 600.0


@dataclass
class _Pending:
    role: str
    text: str
    started: float
    ended: float
    interrupted: bool
    latency: dict | None


class MemoryWriter:
    """Writes one session's turns, cards and chunks to the store.

    Args:
        store: the memory store.
        recaller: the session's retrieval (its profile is refreshed after new facts).
        jobs: runs the writing in the background; distillation waits for it to be idle.
        avatar_name: how the avatar's lines are labeled in chunks.
        distiller: LLM fact distillation at the end of the session (None: patterns only).
        chunk_size: turns per recall chunk while the conversation goes on.
    """

    def __init__(
        self,
        store: MemoryStore,
        recaller: Recaller,
        jobs: BackgroundJobs,
        *,
        avatar_name: str,
        distiller: Distiller | None = None,
        chunk_size: int = 4,
    ):
        self.store = store
        self.recaller = recaller
        self.jobs = jobs
        self.user_id = recaller.user_id
        self.avatar_id = recaller.avatar_id
        self.session_id = recaller.session_id
        self.avatar_name = avatar_name
        self.distiller = distiller
        self.chunk_size = chunk_size
        self.turns: list[Turn] = []
        self._chunked = 0
        # User turns since the avatar last spoke: a pause can split one sentence into two
        # turns ("Hi, my" / "name is Sarah"), so facts are looked for in them together.
        self._user_run: list[Turn] = []
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._discarded = False

    def turn(
        self,
        role: str,
        text: str,
        *,
        started: float,
        ended: float,
        interrupted: bool = False,
        latency: dict | None = None,
    ) -> None:
        """Queue one finished turn (returns at once)."""
        if self._closed or not text.strip():
            return
        if self._task is None:
            self._task = self.jobs.spawn(self._run(), name=f"memory-{self.session_id}")
        self._queue.put_nowait(_Pending(role, text.strip(), started, ended, interrupted, latency))

    async def close(self) -> None:
        """Finish writing: queued turns, the last chunk, then LLM distillation (if any)."""
        if self._closed:
            return
        self._closed = True
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task

    async def discard(self) -> None:
        """Write nothing more ("forget me").

        Drops queued turns, skips the last chunk and the distillation, and returns once a write
        already under way has finished.
        """
        self._closed = self._discarded = True
        while not self._queue.empty():
            self._queue.get_nowait()
        if self._task is not None:
            self._queue.put_nowait(None)
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            try:
                await asyncio.to_thread(self._write, item)
                self.store.note_write(None)
            except Exception as e:  # a broken store must not take the conversation down
                self.store.note_write(e)  # memory health turns red, saying why
                logger.warning(f"[{self.session_id}] memory: could not store a turn: {e}")
        if self._discarded:
            return
        try:
            await asyncio.to_thread(self._write_chunks, True)
            if self.distiller and self.turns:
                await self._distill()
        except Exception as e:
            self.store.note_write(e)
            logger.warning(f"[{self.session_id}] memory: could not finish the session: {e}")

    def _write(self, item: _Pending) -> None:
        turn = self.store.add_turn(
            user_id=self.user_id,
            avatar_id=self.avatar_id,
            session_id=self.session_id,
            role=item.role,
            text=item.text,
            started=item.started,
            ended=item.ended,
            interrupted=item.interrupted,
            latency_json=json.dumps(item.latency) if item.latency else "",
        )
        self.turns.append(turn)
        if item.role == "user":
            self._user_run.append(turn)
            self._learn(self._user_run)
        else:
            self._user_run = []
        self._write_chunks(False)
        if self.recaller.stale:  # reload here, in the writer's thread, not in the next turn
            self.recaller.refresh_profile()

    def _learn(self, run: list[Turn]) -> None:
        facts = extract_facts(" ".join(t.text for t in run))
        if not facts:
            return
        name = next((f.value for f in facts if f.key == "name"), None) or self.recaller.name
        for fact in facts:
            change = self.store.upsert_card(
                user_id=self.user_id,
                text=fact.render(name),
                scope="user",
                key=fact.key,
                source_turn_ids=[t.id for t in run],
            )
            if change.action != "merged":
                # What people said about themselves goes to the log only at DEBUG.
                logger.debug(f"[{self.session_id}] memory: {change.action} {fact.render(name)!r}")

    def _write_chunks(self, final: bool) -> None:
        ranges = plan_chunks(len(self.turns), self._chunked, final=final, size=self.chunk_size)
        for start, end in ranges:
            self.store.add_chunk(
                user_id=self.user_id, turns=self.turns[start:end], avatar_name=self.avatar_name
            )
            self._chunked = max(self._chunked, end)

    async def _distill(self) -> None:
        assert self.distiller is not None
        async with self.jobs.llm_turn:  # one at a time, and only while nobody is talking
            idle = await self.jobs.until_idle(
                DISTILL_MAX_WAIT_SECS, give_up=lambda: self._discarded
            )
            if self._discarded:
                return
            if not idle:
                logger.info(f"[{self.session_id}] memory: room never idle; not distilled")
                return
            facts = await asyncio.to_thread(
                self.distiller.distill, self.turns, self.recaller.name, self.avatar_name
            )
        if self._discarded:  # forgotten while the LLM was thinking
            return
        for fact in facts:
            change = await asyncio.to_thread(
                self.store.upsert_card,
                user_id=self.user_id,
                text=fact.text,
                scope=fact.scope,
                avatar_id=self.avatar_id,
                source_turn_ids=fact.source_turn_ids,
            )
            logger.debug(f"[{self.session_id}] memory (LLM): {change.action} {fact.text!r}")
        if self.recaller.stale:
            await asyncio.to_thread(self.recaller.refresh_profile)
