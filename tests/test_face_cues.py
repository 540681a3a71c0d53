"""The face's cues: visemes from the voice's own phonemes, expressions from tags or the words,
and tags that are never spoken, shown or stored.

Fast tests cover the pure logic (with a real Piper voice where it is about its phonemes). The
slow one runs the real graph (Piper, whisper, the aggregators, memory) with an LLM that
answers with tags, transcribes what the avatar played, and checks when each chunk's cues
left compared with when its audio played.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pipecat.frames.frames import AggregatedTextFrame, LLMFullResponseStartFrame, TTSSpeakFrame
from pipecat.tests.utils import run_test

from bots.config import BUILTIN_AVATARS, validate_avatar
from bots.llm_backend import LLMBackend
from bots.session import VoiceSession
from processors.emotion_tags import EmotionTagFilter
from processors.expressions import classify, strip_tags
from processors.face_frames import ExpressionCuesFrame
from processors.visemes import (
    VISEMES,
    VRM_MOUTH,
    Phone,
    phones_from_alignments,
    viseme_track,
    word_starts,
)
from testkit.fakes import Script, ScriptedLLMServer
from testkit.harness import ScriptedTransport
from testkit.heard import transcribe_played
from testkit.net import wait_for
from testkit.speech import piper_say

TAGS = ("happy", "sad", "surprised", "thinking", "angry", "neutral")


def test_each_phoneme_class_has_a_shape_and_the_vrm_a_mouth_for_it():
    assert len(VISEMES) == 14 and set(VRM_MOUTH) == set(VISEMES)
    assert all(set(w) <= {"aa", "ih", "ou", "ee", "oh"} for w in VRM_MOUTH.values())


def test_visemes_follow_the_voices_own_phonemes(runtime):
    voice = runtime.models.voice("en_US-joe-medium")
    [chunk] = voice.synthesize("Bob moved away.", include_alignments=True)
    phones = phones_from_alignments(chunk.phoneme_alignments, chunk.sample_rate)
    track = viseme_track(phones)
    shapes = [v for _, v in track]
    seconds = len(chunk.audio_int16_bytes) / 2 / chunk.sample_rate
    # "Bob moved away": lips shut for b/m, rounded for o/w, wide open somewhere; rest at the ends.
    assert shapes[0] == "rest" and shapes[-1] == "rest"
    assert shapes.count("MBP") >= 2 and "U" in shapes and {"AA", "O"} & set(shapes)
    starts = [t for t, _ in track]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert abs(starts[-1] / 1000 - seconds) < 0.25  # the last rest is at the audio's end
    assert len(word_starts(phones)) == 3


def test_stress_and_length_marks_take_no_shape_and_short_gaps_do_not_close_the_lips():
    phones = [Phone("^", 0.03), Phone("h", 0.05), Phone("ˈ", 0.03), Phone("a", 0.1),
              Phone("ː", 0.05), Phone(" ", 0.04), Phone("m", 0.06), Phone(".", 0.1)]  # fmt: skip
    # the stress, the length mark and the short gap all go to the "a": 80 + 30 + 100 + 50 + 40
    track = [(0, "rest"), (30, "KG"), (80, "AA"), (300, "MBP"), (360, "rest")]
    assert viseme_track(phones) == track


def test_tags_come_out_and_say_where_they_stood():
    assert strip_tags("[happy] Great to hear! [Thinking] Hmm, let me see.") == (
        "Great to hear! Hmm, let me see.",
        [(0, "happy"), (3, "thinking")],
    )
    assert strip_tags("Oh no (sad) that hurts") == ("Oh no that hurts", [(2, "sad")])
    assert strip_tags("It was [sic] fine.") == ("It was [sic] fine.", [])


def test_untagged_words_read_as_a_feeling_and_negation_cancels_it():
    assert classify("That's wonderful news!")[0] == "happy"  # type: ignore[index]
    assert classify("I'm so sorry to hear that.")[0] == "sad"  # type: ignore[index]
    assert classify("Wow, really?")[0] == "surprised"  # type: ignore[index]
    assert classify("Hmm, let me think.")[0] == "thinking"  # type: ignore[index]
    assert classify("The capital of France is Paris.") is None
    assert classify("I'm not happy about it.") is None


async def test_the_filter_strips_tags_and_cues_the_word_where_they_stood():
    frames = [
        LLMFullResponseStartFrame(),
        AggregatedTextFrame("[happy] Great to hear,", "sentence"),
        AggregatedTextFrame("and then [surprised] wow.", "sentence"),
        AggregatedTextFrame("[sad]", "sentence"),  # only a tag: carried to the next chunk
        AggregatedTextFrame("That is wonderful.", "sentence"),  # tagged reply: no lexicon
        TTSSpeakFrame("I'm so sorry to hear that."),  # said on its own: the lexicon reads it
    ]
    down, _ = await run_test(EmotionTagFilter(), frames_to_send=frames)
    texts = [f.text for f in down if isinstance(f, (AggregatedTextFrame, TTSSpeakFrame))]
    assert texts == [
        "Great to hear,",
        "and then wow.",
        "That is wonderful.",
        "I'm so sorry to hear that.",
    ]
    cues = [(f.text, f.cues) for f in down if isinstance(f, ExpressionCuesFrame)]
    assert cues == [
        ("Great to hear,", [(0, "happy", 1.0)]),
        ("and then wow.", [(2, "surprised", 1.0)]),
        ("That is wonderful.", [(0, "sad", 1.0)]),
        ("I'm so sorry to hear that.", [(0, "sad", 0.75)]),
    ]


def test_emotion_tags_are_asked_for_only_when_the_avatar_wants_them():
    lumina = BUILTIN_AVATARS.load("lumina")
    assert "[happy]" not in lumina.system_prompt()
    data = {**lumina.model_dump(), "face": {**lumina.face.model_dump(), "emotion_tags": True}}
    tagged = validate_avatar(data)
    assert all(f"[{t}]" in tagged.system_prompt() for t in TAGS)


TAGGED_REPLY = "[happy] That is wonderful news! [thinking] Let me think about what comes next."


@pytest.mark.slow
async def test_tags_are_never_heard_shown_or_stored_and_cues_leave_as_their_audio_plays(runtime):
    script = Script(speed=1.0)
    script.answer(TAGGED_REPLY, ttft=0.2, tokens_per_sec=40)
    async with ScriptedLLMServer(script) as llm:
        session = VoiceSession(
            BUILTIN_AVATARS.load("lumina"),
            ScriptedTransport,
            runtime,
            backend=LLMBackend("embedded", llm.base_url, "scripted"),
            session_id="face-tags",
            user_id="face-tester",
            greet=False,
            idle_timeout_secs=None,
        )
        await session.prepare()
        task = asyncio.create_task(session.run())
        try:
            await asyncio.sleep(1.5)
            transport = session.transport
            assert isinstance(transport, ScriptedTransport)
            await transport.mic.say(piper_say("I got the job today!"))
            await wait_for(lambda: transport.speaker.heard, 30, "the reply")
            await wait_for(lambda: transport.silent_for(1.5), 60, "the reply to end")
            speaker = transport.speaker
            heard = transcribe_played(runtime.models.transcriber(), speaker.heard).lower()
        finally:
            await session.worker.cancel()
            await asyncio.wait_for(task, 30)
        context = [m for m in session.context.get_messages() if m.get("role") == "assistant"]
        await session.finish()

    # What was played says the words and none of the tags.
    assert "wonderful" in heard and "next" in heard, heard
    assert not any(t in heard for t in TAGS), heard
    # The page was shown no tag, and the context has none.
    outputs = [m for m in speaker.messages if m.get("type") == "bot-output"]
    shown = " ".join(m["data"]["text"] for m in outputs)
    assert "wonderful" in shown and "[" not in shown and "thinking" not in shown
    said = " ".join(str(m["content"]) for m in context)
    assert "wonderful" in said and "[" not in said and "happy" not in said
    if runtime.memory is not None:
        stored = runtime.memory.conversation("face-tester", "face-tags")
        text = " ".join(t.text for t in stored if t.role == "assistant")
        assert "wonderful" in text and "[" not in text and "happy" not in text

    # Each chunk's cues went out as its audio started, carrying its feelings in order.
    faces = [
        (at, m["data"])
        for at, m in zip(speaker.message_times, speaker.messages, strict=True)
        if m.get("type") == "server-message" and m["data"].get("type") == "face"
    ]
    assert len(faces) >= 2
    feelings = [e[1] for _, f in faces for e in f["expressions"]]
    assert feelings == ["happy", "thinking"]
    assert all({v for _, v in f["visemes"]} <= set(VISEMES) for _, f in faces)
    # The mouth opens when the sound does: a chunk's first open shape against the audio.
    onsets = _sound_onsets(speaker.heard)
    for at, face in faces:
        opens = at + next(t for t, v in face["visemes"] if v != "rest") / 1000
        nearest = min(onsets, key=lambda t: abs(t - opens))
        assert abs(nearest - opens) < 0.08, (opens, onsets)


def _sound_onsets(heard) -> list[float]:
    """When each stretch of sound after a pause started playing (monotonic)."""
    starts, end, loud_before = [], 0.0, False
    for chunk in heard:
        start = max(chunk.mono, end)
        end = start + chunk.duration
        samples = np.frombuffer(chunk.audio, dtype=np.int16)
        loud = bool(len(samples)) and float(np.abs(samples).max()) > 300
        if loud and not loud_before:
            starts.append(start)
        loud_before = loud or (loud_before and chunk.rms > 30)
    return starts
