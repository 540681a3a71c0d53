"""The barge-in policy, decision by decision (fast, no models)."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.clocks.system_clock import SystemClock
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.utils.asyncio.task_manager import TaskManager

from processors.barge_in import GuardedUserTurnStartStrategy, is_backchannel
from processors.turn_state import TurnState


class Strategy(GuardedUserTurnStartStrategy):
    """The strategy as the user aggregator drives it, with the VAD's first-hand view too."""

    async def speech(self, frame) -> None:
        """A VAD start or stop frame, after the VAD's listener told the turn state."""
        self._turns.user_heard(isinstance(frame, VADUserStartedSpeakingFrame))
        await self.process_frame(frame)


async def make(**kwargs) -> tuple[Strategy, list[str]]:
    strategy = Strategy(TurnState(), **kwargs)
    await strategy.setup(
        FrameProcessorSetup(
            clock=SystemClock(),
            task_manager=TaskManager(loop=asyncio.get_running_loop()),
            pipeline_worker=None,
        )
    )
    events: list[str] = []

    @strategy.event_handler("on_user_turn_started")
    async def _started(_s, _params):
        events.append("started")

    @strategy.event_handler("on_reset_aggregation")
    async def _reset(_s):
        events.append("reset")

    return strategy, events


def text(t: str) -> TranscriptionFrame:
    return TranscriptionFrame(t, "user", "2026-01-01T00:00:00Z")


async def test_speech_starts_a_turn_at_once_when_the_bot_is_silent():
    s, events = await make()
    await s.speech(VADUserStartedSpeakingFrame())
    assert events == ["started"]


async def test_a_cough_over_the_bot_does_not_interrupt():
    s, events = await make(grace_ms=0, min_speech_ms=400, vad_start_secs=0.2)
    await s.process_frame(BotStartedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())
    await asyncio.sleep(0.05)
    await s.speech(VADUserStoppedSpeakingFrame())  # ended before 0.4 s of speech
    await asyncio.sleep(0.3)
    assert events == []


async def test_a_sound_that_stops_before_the_minimum_does_not_interrupt_though_the_vad_lags():
    s, events = await make(grace_ms=0, min_speech_ms=250, vad_start_secs=0.2)
    await s.process_frame(BotStartedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())  # 200 ms of sound...
    s._turns.user_heard(False)  # ...and silence 20 ms later: the VAD's stop is 200 ms away
    await asyncio.sleep(0.1)
    assert events == [], "it lasted 220 ms, under the 250 ms minimum"
    s._turns.user_heard(True)  # but the person goes on (a second syllable): it was speech
    await asyncio.sleep(0.02)
    assert events == ["started"]


async def test_sustained_speech_over_the_bot_interrupts_after_the_minimum():
    s, events = await make(grace_ms=0, min_speech_ms=300, vad_start_secs=0.2)
    await s.process_frame(BotStartedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())
    assert events == []
    await asyncio.sleep(0.15)
    assert events == ["started"]


async def test_speech_in_the_grace_window_waits_for_it_to_pass():
    s, events = await make(grace_ms=300, min_speech_ms=0, vad_start_secs=0.2)
    await s.process_frame(BotStartedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())
    await asyncio.sleep(0.15)
    assert events == [], "too early: could be the bot's own onset echoing"
    await asyncio.sleep(0.25)
    assert events == ["started"]


async def test_backchannels_never_interrupt_but_real_words_do():
    s, events = await make()
    await s.process_frame(BotStartedSpeakingFrame())
    await s.process_frame(text("Mm-hmm."))
    assert events == ["reset"], "dropped from the aggregation, no turn"
    await s.process_frame(text("Stop!"))
    assert events == ["reset", "started"]


async def test_barge_in_can_be_switched_off():
    s, events = await make(barge_in=False)
    await s.process_frame(BotStartedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())
    await s.process_frame(text("Stop talking please"))
    await asyncio.sleep(0.4)
    assert "started" not in events
    await s.process_frame(BotStoppedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())
    assert events[-1] == "started"


async def test_person_still_talking_when_the_bot_finishes_gets_the_turn():
    s, events = await make(grace_ms=1000, min_speech_ms=0)
    await s.process_frame(BotStartedSpeakingFrame())
    await s.speech(VADUserStartedSpeakingFrame())
    await s.process_frame(BotStoppedSpeakingFrame())
    assert events == ["started"]


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Mm-hmm.", True),
        ("Uh-huh, yeah.", True),
        ("Okay.", True),
        ("Yes, but what about tomorrow?", False),
        ("Stop.", False),
        ("", False),
    ],
)
def test_backchannel_words(said: str, expected: bool):
    assert is_backchannel(said) is expected
