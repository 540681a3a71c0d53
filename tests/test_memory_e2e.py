"""Told in one session, recalled in the next: the whole voice graph, spoken to with Piper speech.

Session 1: the person says their name and "My dog is called Biscuit", then leaves. Session 2
(a new graph, same person and avatar): the avatar greets them by name and, asked "What is my
dog called?", gets the fact with the question it answers (the default 135M model's profile,
``memory.prompting``) and **says** it: its played audio, transcribed, names the dog, and
carries no prompt text.
"""

from __future__ import annotations

import asyncio

import pytest
from loguru import logger
from pipecat.frames.frames import LLMContextFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed

from bots.config import BUILTIN_AVATARS
from bots.runtime import Runtime
from bots.session import VoiceSession
from memory.distill import Distiller
from memory.prompting import FACTS_HEADER
from memory.recall import MEMORY_BEGIN, SCAFFOLDING
from memory.store import MemoryStore
from processors.scaffolding_guard import echoes_scaffolding, shingles
from testkit.harness import ScriptedTransport
from testkit.heard import carries, transcribe_played
from testkit.net import wait_for
from testkit.speech import piper_say

pytestmark = pytest.mark.slow


class ContextsToLLM(BaseObserver):
    """Every context handed to the LLM service, as the messages it was given."""

    def __init__(self, llm):
        super().__init__()
        self.llm = llm
        self.sent: list[list[dict]] = []
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed):
        if (
            isinstance(data.frame, LLMContextFrame)
            and data.destination is self.llm
            and data.frame.id not in self._seen
        ):
            self._seen.add(data.frame.id)
            self.sent.append([dict(m) for m in data.frame.context.get_messages()])


async def run_session(runtime: Runtime, backend, session_id: str):
    session = VoiceSession(
        BUILTIN_AVATARS.load("lumina"),
        ScriptedTransport,
        runtime,
        backend=backend,
        session_id=session_id,
        user_id="biscuit-owner",
        greet=False,
        idle_timeout_secs=None,
    )
    contexts = ContextsToLLM(session.graph.llm)
    session.worker.add_observer(contexts)
    await session.prepare()
    task = asyncio.create_task(session.run())
    await asyncio.sleep(1.5)  # pipeline start + VAD settling on silence
    assert isinstance(session.transport, ScriptedTransport)
    return session, session.transport, contexts, task


async def tell(session: VoiceSession, transport: ScriptedTransport, text: str) -> str:
    """Say ``text`` and wait until the avatar has answered; returns the answer."""
    answered = len(session.turns.turns("assistant"))
    await transport.mic.say(piper_say(text))
    replies = await wait_for(
        lambda: session.turns.turns("assistant")[answered:],
        60,  # the whole reply is spoken before it counts as a turn
        f"an answer to {text!r}",
    )
    return replies[0].text


async def end(session: VoiceSession, task: asyncio.Task) -> None:
    await session.worker.cancel()
    await asyncio.wait_for(task, 20)
    await session.finish()


async def test_a_fact_told_in_one_session_is_recalled_in_the_next(
    tmp_path, runtime, llm_backend, embedder
):
    store = MemoryStore(str(tmp_path / "memory"), embedder)
    # A process of its own on that store (as a restarted server would be), same models.
    runtime = Runtime(runtime.settings, models=runtime.models, memory=store)

    session, transport, _, task = await run_session(runtime, llm_backend, "first")
    await tell(session, transport, "Hi, my name is Sarah.")
    await tell(session, transport, "My dog is called Biscuit.")
    await end(session, task)

    heard = [t.text for t in store.conversation("biscuit-owner", "first") if t.role == "user"]
    assert any("biscuit" in h.lower() for h in heard), f"transcribed {heard}"
    cards = {c.text for c in store.list_cards("biscuit-owner", "lumina")}
    assert "Sarah's dog is called Biscuit." in cards, cards
    # The LLM's end-of-session distillation, on the real server: whatever the small model
    # says, only lines grounded in Sarah's own words come back.
    said = store.conversation("biscuit-owner", "first")
    distilled = await asyncio.to_thread(
        Distiller(llm_backend.base_url, llm_backend.model).distill, said, "Sarah", "Lumina"
    )
    logger.info(f"distilled: {[f.text for f in distilled]}")
    user_words = " ".join(t.text.lower() for t in said if t.role == "user")
    for fact in distilled:
        assert fact.source_turn_ids and any(w in user_words for w in fact.text.lower().split())

    session, transport, contexts, task = await run_session(runtime, llm_backend, "second")
    try:
        assert session.memory and session.memory.name == "Sarah"
        await session.greet()
        greeting = await wait_for(lambda: session.turns.turns("assistant"), 20, "the greeting")
        assert "Sarah" in greeting[0].text
        await wait_for(lambda: transport.silent_for(1.0), 30, "the greeting to end")
        heard_from = len(transport.speaker.heard)
        reply = await tell(session, transport, "What is my dog called?")
    finally:
        await end(session, task)

    # Found by what the STT heard ("What's my dog called?" on some CPUs), not by the script.
    question = session.turns.turns("user")[-1].text
    assert "dog" in question.lower(), f"the question was heard as {question!r}"
    asked = [m for m in contexts.sent if m and question in str(m)]
    assert asked, f"the question, heard as {question!r}, reached the LLM"
    turn = [m for m in asked[-1] if m["role"] == "user"][-1]["content"]
    assert "Your dog is called Biscuit." in turn, "the fact is told with the question"
    assert asked[-1][-1] == {"role": "assistant", "content": "Your dog is called Biscuit."}
    assert not any(str(m.get("content", "")).startswith(MEMORY_BEGIN) for m in asked[-1])
    # The first session's conversation was restored into the second's context too.
    restored = [str(m.get("content")).lower() for m in asked[-1] if m["role"] == "user"]
    assert sum("biscuit" in m for m in restored) >= 2
    # What the person heard: the avatar's audio, transcribed.
    said = transcribe_played(runtime.models.transcriber(), transport.speaker.heard[heard_from:])
    logger.info(f"asked 'What is my dog called?', the avatar said {reply!r}, heard as {said!r}")
    assert carries(said, ["biscuit", "biskit", "bizkit"]), f"heard {said!r}"
    instructions = shingles((session.avatar.system_prompt(), *SCAFFOLDING, FACTS_HEADER))
    assert not echoes_scaffolding(said, instructions) and "memory" not in said.lower()
    # The kept context has the person's words as said, not the facts added for the request.
    kept = [m for m in session.context.get_messages() if m.get("role") == "user"]
    assert not any(FACTS_HEADER in str(m.get("content")) for m in kept)
