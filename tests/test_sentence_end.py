"""The engine reads a transcript for a sentence end (bots.sentence_end), on the real model."""

from __future__ import annotations

import pytest

from bots.sentence_end import FINISHED, UNFINISHED, SentenceEndScorer, end_probability, verdict

# Sentences the bench's smart-turn calls incomplete, and others; none are the bench's texts
# in this form (whisper's final punctuation is dropped before reading either way).
FINISHED_SENTENCES = [
    "Tell me a joke about computers.",
    "Please book a table for two at eight tonight.",
    "What is the weather usually like in Scotland in October?",
    "Where are you from?",
    "Do you remember my name?",
]
CUT_OFF = [
    "Could you tell me the name of",
    "I was wondering if you could recommend",
    "What do you think is the best way to",
    "Can you help me with",
    "I went to the shop and",
    "My favourite colour is",
]


@pytest.mark.slow
async def test_finished_sentences_read_as_finished_and_cut_off_words_as_unfinished(llm_backend):
    scorer = SentenceEndScorer(
        llm_backend.base_url, slot=llm_backend.background_slot, timeout_secs=5.0
    )
    try:
        finished = {t: await scorer.score(t) for t in FINISHED_SENTENCES}
        cut = {t: await scorer.score(t) for t in CUT_OFF}
    finally:
        await scorer.close()
    assert all(verdict(p) == "finished" for p in finished.values()), finished
    assert all(verdict(p) == "unfinished" for p in cut.values()), cut


async def test_an_engine_that_is_down_gives_no_answer_and_the_turn_goes_on_without_it():
    scorer = SentenceEndScorer("http://127.0.0.1:9/v1", slot=None, timeout_secs=0.5)
    try:
        assert await scorer.check("Tell me a joke.") is None
    finally:
        await scorer.close()


def test_the_end_probability_counts_end_punctuation_and_end_of_message_tokens():
    import math

    top = [
        {"token": "?", "logprob": math.log(0.5)},
        {"token": "<|im_end|>", "logprob": math.log(0.1)},
        {"token": " and", "logprob": math.log(0.3)},
        {"token": ",", "logprob": math.log(0.05)},
    ]
    assert end_probability(top) == pytest.approx(0.6)
    assert verdict(None) is None
    assert verdict(FINISHED) == "finished"
    assert verdict(UNFINISHED / 2) == "unfinished"
    assert verdict((FINISHED + UNFINISHED) / 2) is None
