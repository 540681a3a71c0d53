"""What reaches the TTS: prompt text never does, a prefilled reply always starts with its
prefix, actions and markup are not read out, and a small model's reply ends after three
sentences. The processors run in a real Pipecat worker (``run_test``), fed the frames the LLM
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
from bots.session import SMALL_MODEL_SENTENCES, sentence_cap
from memory.prompting import FACTS_HEADER
from memory.recall import MEMORY_END, SCAFFOLDING
from processors.answer_prefill import AnswerPrefill
from processors.reply_cap import ReplyCap, cut_after
from processors.scaffolding_guard import ScaffoldingGuard, echoes_scaffolding, shingles
from processors.stage_directions import StageDirectionFilter, StageDirectionState

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


async def _chunks_through(processor, *replies: list[str]) -> list[list[str]]:
    frames = []
    for chunks in replies:
        frames += [LLMFullResponseStartFrame()]
        frames += [AggregatedTextFrame(c, "sentence") for c in chunks]
        frames += [LLMFullResponseEndFrame()]
    down, _ = await run_test(processor, frames_to_send=frames)
    spoken: list[list[str]] = []
    for f in down:
        if isinstance(f, LLMFullResponseStartFrame):
            spoken.append([])
        elif isinstance(f, AggregatedTextFrame):
            spoken[-1].append(f.text)
    return spoken


def test_actions_markdown_and_emoji_are_not_read_aloud_but_the_words_are():
    def clean(*chunks: str) -> list[str]:
        state = StageDirectionState()
        return [state.clean(c) for c in chunks]

    # What the recall bench heard as "Asterisk smiling warmly asterisk, you can order...".
    assert clean("*smiling warmly* You can order from the menu.") == [
        "You can order from the menu."
    ]
    assert clean("Welcome back! *waves*") == ["Welcome back!"]
    # An action over several speech chunks (the chunker cuts at commas and stops).
    assert clean("Hello, *glancing around,", "then at you.* Nice to see you.") == [
        "Hello,",
        "Nice to see you.",
    ]
    assert clean("I **really** love jazz 🎷!") == ["I really love jazz!"]
    assert clean("## Tips", "- Drink `water`.", "Try _this_ one.") == [
        "Tips",
        "Drink water.",
        "Try this one.",
    ]
    assert clean("Three * four is twelve.") == ["Three times four is twelve."]
    assert clean("*smiles*") == [""]  # nothing to say: the chunk is not sent


async def test_a_chunk_that_was_only_an_action_never_reaches_the_tts():
    spoken = await _chunks_through(
        StageDirectionFilter(),
        ["*smiles warmly*", "Hi Sam, *nods* good to see you."],
        ["Plain reply."],
    )
    assert spoken == [["Hi Sam, good to see you."], ["Plain reply."]]


def test_a_cut_keeps_whole_sentences():
    assert cut_after("One. Two! Three? Four.", 2) == ("One. Two!", 2)
    assert cut_after("No end yet,", 2) == ("No end yet,", 0)
    assert cut_after('He said "stop." Then left.', 1) == ('He said "stop."', 1)


async def test_a_capped_reply_stops_after_its_third_sentence_and_the_next_reply_starts_over():
    cap = ReplyCap(3)
    spoken = await _chunks_through(
        cap,
        # First clause, then sentences, as the chunker releases them.
        ["Oh,", "how lovely. You live in Boston.", "The harbour is nice.", "I once went."],
        ["A short one.", "Two."],
    )
    assert spoken == [
        ["Oh,", "how lovely. You live in Boston.", "The harbour is nice."],
        ["A short one.", "Two."],
    ]
    assert cap.cut == 1


def test_small_models_are_capped_and_capable_ones_only_when_the_avatar_says_so():
    assert sentence_cap(LUMINA, "small") == SMALL_MODEL_SENTENCES
    assert sentence_cap(LUMINA, "capable") is None
    chatty = LUMINA.model_copy(update={"llm": LUMINA.llm.model_copy(update={"max_sentences": 0})})
    assert sentence_cap(chatty, "small") is None
    terse = LUMINA.model_copy(update={"llm": LUMINA.llm.model_copy(update={"max_sentences": 1})})
    assert sentence_cap(terse, "capable") == 1
