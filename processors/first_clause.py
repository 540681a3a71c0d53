"""Speak the first clause of a reply as soon as it exists, then whole sentences.

Piper synthesizes a whole chunk before yielding any audio, so time-to-first-audio grows with
the first chunk's length: a 20-word opening sentence costs ~0.6-0.9 s on 2 cores, a 4-word
clause ~0.1-0.2 s. This aggregator releases a reply's first chunk at the first clause boundary
(",", ";", ":", a dash) once it has ``min_words`` words, or at ``max_words`` words at the
latest; after that it behaves like Pipecat's sentence aggregator. Later sentences are
synthesized while the first clause plays, so the reply flows without gaps.

Used through Pipecat's ``LLMTextProcessor`` between the LLM and TTS (see bots/pipeline.py):
it consumes ``LLMTextFrame``s and emits ``AggregatedTextFrame``s.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

_CLAUSE_ENDS = (",", ";", ":", "—", " -")
# A cut right after these sounds broken ("a dragon lived in the | mountains").
_NO_CUT_AFTER = frozenset(
    "a an the of to in on at by for with from and or but if that which who my your his her "
    "its our their this these those is are was were be been very so as than".split()
)


_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def _sentence_ends_soon(known: str, words: int = 3) -> bool:
    """Whether text already in hand ends the sentence within ``words`` more words.

    A prefilled answer ("Your dog is called Biscuit.", ``processors.answer_prefill``) comes
    in one piece: cutting it after "called" gains nothing (the rest is not awaited) and makes
    Piper say "Biscuit." on its own, which even whisper then hears as "Cole, this it".
    """
    end = _SENTENCE_END.search(known)
    return end is not None and len(known[: end.start()].split()) <= words


class FirstClauseTextAggregator(SimpleTextAggregator):
    """Sentence aggregation, except that each reply's first chunk may be a clause.

    Args:
        min_words: a clause boundary releases the first chunk only after this many words.
        max_words: with no boundary, the first chunk is released at this many words (or a
            few more, so that it doesn't end on "the" or "of"). Piper alone takes ~110 ms
            for four words on 2 cores, ~140 ms for six, ~240 ms for ten; while the LLM
            streams, about twice that.
    """

    def __init__(self, *, min_words: int = 2, max_words: int = 4, **kwargs):
        super().__init__(**kwargs)
        self._min_words = min_words
        self._max_words = max_words
        self._first_done = False

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        """Aggregate streamed text; see the module docstring for where it cuts."""
        if self._first_done or self._aggregation_type == TextType.TOKEN:
            async for aggregation in super().aggregate(text):
                yield aggregation
            return
        for i, char in enumerate(text):
            async for aggregation in super().aggregate(char):
                # A whole sentence ended first: the normal path takes over from here.
                self._first_done = True
                yield aggregation
            if (
                not self._first_done
                and char.isspace()
                and self._first_chunk_ready()
                and not _sentence_ends_soon(text[i + 1 :])
            ):
                chunk = self._text.strip()
                await super().reset()
                self._first_done = True
                yield Aggregation(text=chunk, type=TextType.SENTENCE)

    def _first_chunk_ready(self) -> bool:
        before = self._text.rstrip()
        words = before.split()
        if len(words) >= self._min_words and before.endswith(_CLAUSE_ENDS):
            return True
        if len(words) >= self._max_words + 3:
            return True
        return len(words) >= self._max_words and words[-1].lower() not in _NO_CUT_AFTER

    async def flush(self) -> Aggregation | None:
        """End of a reply: the next reply starts with a clause again."""
        self._first_done = False
        return await super().flush()

    async def handle_interruption(self):
        """Interrupted: drop the buffer; the next reply starts with a clause again."""
        self._first_done = False
        await super().handle_interruption()

    async def reset(self):
        """Clear everything, including the first-chunk state."""
        self._first_done = False
        await super().reset()
