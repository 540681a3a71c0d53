r"""Keep the LLM's exact reply text, so the next turn reuses the LLM server's prompt cache.

The assistant aggregator rebuilds each reply from the words the TTS reports as spoken,
joined by single spaces: "Good question!\n\nThe sky..." comes back as "Good question! The
sky...". The LLM server's KV cache holds the tokens it generated, with the newlines, so on the
next turn the prompt no longer matches the cache from that point on, and the rest of the
reply (often 100+ tokens, ~1 s on 2 cores) is evaluated again before the first new token.
Putting the original spacing back into the context message makes the prompt a prefix match.

Consumes: ``LLMFullResponseStartFrame``, ``LLMTextFrame``, ``LLMFullResponseEndFrame`` (all
passed through unchanged). Emits nothing of its own.
"""

from __future__ import annotations

import re

from pipecat.frames.frames import (
    Frame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

_WORD = re.compile(r"\S+")


def exact_prefix(original: str, spoken: str) -> str | None:
    """The start of ``original`` holding exactly the words of ``spoken``, with its spacing.

    Returns None when ``spoken`` is not, word for word, the start of ``original``.
    """
    words = spoken.split()
    found = list(_WORD.finditer(original))
    if not words or len(found) < len(words):
        return None
    if any(m.group() != w for m, w in zip(found, words, strict=False)):
        return None
    return original[: found[len(words) - 1].end()]


class ReplyTextRecorder(FrameProcessor):
    """Records the text of the LLM's latest reply as generated (place right after the LLM)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reply = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Collect reply text; every frame passes through."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMFullResponseStartFrame):
            self.reply = ""
        elif isinstance(frame, LLMTextFrame):
            self.reply += frame.text
        await self.push_frame(frame, direction)

    def restore_spacing(self, context: LLMContext) -> None:
        """Give the context's last assistant message the reply's original spacing.

        Only whitespace changes: if the spoken words are not the start of the generated reply
        (a different reply, a tool call), the message is left as it is.
        """
        messages = context.get_messages()
        if not messages:
            return
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant":
            return
        content = last.get("content")
        if isinstance(content, str) and (exact := exact_prefix(self.reply, content)):
            last["content"] = exact
