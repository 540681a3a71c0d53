"""Feelings out of the words: emotion tags are taken out of the reply and sent as face cues.

Sits right after the speech chunker (``LLMTextProcessor``), before anything that records or
speaks text, so a ``[happy]`` is never spoken, shown or stored: the TTS, the transcript and
the context only ever see the cleaned chunk. Each chunk with a feeling is preceded by an
``ExpressionCuesFrame`` naming the word the feeling starts at; the TTS times it on that word's
audio. A reply with no tags at all gets its feelings from the lexicon
(``processors.expressions.classify``), one per chunk that shows one.

Consumes: ``AggregatedTextFrame`` (speech chunks), ``TTSSpeakFrame`` (greetings, apologies),
``LLMFullResponseStartFrame``/``InterruptionFrame`` (reply bounds), downstream.
Emits: ``ExpressionCuesFrame`` before a chunk that shows a feeling; the chunk without its
tags (a chunk that was only tags is dropped, its feeling carried to the next one). Everything
else passes through.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    AggregatedTextFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    TTSSpeakFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.expressions import classify, strip_tags
from processors.face_frames import ExpressionCuesFrame


class EmotionTagFilter(FrameProcessor):
    """Strips emotion tags from speech chunks and turns them (or the lexicon's guess) into cues."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._reset()

    def _reset(self) -> None:
        self._tagged = False  # this reply has tags: the lexicon stays out of it
        self._shown: str | None = None  # the feeling the face shows now, as far as we know
        self._carried: str | None = None  # a tag that stood alone, for the next chunk

    def cues_for(self, text: str) -> tuple[str, list[tuple[int, str, float]]]:
        """``text`` without tags, and the feelings to show while it is spoken."""
        clean, tags = strip_tags(text)
        cues: list[tuple[int, str, float]] = []
        if self._carried:
            cues.append((0, self._carried, 1.0))
            self._carried = None
        if tags:
            self._tagged = True
            words = len(clean.split())
            for index, emotion in tags:
                if index >= words:  # a tag after the last word colours what comes next
                    self._carried = emotion
                else:
                    cues.append((index, emotion, 1.0))
        elif not self._tagged and clean:
            guess = classify(clean)
            if guess and guess[0] != self._shown:
                cues.append((0, guess[0], guess[1]))
        if cues:
            self._shown = cues[-1][1]
        return clean, cues

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Clean chunks downstream and put their cues before them."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, (LLMFullResponseStartFrame, InterruptionFrame)):
                self._reset()
            elif isinstance(frame, (AggregatedTextFrame, TTSSpeakFrame)):
                if isinstance(frame, TTSSpeakFrame):
                    self._reset()  # said on its own, not part of a reply
                clean, cues = self.cues_for(frame.text)
                if not clean:
                    return  # only tags: nothing to say
                frame.text = clean
                if isinstance(frame, AggregatedTextFrame):
                    # The context records ``raw_text`` (the LLM's words) as they are spoken: it
                    # must not keep what was taken out.
                    frame.raw_text = clean
                if cues:
                    await self.push_frame(ExpressionCuesFrame(text=clean, cues=cues), direction)
        await self.push_frame(frame, direction)
