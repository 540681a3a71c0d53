"""Turn taking on a scripted timeline: fast, deterministic, no models.

Each test writes a conversation as a :class:`testkit.fakes.Script` (who says what when, what
the LLM answers), replays it at ``SPEED`` times real time through a real ``VoiceSession``
(``testkit.fakes`` says which parts are scripted), and asserts on the session's turn events
(``processors.turn_state``) and their timestamps, in scripted seconds. The same behaviours are
checked with real models and real speech in ``test_voice_pipeline.py`` and the browser tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bots.config import BUILTIN_AVATARS, AvatarConfig
from bots.llm_backend import LLMBackend
from bots.pipeline import RESUME_AFTER_NOISE_PROMPT
from bots.runtime import Runtime
from bots.session import VoiceSession
from bots.sessions import SessionManager
from bots.settings import Settings
from processors.turn_state import TurnEvent
from testkit.fakes import Script, ScriptedLLMServer, ScriptedModels
from testkit.harness import ScriptedTransport
from testkit.net import wait_for

# Each test on an event loop of its own: the timings are the point, so nothing left running by
# another test (the suite's other tests share one loop) may share its loop.
pytestmark = pytest.mark.asyncio(loop_scope="function")

SPEED = 4.0
STORY = (
    "Once upon a time a small dragon lived high in the mountains and every "
    "morning she flew over the valley to count the sheep."
)  # 24 words: 8 scripted seconds of speech at 3 words a second


@dataclass
class Call:
    """A session replaying a script, and where to look."""

    script: Script
    session: VoiceSession
    transport: ScriptedTransport
    llm: ScriptedLLMServer
    started: float

    def at(self, event: TurnEvent) -> float:
        """When ``event`` happened, in scripted seconds from the start of the script."""
        return self.script.scripted(event.at - self.started)

    def events(self, kind: str) -> list[TurnEvent]:
        return [e for e in self.session.turns.events if e.kind == kind]

    def first(self, kind: str, after: float = 0.0) -> TurnEvent:
        return next(e for e in self.events(kind) if self.at(e) >= after)

    def voiced(self, since: float, until: float) -> float:
        """Scripted seconds of bot audio played between two scripted times."""
        lo, hi = self.started + self.script.secs(since), self.started + self.script.secs(until)
        heard = self.transport.speaker.heard
        wall = sum(c.duration for c in heard if c.rms > 300 and lo <= c.mono < hi)
        return self.script.scripted(wall)

    async def until(self, cond, scripted_secs: float, what: str):
        return await wait_for(cond, self.script.secs(scripted_secs) + 5, what)


def scripted_runtime(script: Script, llm: ScriptedLLMServer, data_dir: Path) -> Runtime:
    settings = Settings(
        memory=False,
        llm_backend="embedded",
        llm_port=llm.port,
        stt_interim_secs=0.0,
        data_dir=data_dir,
    )
    return Runtime(settings, models=ScriptedModels(script))


@pytest_asyncio.fixture(loop_scope="function")
async def call(tmp_path) -> AsyncIterator:
    """``await call(script)`` starts the script on a fresh Lumina session."""
    running: list[tuple[Call, asyncio.Task]] = []

    async def start(
        script: Script, avatar: AvatarConfig | None = None, reader: LLMBackend | None = None
    ) -> Call:
        llm = await ScriptedLLMServer(script).__aenter__()
        runtime = scripted_runtime(script, llm, tmp_path)
        session = VoiceSession(
            script.avatar(avatar or BUILTIN_AVATARS.load("lumina")),
            ScriptedTransport,
            runtime,
            backend=LLMBackend("embedded", llm.base_url, "scripted"),
            user_id="scripted",
            greet=False,
            idle_timeout_secs=None,
            reader=reader,
        )
        session.turns.settle_secs = script.secs(1.0)
        assert isinstance(session.transport, ScriptedTransport)
        task = asyncio.create_task(session.run())
        await asyncio.sleep(0.3)  # the graph starts; the microphone sends silence
        started = time.monotonic()
        c = Call(script, session, session.transport, llm, started)
        running.append((c, task))
        asyncio.create_task(script.play(session.transport.mic, started))
        return c

    yield start
    for c, task in running:
        await c.session.worker.cancel()
        await asyncio.wait_for(task, 10)
        await c.llm.__aexit__(None, None, None)


async def test_a_question_is_heard_answered_and_recorded_as_heard(call):
    script = Script(speed=SPEED)
    script.say("What is the capital of France?", at=0.5, duration=1.5)
    script.answer("Paris is the capital of France.", to="capital")
    c = await call(script)

    reply = await c.until(lambda: c.events("reply"), 8, "the answer")
    await c.until(lambda: c.events("bot_stopped"), 2, "the voice to stop")
    turns = ("user_started", "user_stopped", "bot_started")
    events = [e.kind for e in c.session.turns.events if e.kind in turns]
    assert events == list(turns) and not c.events("interrupted")
    assert c.at(c.first("bot_started")) < c.at(reply[0]) < c.at(c.first("bot_stopped")) + 0.5
    assert c.events("user_stopped")[0].text == "What is the capital of France?"
    assert reply[0].text == "Paris is the capital of France." and not reply[0].interrupted
    # It answered promptly (scripted seconds: Pipecat's own fixed waits count x SPEED here).
    assert c.at(c.first("bot_started")) - 2.0 < 2.0
    # The whole answer was played: 6 words at 3 words a second.
    assert c.voiced(2.0, 8.0) == pytest.approx(2.0, abs=0.3)
    assert [t.role for t in c.session.turns.transcript] == ["user", "assistant"]


async def test_talking_over_the_bot_stops_it_and_keeps_only_the_heard_words(call):
    script = Script(speed=SPEED)
    script.say("Tell me a story about a dragon.", at=0.5, duration=1.5)
    script.answer(STORY, to="dragon")
    barge = script.say("Wait, what was her name?", at=5.0, duration=1.5)
    script.answer("Her name was Ember.", to="name")
    c = await call(script)

    await c.until(lambda: len(c.events("reply")) >= 2, 14, "the story and the next answer")
    story, answer = c.events("reply")[:2]
    spoke_at = c.at(c.first("bot_started"))

    # The voice is held at the first speech-like sound, the interruption follows, and the
    # bot is silent from then until the person has finished their question.
    held = c.first("held", after=barge.at)
    # Margins in scripted seconds (x4 at this speed): wide enough for a loaded CI machine,
    # far inside the VAD's confirmed start (0.8 scripted s) and the barge-in minimum.
    assert barge.at <= c.at(held) < barge.at + 0.4
    interrupted = c.first("interrupted", after=barge.at)
    assert c.at(interrupted) < barge.at + 1.0
    assert c.voiced(c.at(held) + 0.1, barge.at + barge.duration) == 0.0
    # Only what was played is kept: a prefix of the story, as long as the time it played.
    assert story.interrupted and STORY.startswith(story.text)
    heard_words = len(story.text.split())
    assert abs(heard_words - (barge.at - spoke_at) * script.words_per_sec) <= 3
    assert heard_words < len(STORY.split())
    # The LLM's next request carries the story as heard, not as generated.
    request = c.llm.requests[-1]
    assistant = [m["content"] for m in request.messages if m["role"] == "assistant"]
    assert assistant == [story.text]
    assert not c.llm.requests[0].finished or c.llm.requests[0].sent == STORY
    assert answer.text == "Her name was Ember." and not answer.interrupted


async def test_a_cough_over_the_bot_pauses_its_voice_and_it_goes_on_from_the_same_word(call):
    script = Script(speed=SPEED)
    script.say("Tell me a story about a dragon.", at=0.5, duration=1.5)
    script.answer(STORY, to="dragon")
    cough = script.noise(at=5.0, duration=0.2)  # over before the barge-in minimum
    c = await call(script)

    story = (await c.until(lambda: c.events("reply"), 16, "the story"))[0]
    await c.until(lambda: c.events("bot_stopped"), 2, "the voice to stop")
    assert not c.events("interrupted") and not story.interrupted
    assert story.text == STORY  # nothing was skipped...
    held, released = c.first("held", after=cough.at), c.first("released", after=cough.at)
    # On the VAD's first voiced frame, long before a confirmed start (0.2 s of wall time,
    # 0.8 scripted s here); the margin absorbs a loaded CI machine's scheduling jitter.
    assert c.at(held) < cough.at + 0.4
    assert c.at(released) - c.at(held) < 1.0  # ...only paused, until the VAD heard silence
    assert c.voiced(c.at(held) + 0.1, c.at(released)) == 0.0
    # 24 words at 3 words a second, all of it played.
    assert c.voiced(0.0, 20.0) == pytest.approx(8.0, abs=0.5)


async def test_an_acknowledgement_over_the_bot_is_not_an_interruption(call):
    script = Script(speed=SPEED)
    script.say("Tell me a story about a dragon.", at=0.5, duration=1.5)
    script.answer(STORY, to="dragon")
    script.say("Mm-hm.", at=5.0, duration=0.3)  # long enough for the VAD, too short to cut in
    c = await call(script)

    story = (await c.until(lambda: c.events("reply"), 16, "the story"))[0]
    assert story.text == STORY and not story.interrupted
    assert not c.events("interrupted")
    assert [t.text for t in c.session.turns.turns("user")] == ["Tell me a story about a dragon."]
    assert len(c.llm.requests) == 1  # "mm-hm" never became a turn for the LLM


async def test_speech_in_the_grace_window_alone_does_not_cut_the_reply_off(call):
    script = Script(speed=SPEED)
    script.say("Tell me a story about a dragon.", at=0.5, duration=1.5)
    script.answer(STORY, to="dragon", ttft=0.0)
    c = await call(script)
    spoke = await c.until(lambda: c.events("bot_started"), 4, "the story to start")
    # The person's echo of the bot's first syllables: 0.2 s inside the 300 ms grace window.
    await c.transport.mic.say(script.pcm(script.noise(at=c.at(spoke[0]), duration=0.2)))

    story = (await c.until(lambda: c.events("reply"), 16, "the story"))[0]
    assert story.text == STORY and not c.events("interrupted")


async def test_a_noise_that_cut_the_bot_off_makes_it_pick_up_where_it_was(call):
    script = Script(speed=SPEED)
    script.say("Tell me a story about a dragon.", at=0.5, duration=1.5)
    script.answer(STORY, to="dragon")
    noise = script.noise(at=5.0, duration=0.8)  # long enough to interrupt; no words in it
    script.answer("As I was saying, she counted the sheep.", to=RESUME_AFTER_NOISE_PROMPT[:40])
    c = await call(script)

    await c.until(lambda: len(c.events("reply")) >= 2, 14, "the bot to resume")
    cut, resumed = c.events("reply")[:2]
    assert cut.interrupted and c.at(c.first("interrupted")) >= noise.at
    assert resumed.text == "As I was saying, she counted the sheep." and not resumed.interrupted
    # Pipecat's empty-turn recovery asked the LLM to go on, as a user message (the local
    # servers don't know the developer role), after the story as far as it was heard.
    last = c.llm.requests[-1].messages
    assert last[-1] == {"role": "user", "content": RESUME_AFTER_NOISE_PROMPT}
    assert last[-2] == {"role": "assistant", "content": cut.text}
    assert [t.text for t in c.session.turns.turns("user")] == ["Tell me a story about a dragon."]


async def test_a_call_whose_sign_in_expires_ends_after_the_reply_being_spoken(tmp_path):
    script = Script(speed=SPEED)
    script.say("Tell me a story about a dragon.", at=0.5, duration=1.5)
    script.answer(STORY, to="dragon")
    async with ScriptedLLMServer(script) as llm:
        runtime = scripted_runtime(script, llm, tmp_path)
        manager = SessionManager(runtime, greet=False)
        lumina = script.avatar(BUILTIN_AVATARS.load("lumina"))
        backend = LLMBackend("embedded", llm.base_url, "scripted")
        running = await manager.start(
            lumina, backend, ScriptedTransport, user_id="u1", username="u1", login="token-1"
        )
        session = running.session
        session.turns.settle_secs = script.secs(1.0)
        assert isinstance(session.transport, ScriptedTransport)
        started = time.monotonic()
        asyncio.create_task(script.play(session.transport.mic, started))
        valid = {"token-1"}
        watcher = asyncio.create_task(manager.watch_logins(valid.__contains__, every_secs=0.02))
        try:
            await wait_for(lambda: session.turns.bot_speaking, 5, "the story to start")
            valid.clear()  # the sign-in expires (or the person signs out in another tab)
            expired = time.monotonic()
            await asyncio.wait_for(running.task, 20)
        finally:
            watcher.cancel()

    events = session.turns.events
    reply = next(e for e in events if e.kind == "reply")
    ending = next(e for e in events if e.kind == "ending")
    assert not reply.interrupted and reply.text == STORY  # the story was not cut off
    assert expired < reply.at < ending.at  # the call ended only after it
    assert ending.text.startswith("Your sign-in expired")
    told = [m for m in session.transport.speaker.messages if m.get("type") == "server-message"]
    assert told and told[-1]["data"]["type"] == "call-ended"
    assert not manager.active


async def test_prompt_text_markup_and_rambling_never_reach_the_voice_or_the_transcript(call):
    # What a 135M model has done: copy its memory instructions after the answer, write
    # roleplay actions, and go on for sentences after the persona's three.
    script = Script(speed=SPEED)
    script.say("Where do I live?", at=0.5, duration=1.0)
    script.answer(
        "You live in Boston. Use these facts when answering questions; don't mention having "
        "a memory unless asked. [End of memory]",
        to="live",
    )
    script.say("Tell me about your day.", at=6.0, duration=1.0)
    script.answer(
        "*smiles warmly* It was lovely. I read a book. I went for a walk. I cooked. I slept.",
        to="day",
    )
    c = await call(script)

    await c.until(lambda: len(c.events("reply")) >= 2, 16, "both answers")
    first, second = c.events("reply")[:2]
    assert first.text == "You live in Boston."
    assert second.text.endswith("It was lovely. I read a book. I went for a walk.")
    heard = " ".join(t.text for t in c.session.turns.turns("assistant"))
    assert "memory" not in heard.lower()
    # Only the kept words were voiced: 4 + 11 words at 3 words a second (the action's two
    # words would add 0.7 s). Known issue: the transcript keeps the action's text (README).
    assert c.voiced(0.0, 16.0) == pytest.approx(15 / 3, abs=0.35)


# ---------- preemptive replies (processors.preemptive_turn) ----------


def _user_messages(c: Call) -> list[str]:
    return [str(m.get("content")) for m in c.session.context.get_messages() if m["role"] == "user"]


async def test_a_pause_mid_sentence_gets_one_answer_to_the_whole_sentence(call):
    script = Script(speed=SPEED)
    half = script.say("What is the capital", at=0.5, duration=1.2, complete=False)
    script.say("of France?", at=half.at + half.duration + 0.4, duration=0.7)  # a 400 ms pause
    script.answer("Paris is the capital of France.", to="of France")
    script.answer("Capitals are where governments sit.", to="capital")
    c = await call(script)

    reply = await c.until(lambda: c.events("reply"), 10, "the answer")
    await c.until(lambda: c.events("bot_stopped"), 3, "the voice to stop")
    # A reply was started on half the sentence, at the pause (smart-turn still waiting) ...
    asked = [r.messages[-1]["content"] for r in c.llm.requests]
    assert "What is the capital" in asked, asked
    # ... and thrown away unheard when the person went on: one turn, one answer, to all of it.
    assert [e.kind for e in c.session.turns.events if e.kind == "user_stopped"] == ["user_stopped"]
    assert c.events("user_stopped")[0].text == "What is the capital of France?"
    assert [r.text for r in reply] == ["Paris is the capital of France."]
    assert c.voiced(0.0, 2.8) == 0.0, "the preemptive reply to half the sentence was heard"
    assert c.voiced(2.8, 9.0) == pytest.approx(2.0, abs=0.3)  # the whole answer, once
    assert _user_messages(c) == ["What is the capital of France?"]
    assert [t.text for t in c.session.turns.transcript] == [
        "What is the capital of France?",
        "Paris is the capital of France.",
    ]
    stats = c.session.preemption
    assert stats and stats.withdrawn >= 1 and stats.last_withdrawn >= 1


async def test_a_pause_after_words_that_sound_finished_is_not_an_end_of_turn(call):
    """Smart-turn calls "Tell me a story" complete, but 400 ms of silence is too short for a
    turn end (``smart_turn_min_silence_secs``): one turn, and the answer is to all of it.
    In real time: the VAD's 32 ms windows do not shrink with a speed factor."""
    script = Script(speed=1.0)
    half = script.say("Tell me a story", at=0.5, duration=1.0, stt_delay=0.05)
    script.say("about a dragon.", at=half.at + half.duration + 0.4, duration=1.0)
    script.answer("Once there was a dragon.", to="dragon")
    script.answer("What kind of story?", to="story")
    c = await call(script)

    reply = await c.until(lambda: c.events("reply"), 10, "the answer")
    await c.until(lambda: c.events("bot_stopped"), 3, "the voice to stop")
    assert [e.text for e in c.events("user_stopped")] == ["Tell me a story about a dragon."]
    assert [r.text for r in reply] == ["Once there was a dragon."]
    assert c.voiced(0.0, 2.9) == 0.0, "a reply to half the sentence was heard"
    assert _user_messages(c) == ["Tell me a story about a dragon."]


