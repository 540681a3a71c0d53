"""Long-term memory retrieval between the user aggregator and the LLM.

Consumes: ``LLMContextFrame`` (downstream). Emits: an ``LLMContextFrame`` over a *copy* of the
context carrying what the avatar remembers, as the model's profile wants it
(``memory.prompting``): for a capable model one extra system message, the memory block
(``memory.recall``), just before the person's latest turn; for a small one the facts inside
that turn and, when a fact answers the question, the start of the reply (an assistant
message the engine continues). Every other frame passes through unchanged.

Why a copy: the shared context is what the aggregators keep; writing memories into it would
pile a new block onto the history every turn (Pipecat's mem0 service does that). The copy
holds exactly one block, rebuilt each turn. Why before the latest turn and not at the top:
the local LLM server reuses its cache for the longest unchanged prefix of the prompt, so a
block that changes every turn must sit late, or the whole history is re-read each turn.

Latency: the search starts as soon as the STT has the final transcript (``prefetch``), while
smart-turn is still deciding whether the turn is over, so by the time the context arrives the
memories are usually ready and the turn waits 0 ms for them. If they are not ready within
``timeout_secs`` (a slow or broken store), the turn goes on without memories and a warning is
logged: memory is never worth a stalled conversation.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from memory.prompting import Profile, memory_messages, text_of
from memory.recall import Recaller, Recollection


class MemoryRetrieval(FrameProcessor):
    """Places what the avatar remembers about this person in front of each turn.

    Args:
        recaller: retrieval for this session's person and avatar.
        avatar_name: how the avatar is named inside the memory block.
        profile: how memories are put to the model (``memory.prompting``).
        timeout_secs: longest a turn waits for memories before going on without them.
    """

    def __init__(
        self,
        recaller: Recaller,
        *,
        avatar_name: str,
        profile: Profile = "capable",
        timeout_secs: float = 0.15,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.recaller = recaller
        self.avatar_name = avatar_name
        self.profile: Profile = profile
        self.prefill = ""
        """How this turn's reply was started ('' if it was not): ``AnswerPrefill`` reads it."""
        self.timeout_secs = timeout_secs
        self._prefetched: tuple[str, asyncio.Task] | None = None
        self.last: Recollection | None = None
        """What the last turn was given (for tests and the debug log)."""
        self.waited_ms: list[float] = []
        """How long each turn waited for its memories."""

    def prefetch(self, text: str) -> None:
        """Start searching for a transcript that is probably this turn's (non-blocking)."""
        self._prefetched = (text, self.create_task(self._search(text), "memory-prefetch"))

    async def _search(self, query: str) -> Recollection | None:
        try:
            return await asyncio.to_thread(self.recaller.recall, query)
        except Exception as e:
            logger.warning(f"{self}: memory search failed ({e}); going on without memories")
            return None

    async def _recall(self, query: str) -> Recollection | None:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched and prefetched[0].strip() == query.strip():
            task = prefetched[1]
        else:
            if prefetched:
                prefetched[1].cancel()  # a turn of several segments: search the whole of it
            task = self.create_task(self._search(query), "memory")
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout_secs)
        except TimeoutError:
            logger.warning(
                f"{self}: memory search took over {self.timeout_secs * 1000:.0f} ms;"
                " this turn goes on without memories"
            )
            return None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Add the memory block to each context on its way to the LLM."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and direction == FrameDirection.DOWNSTREAM:
            frame = await self._with_memories(frame)
        await self.push_frame(frame, direction)

    async def _with_memories(self, frame: LLMContextFrame) -> LLMContextFrame:
        # Chat messages are dicts (TypedDicts to the type checker); a provider-specific message
        # object is carried along untouched.
        messages = cast(list[dict], list(frame.context.get_messages()))
        last_user = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"),
            None,
        )
        self.prefill = ""
        if last_user is None:
            return frame
        start = time.perf_counter()
        found = await self._recall(text_of(last_user))
        self.waited_ms.append((time.perf_counter() - start) * 1000)
        self.last = found
        prompt = memory_messages(
            messages,
            found,
            avatar_name=self.avatar_name,
            profile=self.profile,
            name=self.recaller.name,
        )
        if prompt.messages == messages:
            return frame
        self.prefill = prompt.prefill
        if found:
            logger.debug(
                f"{self}: {len(found.cards)} cards, {len(found.chunks)} chunks, profile"
                f" {self.profile}, prefill {bool(prompt.prefill)} (search"
                f" {found.elapsed_ms:.0f} ms, waited {self.waited_ms[-1]:.0f} ms)"
            )
        context = LLMContext(
            messages=cast(list[LLMContextMessage], prompt.messages),
            tools=frame.context.tools,
            tool_choice=frame.context.tool_choice,
        )
        return LLMContextFrame(context=context, speculation=frame.speculation)
