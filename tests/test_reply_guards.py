"""What reaches the TTS: prompt text never does, and a prefilled reply always starts with its
prefix. The processors run in a real Pipecat worker (``run_test``), fed the frames the LLM
service emits; what the guard keeps out of the real graph is checked with speech in
``test_memory_e2e.py``."""

from __future__ import annotations

from pipecat.frames.frames import (
    AggregatedTextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.tests.utils import run_test

from bots.config import BUILTIN_AVATARS
from memory.prompting import FACTS_HEADER
from memory.recall import MEMORY_END, SCAFFOLDING
from processors.answer_prefill import AnswerPrefill
from processors.scaffolding_guard import ScaffoldingGuard, echoes_scaffolding, shingles

LUMINA = BUILTIN_AVATARS.load("lumina")
INSTRUCTIONS = (LUMINA.system_prompt(), *SCAFFOLDING, FACTS_HEADER)


def test_echoes_of_the_prompt_are_recognised_and_answers_are_not():
    known = shingles(INSTRUCTIONS)
    # What a user heard (the wording of an older memory block, too).
    assert echoes_scaffolding(
        "Use these facts when answering questions; don't mention having a memory unless asked.",
        known,
    )
    assert echoes_scaffolding(f"Bye now. {MEMORY_END}", known)
    assert echoes_scaffolding("Things they told you: the dog.", known)
    assert echoes_scaffolding("(What you know about me: You live in Boston.)", known)
    rule = LUMINA.system_prompt().splitlines()[-1].lstrip("- ")
    assert echoes_scaffolding(rule, known)
    for answer in (
        "You live in Boston, and I bet the harbour is lovely today.",
        "Your dog is called Biscuit!",
        "I remember you love jazz. Want a recommendation?",
        "I'm Lumina. What would you like to talk about?",
    ):
        assert not echoes_scaffolding(answer, known), answer


async def test_the_guard_drops_an_echo_and_the_rest_of_that_reply_only():
    guard = ScaffoldingGuard(INSTRUCTIONS)
    frames = [
        LLMFullResponseStartFrame(),
        AggregatedTextFrame("You live in Boston.", "sentence"),
        AggregatedTextFrame("Use these facts when they help answer;", "sentence"),
        AggregatedTextFrame("Anyway, how are you?", "sentence"),
        LLMFullResponseEndFrame(),
        LLMFullResponseStartFrame(),
        AggregatedTextFrame("Next reply is fine.", "sentence"),
        LLMFullResponseEndFrame(),
    ]
    down, _ = await run_test(
        guard,
        frames_to_send=frames,
        expected_down_frames=[
            LLMFullResponseStartFrame,
            AggregatedTextFrame,
            LLMFullResponseEndFrame,
            LLMFullResponseStartFrame,
            AggregatedTextFrame,
            LLMFullResponseEndFrame,
        ],
    )
    spoken = [f.text for f in down if isinstance(f, AggregatedTextFrame)]
    assert spoken == ["You live in Boston.", "Next reply is fine."]
    assert guard.dropped == ["Use these facts when they help answer;", "Anyway, how are you?"]


async def _prefilled(prefix: str, *deltas: str) -> str:
    down, _ = await run_test(
        AnswerPrefill(lambda: prefix),
        frames_to_send=[
            LLMFullResponseStartFrame(),
            *(LLMTextFrame(d) for d in deltas),
            LLMFullResponseEndFrame(),
        ],
    )
    return "".join(f.text for f in down if isinstance(f, LLMTextFrame))


async def test_a_prefilled_reply_starts_with_its_prefix_whichever_engine_streamed_it():
    prefix = "You live in Boston."
    # llama-server streams the prefix back (in one delta, or spread over several).
    assert await _prefilled(prefix, "You live in Boston. It", " is lovely.") == (
        "You live in Boston. It is lovely."
    )
    assert await _prefilled(prefix, "You live", " in Boston.", " Nice!") == (
        "You live in Boston. Nice!"
    )
    # Engines that stream only the continuation (Ollama's OpenAI API).
    assert await _prefilled(prefix, " It is", " lovely.") == "You live in Boston. It is lovely."
    assert await _prefilled(prefix, "It is lovely.") == "You live in Boston. It is lovely."
    # Nothing after the prefix, and no prefix at all.
    assert await _prefilled(prefix) == "You live in Boston."
    assert await _prefilled("", "Hello", " there.") == "Hello there."
