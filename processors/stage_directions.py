"""Speak the words, not the markup: strips roleplay actions, markdown and emoji from replies.

Small models write like chat roleplay: "*smiling warmly* Welcome back!". Piper reads that
as "asterisk smiling warmly asterisk welcome back", which a user heard in the recall bench.
The persona asks for no stage directions; this makes sure none are spoken whatever the model
does. A single-asterisk span (``*waves*``) is an action and is dropped with its words, even
when it runs across speech chunks; a double-asterisk span (``**really**``) is emphasis and
keeps its words; ``_x_``, backticks, headings and list bullets lose their marks; emoji go. A
lone ``*`` between spaces is read as "times". A chunk left with no words is not sent at all.

Sits between the speech chunker (``LLMTextProcessor``) and the TTS, so the transcript and
the context (which record what the TTS spoke) hold the cleaned text too.

Consumes: ``LLMFullResponseStartFrame``/``LLMFullResponseEndFrame`` and ``InterruptionFrame``
(reply bounds) and ``AggregatedTextFrame`` (speech chunks), downstream. Emits: the chunks with
their markup removed, minus empty ones. Everything else passes through.
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

_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\u200d\ufe0f\u2b50\u2b55]"
)
_MARKS = re.compile(r"(?m)^\s{0,3}(?:#{1,6}\s+|[-+•]\s+|\d+[.)]\s+)|`+|(?<!\w)_+|_+(?!\w)|~~")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_SPOKEN = re.compile(r"[^\W_]")


class StageDirectionState:
    """Action spans across the chunks of one reply (an action may hold a comma or a stop)."""

    def __init__(self) -> None:
        self.in_action = False

    def clean(self, text: str) -> str:
        """``text`` without actions, markup or emoji; '' when nothing speakable is left."""
        text = text.replace("**", "")  # emphasis: keep the words
        out: list[str] = []
        for i, ch in enumerate(text):
            if ch != "*":
                if not self.in_action:
                    out.append(ch)
                continue
            before = text[i - 1] if i else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            if not self.in_action and before.isspace() and after.isspace():
                out.append("times")  # "3 * 4"
            else:
                self.in_action = not self.in_action
                out.append(" ")
        spoken = _MARKS.sub("", _EMOJI.sub("", "".join(out)))
        spoken = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACE.sub(" ", spoken)).strip()
        spoken = spoken.lstrip(",;: ")
        return spoken if _SPOKEN.search(spoken) else ""


class StageDirectionFilter(FrameProcessor):
    """Removes roleplay actions, markdown and emoji from speech chunks before the TTS."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._state = StageDirectionState()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Clean each speech chunk; drop those with nothing left to say."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(
                frame, (LLMFullResponseStartFrame, LLMFullResponseEndFrame, InterruptionFrame)
            ):
                self._state = StageDirectionState()
            elif isinstance(frame, AggregatedTextFrame):
                spoken = self._state.clean(frame.text)
                if not spoken:
                    return
                frame.text = spoken
                # The context records ``raw_text`` (the LLM's words) as they are spoken: it
                # must not keep what was taken out.
                frame.raw_text = spoken
        await self.push_frame(frame, direction)
