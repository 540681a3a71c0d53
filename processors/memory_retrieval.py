"""Long-term memory retrieval between the user aggregator and the LLM.

Consumes: ``LLMContextFrame`` (downstream). Emits: an ``LLMContextFrame`` over a *copy* of the
context with one extra system message, the memory block (``memory.recall``), placed just
before the person's latest turn. Every other frame passes through unchanged.

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

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from memory.recall import Recaller, Recollection


def _text_of(message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class MemoryRetrieval(FrameProcessor):
    """Places what the avatar remembers about this person in front of each turn.

    Args:
        recaller: retrieval for this session's person and avatar.
        avatar_name: how the avatar is named inside the memory block.
        timeout_secs: longest a turn waits for memories before going on without them.
    """

    def __init__(
        self, recaller: Recaller, *, avatar_name: str, timeout_secs: float = 0.15, **kwargs
    ):
        super().__init__(**kwargs)
        self.recaller = recaller
        self.avatar_name = avatar_name
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
        messages = list(frame.context.get_messages())
        last_user = next(
            (
                i
                for i, m in reversed(list(enumerate(messages)))
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            None,
        )
        if last_user is None:
            return frame
        start = time.perf_counter()
        found = await self._recall(_text_of(messages[last_user]))
        self.waited_ms.append((time.perf_counter() - start) * 1000)
        self.last = found
        block = found.message(self.avatar_name) if found else ""
        if not found or not block:
            return frame
        logger.debug(
            f"{self}: {len(found.cards)} cards, {len(found.chunks)} chunks"
            f" (search {found.elapsed_ms:.0f} ms, waited {self.waited_ms[-1]:.0f} ms)"
        )
        messages.insert(last_user, {"role": "system", "content": block})
        context = LLMContext(
            messages=messages, tools=frame.context.tools, tool_choice=frame.context.tool_choice
        )
        return LLMContextFrame(context=context, speculation=frame.speculation)