async def test_a_finished_sentence_smart_turn_hears_as_unfinished_ends_without_its_long_wait(
    call, llm_backend
):
    """The real engine reads the words (``bots.sentence_end``): smart-turn's "incomplete"
    would hold the turn for ``smart_turn_max_wait_secs`` (0.8 s); a finished sentence ends
    after ``smart_turn_min_silence_secs`` (0.5 s) instead. In real time (VAD windows)."""
    script = Script(speed=1.0)
    said = script.say("Tell me a joke about computers.", at=0.5, duration=1.5, complete=False)
    script.answer("Why did the computer sneeze? It had a virus.", to="joke")
    c = await call(script, reader=llm_backend)

    await c.until(lambda: c.events("reply"), 10, "the answer")
    ended = c.at(c.first("user_stopped")) - (said.at + said.duration)
    assert 0.45 <= ended < 0.75, f"the turn ended {ended:.2f} s after the speech"
    assert c.session.preemption and c.session.preemption.last == "kept"


async def test_a_preemptive_reply_on_words_that_then_change_is_started_again(call):
    script = Script(speed=SPEED)
    question = script.say(
        "What is the capital of France?",
        at=0.5,
        duration=1.5,
        stt_delay=0.05,  # the early pass is done well inside the stop window
        early_text="What is the capital",
    )
    # A trailing sound inside the stop window: the final transcript covers it.
    script.blip(question, at=2.1, duration=0.25)
    script.answer("Paris is the capital of France.", to="of France")
    script.answer("Capitals are where governments sit.", to="capital")
    c = await call(script)

    reply = await c.until(lambda: c.events("reply"), 10, "the answer")
    await c.until(lambda: c.events("bot_stopped"), 3, "the voice to stop")
    asked = [r.messages[-1]["content"] for r in c.llm.requests]
    assert asked == ["What is the capital", "What is the capital of France?"], asked
    assert [r.text for r in reply] == ["Paris is the capital of France."]
    assert c.voiced(2.0, 9.0) == pytest.approx(2.0, abs=0.3)  # one answer's worth of voice
    messages = [(m["role"], m["content"]) for m in c.session.context.get_messages()]
    assert messages == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital of France."),
    ]
    stats = c.session.preemption
    assert stats and stats.regenerated == 1 and stats.kept == 1 and stats.last == "kept"


