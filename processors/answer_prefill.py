"""Speak the start of a prefilled reply when the LLM engine streams only what follows it.

When the memory retrieval starts the reply with a fact (``memory.prompting.prefill``: the
request ends with an assistant message "You live in Boston."), llama-server streams the
prefix back as the start of its reply, but other engines (Ollama's OpenAI API among them)
stream only the continuation. This processor, right after the LLM, makes both sound the
same: it holds the reply's first text until it can tell whether the prefix is there, and
says the prefix first when it is not. With llama-server the prefix arrives in the first
delta, so nothing waits.

Consumes: ``LLMFullResponseStartFrame``, ``LLMTextFrame``, ``LLMFullResponseEndFrame``,
``InterruptionFrame`` (downstream). Emits: the same, with one ``LLMTextFrame`` carrying the
prefix added before the reply's text when the engine left it out.
"""

from __future__ import annotations

from collections.abc import Callable

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class AnswerPrefill(FrameProcessor):
    """Makes every reply begin with its prefill, whichever engine generated it.

    Args:
        prefill: returns the prefix the current request was given ('' for none).
    """

    def __init__(self, prefill: Callable[[], str], **kwargs):
        super().__init__(**kwargs)
        self._prefill = prefill
        self._pending = ""
        self._held = ""

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hold the first text of a prefilled reply until the prefix is known to be in it."""
        await super().process_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
            return
        if isinstance(frame, LLMFullResponseStartFrame):
            self._pending, self._held = self._prefill().strip(), ""
        elif isinstance(frame, InterruptionFrame):
            self._pending = self._held = ""
        elif isinstance(frame, LLMTextFrame) and self._pending:
            self._held += frame.text
            if self._pending.startswith(self._held.lstrip()):
                return  # so far exactly the prefix: it may be coming back; wait for more
            await self._release()
            return
        elif isinstance(frame, LLMFullResponseEndFrame) and self._pending:
            await self._release()
        await self.push_frame(frame, direction)

    async def _release(self) -> None:
        """Push the held text, the prefix first if the engine left it out."""
        held, pending = self._held, self._pending
        start = held.lstrip()
        if start.startswith(pending):
            text = held
        elif pending.startswith(start):  # the reply ended inside the prefix
            text = pending
        else:
            text = pending + ("" if held[:1].isspace() else " ") + held
        self._pending = self._held = ""
        await self.push_frame(LLMTextFrame(text))
