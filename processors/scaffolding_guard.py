"""Never speak the prompt: drops reply text that echoes the avatar's instructions or memory.

A 135M model sometimes copies its prompt instead of answering: a user heard "...Use these facts
when answering questions; don't mention having a memory unless asked. [End of memory]".
Sits between the speech chunker (``LLMTextProcessor``) and the TTS, so it judges whole
clauses at no extra wait. A chunk is scaffolding when it carries one of the memory block's
markers or headers, or shares a run of ``NGRAM`` words with the instructions (the system
prompt, the memory block's wording, the facts header, the resume-after-noise prompt). Then
that chunk and the rest of the reply are dropped: a model that started reading its prompt
aloud does not come back to a good answer within the same reply. What is dropped is never
spoken, so it is not in the transcript, the context or the memory either (those record what
the TTS spoke).

Consumes: ``LLMFullResponseStartFrame``/``LLMFullResponseEndFrame`` (reply bounds) and
``AggregatedTextFrame`` (speech chunks), downstream. Emits: the same frames, minus the
dropped chunks. Everything else passes through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from loguru import logger
from pipecat.frames.frames import (
    AggregatedTextFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

NGRAM = 6
"""Words in a row shared with the instructions that make a chunk an echo. Five-word runs
of a persona ("a warm and curious companion") are things an avatar may say of itself."""

_MARKERS = re.compile(
    r"\[\s*(?:end of )?memory\b|\bend of memory\b|\bwhat you know about me\s*:"
    r"|^\W*(?:about them|things they told you|from a conversation[^:]{0,24})\s*:",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def shingles(texts: Iterable[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    """Every run of ``n`` words in ``texts``."""
    out: set[tuple[str, ...]] = set()
    for text in texts:
        words = _words(text)
        out.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return out


def echoes_scaffolding(text: str, instructions: set[tuple[str, ...]], n: int = NGRAM) -> bool:
    """Whether a chunk of reply carries a memory marker or ``n`` words of the instructions."""
    if _MARKERS.search(text):
        return True
    words = _words(text)
    return any(tuple(words[i : i + n]) in instructions for i in range(len(words) - n + 1))


class ScaffoldingGuard(FrameProcessor):
    """Drops speech chunks that echo the prompt, and the rest of that reply.

    Args:
        instructions: the texts never to be spoken (system prompt, memory wording...).
    """

    def __init__(self, instructions: Iterable[str], **kwargs):
        super().__init__(**kwargs)
        self._shingles = shingles(instructions)
        self._dropping = False
        self.dropped: list[str] = []
        """Every chunk kept from the TTS (for tests and the log)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass everything but the echoing chunks (and what follows them in the reply)."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, (LLMFullResponseStartFrame, InterruptionFrame)):
                self._dropping = False
            elif isinstance(frame, AggregatedTextFrame):
                if self._dropping or echoes_scaffolding(frame.text, self._shingles):
                    if not self._dropping:
                        logger.warning(f"{self}: the reply echoed its prompt; not spoken")
                    self._dropping = True
                    self.dropped.append(frame.text)
                    return
            elif isinstance(frame, LLMFullResponseEndFrame):
                self._dropping = False
        await self.push_frame(frame, direction)
