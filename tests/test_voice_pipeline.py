"""The whole voice graph on real models, driven by synthesized speech in real time.

Real Silero VAD + smart-turn, whisper.cpp, the embedded llama.cpp server and Piper: the only
stand-ins are the microphone and the speaker (tests/harness.py), which play and record audio
at real-time pace like a sound card.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from pipecat.frames.frames import (
    InterruptionFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

from bots.config import BUILTIN_AVATARS
from bots.session import VoiceSession
from testkit.harness import ScriptedTransport
from testkit.heard import transcribe_played
from testkit.net import wait_for
from testkit.speech import piper_say, trim_silence
from testkit.wer import wer

pytestmark = pytest.mark.slow


class WorkLog(BaseObserver):
    """When the LLM produced tokens and TTS produced audio, and when interruptions happened."""

    KINDS = (InterruptionFrame, LLMFullResponseStartFrame, LLMTextFrame, TTSAudioRawFrame)

    def __init__(self):
        super().__init__()
        self.events: list[tuple[float, str]] = []
        self._seen: set[int] = set()

    async def on_push_frame(self, data: FramePushed):
        frame = data.frame
        if isinstance(frame, self.KINDS) and frame.id not in self._seen:
            self._seen.add(frame.id)
            self.events.append((time.time(), type(frame).__name__))


class Running:
    """A session running on the scripted transport."""

    def __init__(self, session: VoiceSession):
        self.session = session
        assert isinstance(session.transport, ScriptedTransport)
        self.transport = session.transport
        self.work = WorkLog()
        session.worker.add_observer(self.work)
        self.task = asyncio.create_task(session.run())

    def turns(self, role: str) -> list:
        return self.session.turns.turns(role)

    async def stop(self):
        await self.session.worker.cancel()
        await asyncio.wait_for(self.task, 20)


@pytest.fixture
async def lumina(runtime, llm_backend):
    session = VoiceSession(
        BUILTIN_AVATARS.load("lumina"),
        ScriptedTransport,
        runtime,
        backend=llm_backend,
        user_id=f"pipeline-test-{time.monotonic_ns()}",  # a stranger: nothing to restore
        greet=False,
        idle_timeout_secs=None,
    )
    running = Running(session)
    await asyncio.sleep(1.5)  # pipeline start + VAD settling on silence
    yield running
    await running.stop()


async def test_spoken_question_is_transcribed_and_answered_out_loud(lumina: Running):
    question = "What is the capital city of France?"
    await lumina.transport.mic.say(piper_say(question))
    spoke_at = lumina.transport.mic.speech_ended_at

    voiced = await wait_for(
        lambda: lumina.transport.voiced(since=spoke_at), 15, "the bot to answer out loud"
    )
    first_audio_after = voiced[0].at - spoke_at
    # An 80-token reply is ~30 s of speech, and it only counts as a turn once fully spoken.
    await wait_for(lambda: lumina.turns("assistant"), 60, "the bot to finish its answer")

    heard = lumina.turns("user")[0].text
    assert wer(question, heard) <= 0.2, f"transcribed {heard!r}"
    answer = lumina.turns("assistant")[0]
    assert answer.text.strip() and not answer.interrupted
    bot_speech = sum(c.duration for c in lumina.transport.voiced(since=spoke_at))
    assert bot_speech > 0.5, f"only {bot_speech:.2f}s of audible bot speech"
    assert first_audio_after < 10
    assert lumina.session.latency.turns, "a latency breakdown is logged for the turn"


async def test_a_pause_mid_sentence_gets_one_answer_to_the_whole_sentence(lumina: Running):
    """Preemptive replies (processors.preemptive_turn): one may start at the pause, but none
    is heard; the one answer is to the whole sentence."""
    first, rest = "Could you tell me the name of", "the largest planet in our solar system?"
    pause = np.zeros(int(0.4 * 16000), dtype=np.int16)
    started = time.time()
    await lumina.transport.mic.say(
        np.concatenate([trim_silence(piper_say(first)), pause, trim_silence(piper_say(rest))])
    )
    spoke_at = lumina.transport.mic.speech_ended_at
    await wait_for(lambda: lumina.turns("assistant"), 60, "the bot to finish its answer")
    await asyncio.sleep(1.0)  # nothing else follows

    whole = f"{first} {rest}"
    [user] = lumina.turns("user")
    assert wer(whole, user.text) <= 0.25, f"transcribed {user.text!r}"
    [answer] = lumina.turns("assistant")
    assert answer.text.strip() and not answer.interrupted
    asked = [m["content"] for m in lumina.session.context.get_messages() if m["role"] == "user"]
    assert asked == [user.text]
    # Nothing was heard before the person finished, and what was heard is the one answer.
    early = [round(c.at - spoke_at, 2) for c in lumina.transport.voiced(since=started)]
    early = [t for t in early if t < 0]
    assert not early, f"bot audio {early[:5]} s before the person finished"
    heard = transcribe_played(
        lumina.session.runtime.models.transcriber(), lumina.transport.voiced(since=spoke_at)
    )
    # Another reply (to half the sentence) would share almost no words with this one; 0.5
    # leaves room for what whisper tiny makes of the small model's numbers and dashes.
    assert wer(answer.text, heard) <= 0.5, f"heard {heard!r}, recorded {answer.text!r}"
    print(f"preemption: {lumina.session.preemption}")


async def test_talking_over_the_bot_stops_its_audio_and_keeps_only_what_was_heard(
    lumina: Running,
):
    transport = lumina.transport
    await transport.mic.say(
        piper_say("Please tell me a long story about a dragon who lives in the mountains.")
    )
    # Wait until the bot has been talking for a good second.
    await wait_for(
        lambda: len(transport.voiced(since=transport.mic.speech_ended_at)) > 50,
        15,
        "the bot to be well into its story",
    )
    interruption = piper_say("Hold on a moment. I want to ask you something else.")
    barge = asyncio.create_task(transport.mic.say(interruption))
    await wait_for(lambda: transport.mic.speech_started_at and not barge.done(), 2, "barge-in")
    started = time.time()
    await barge
    ended = transport.mic.speech_ended_at

    # The bot's audio stops while the person is still talking (gross bound; see bench/).
    still_talking = [c for c in transport.voiced(since=started + 1.2) if c.at < ended]
    assert not still_talking, f"bot audio kept playing {len(still_talking)} chunks after 1.2s"
    stop_at = max((c.at for c in transport.voiced(since=started - 0.5) if c.at < ended), default=0)
    assert stop_at - started < 1.2

    # Generation is cancelled: between the interruption and the next reply's start, the old
    # reply produces no more LLM tokens or TTS audio (a small allowance for frames in flight).
    events = lumina.work.events
    cut = next(t for t, kind in events if kind == "InterruptionFrame" and t >= started)
    next_reply = next(
        (t for t, kind in events if kind == "LLMFullResponseStartFrame" and t > cut), time.time()
    )
    leftovers = [k for t, k in events if cut + 0.3 < t < next_reply and k != "InterruptionFrame"]
    assert not leftovers, f"work continued after the interruption: {leftovers[:5]}"

    story = await wait_for(lambda: lumina.turns("assistant"), 5, "the story to be recorded")
    assert story[0].interrupted, "the interrupted reply is flagged"
    heard_words = len(story[0].text.split())
    assert heard_words >= 1
    # What the person said over the bot is transcribed (maybe as two turns, split at the
    # pause after "please") and answered afterwards.
    expected = "hold on a moment i want to ask you something else"

    def said() -> str:
        return " ".join(t.text for t in lumina.turns("user")[1:])

    await wait_for(lambda: wer(expected, said()) < 0.5, 20, f"{expected!r} to be transcribed")
    await wait_for(
        lambda: transport.voiced(since=ended + 0.3), 20, "a spoken answer to the new question"
    )


async def test_instructions_added_mid_talk_reach_the_local_llm(llm_backend):
    # Pipecat adds some instructions as "developer" messages (e.g. resume after a noise cut
    # the bot off); the embedded server rejected that role with a 500, so the bot went silent.
    import httpx
    from pipecat.processors.aggregators.llm_context import LLMContext

    from bots.pipeline import RESUME_AFTER_NOISE_PROMPT, build_llm

    lumina = BUILTIN_AVATARS.load("lumina")
    llm = build_llm(lumina, llm_backend)
    context = LLMContext(
        messages=[
            {"role": "user", "content": "Tell me about the sea."},
            {"role": "assistant", "content": "The sea covers most of"},
            {"role": "developer", "content": RESUME_AFTER_NOISE_PROMPT},
        ]
    )
    params = await llm.get_llm_adapter().get_llm_invocation_params(
        context,
        system_instruction=lumina.system_prompt(),
        convert_developer_to_user=not llm.supports_developer_role,
    )
    async with httpx.AsyncClient(timeout=60) as http:
        resp = await http.post(
            f"{llm_backend.base_url}/chat/completions",
            json={"model": llm_backend.model, "messages": params["messages"], "max_tokens": 8},
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"].strip()