async def test_a_confirmed_turn_plays_the_reply_started_before_it(call):
    script = Script(speed=SPEED)
    script.say("What is the capital of France?", at=0.5, duration=1.5, stt_delay=0.05)
    script.answer("Paris is the capital of France.", to="capital", ttft=0.1)
    c = await call(script)

    await c.until(lambda: c.events("reply"), 8, "the answer")
    # Started from the early transcript, before the stop window ended: one request, kept.
    assert len(c.llm.requests) == 1
    stats = c.session.preemption
    assert stats and (stats.started, stats.kept, stats.last) == (1, 1, "kept")


async def test_with_preemptive_replies_off_the_reply_starts_after_the_turn(call):
    script = Script(speed=SPEED)
    script.say("What is the capital of France?", at=0.5, duration=1.5, stt_delay=0.05)
    script.answer("Paris is the capital of France.", to="capital")
    lumina = BUILTIN_AVATARS.load("lumina")
    off = lumina.turn_taking.model_copy(update={"preemptive_replies": False})
    c = await call(script, lumina.model_copy(update={"turn_taking": off}))

    reply = await c.until(lambda: c.events("reply"), 8, "the answer")
    assert reply[0].text == "Paris is the capital of France."
    assert c.session.preemption is None and len(c.llm.requests) == 1
