"""Keep a small model's replies short: at most ``max_sentences`` sentences are spoken.

The persona asks for "one to three short sentences"; the bundled 135M model ignores that and
rambles for its whole token budget (``bench/recall.py``: answers of five to eight sentences,
drifting away from the question and into invented facts). Each extra sentence is seconds of
the person waiting to speak and another chance to claim something wrong. Capable models keep
to the rule themselves and get no cap (``bots/session.py`` decides, from the prompt profile
and the avatar's ``llm.max_sentences``).

Sits between the speech chunker (``LLMTextProcessor``) and the TTS. What is cut is never
spoken, so it is not in the transcript or the context either (the next turn's prompt stays
short, and the model does not learn from its own rambling).

Consumes: ``LLMFullResponseStartFrame``/``LLMFullResponseEndFrame`` and ``InterruptionFrame``
(reply bounds) and ``AggregatedTextFrame`` (speech chunks), downstream. Emits: the chunks up
to the last allowed sentence's end. Everything else passes through.
"""

from __future__ import annotations

import re

from pipecat.frames.frames import (
    AggregatedTextFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

# A sentence ends at . ! ? (and … or runs of them) before a space or the end of the chunk;
# "Dr. Smith" costs a sentence, which errs on the short side.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"')\]]*(?=\s|$)")


def cut_after(text: str, sentences: int) -> tuple[str, int]:
    """``text`` up to its ``sentences``-th sentence end, and how many ends that kept."""
    ends = list(_SENTENCE_END.finditer(text))
    if len(ends) <= sentences:
        return text, len(ends)
    return text[: ends[sentences - 1].end()], sentences


class ReplyCap(FrameProcessor):
    """Drops what a reply says after its first ``max_sentences`` sentences.

    Args:
        max_sentences: sentences spoken per reply (at least 1).
    """

    def __init__(self, max_sentences: int, **kwargs):
        super().__init__(**kwargs)
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self._max = max_sentences
        self._left = max_sentences
        self._capped = False
        self.cut = 0
        """Replies cut short so far (for tests and the log)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Pass chunks while the reply has sentences left; then drop the rest of it."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, (LLMFullResponseStartFrame, InterruptionFrame)):
                self._left, self._capped = self._max, False
            elif isinstance(frame, AggregatedTextFrame):
                if self._left <= 0:
                    if not self._capped:
                        self._capped = True
                        self.cut += 1
                    return
                kept, ended = cut_after(frame.text, self._left)
                self._left -= ended
                if kept != frame.text:
                    frame.text = kept
                    # The context records ``raw_text`` (the LLM's words) as they are spoken: it
                    # must not keep what was taken out.
                    frame.raw_text = kept
                    self._capped = True
                    self.cut += 1
            elif isinstance(frame, LLMFullResponseEndFrame):
                self._left, self._capped = self._max, False
        await self.push_frame(frame, direction)
