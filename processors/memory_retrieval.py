"""The memory-retrieval slot between the user aggregator and the LLM.

Long-term memory (LanceDB) has its own issue; until it lands this slot is an explicit
pass-through, so the graph already has the shape in DESIGN.md and the memory processor drops
in without touching ``bots/pipeline.py``'s order.

Consumes nothing; forwards every frame unchanged (``LLMContextFrame`` included).
"""

from __future__ import annotations

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class NoMemoryRetrieval(FrameProcessor):
    """Pass-through placeholder for memory retrieval (no memories are injected)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Forward every frame as is."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
