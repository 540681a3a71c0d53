"""The latency tricks' own logic: VAD events on real speech, the playback gate, reply spacing."""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADParams

from processors.playback_gate import PlaybackGate
from processors.reply_text import exact_prefix
from processors.turn_state import TurnState
from processors.vad_events import ReportingSileroVAD, VADListener
from testkit.speech import piper_say, trim_silence

FRAME = 320  # 20 ms at 16 kHz, as transports deliver it


async def feed(vad: ReportingSileroVAD, pcm: np.ndarray, events: list, clock: list[float]):
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        clock[0] = i / 16000
        await vad.analyze_audio(pcm[i : i + FRAME].tobytes())


def recording_vad(
    runtime, events: list[tuple[str, float]], clock: list[float]
) -> ReportingSileroVAD:
    def note(name):
        return lambda: events.append((name, clock[0]))

    listener = VADListener(**{n: note(n) for n in VADListener.__dataclass_fields__})
    vad = ReportingSileroVAD(
        model=runtime.models.vad_model(),
        listeners=[listener],
        params=VADParams(confidence=0.7, start_secs=0.2, stop_secs=0.2),
    )
    vad.set_sample_rate(16000)
    return vad


async def test_vad_reports_onset_early_then_start_pause_and_stop_in_order(runtime):
    silence = np.zeros(16000, dtype=np.int16)
    speech = trim_silence(piper_say("Hold on a moment, I want to ask you something else."))
    events: list[tuple[str, float]] = []
    clock = [0.0]
    await feed(
        recording_vad(runtime, events, clock),
        np.concatenate([silence, speech, silence]),
        events,
        clock,
    )
    names = [n for n, _ in events]
    assert names[0] == "on_onset" and "on_start" in names and names[-1] == "on_stop"
    assert names.index("on_onset") < names.index("on_start") < names.index("on_pause")
    first = {n: t for n, t in reversed(events)}  # each event's first time
    onset = first["on_onset"]
    # Silero's score alone reacts within ~0.15 s of the speech (which starts at 1.0 s)...
    assert 1.0 <= onset <= 1.15, events
    # ...while Pipecat's volume-gated start comes later.
    assert first["on_start"] - onset >= 0.1, events
    speech_end = 1.0 + len(speech) / 16000
    last_pause = [t for n, t in events if n == "on_pause"][-1]
    assert last_pause <= speech_end + 0.1 < events[-1][1], events


async def test_a_click_is_a_false_start(runtime):
    click = np.zeros(16000, dtype=np.int16)
    click[8000:8200] = 20000  # 12 ms click
    speechlike = piper_say("Hm.")[:2400]  # 150 ms of voice
    events: list[tuple[str, float]] = []
    clock = [0.0]
    vad = recording_vad(runtime, events, clock)
    pcm = np.concatenate([click, speechlike, np.zeros(16000, dtype=np.int16)])
    await feed(vad, pcm, events, clock)
    names = [n for n, _ in events]
    assert "on_start" not in names
    assert names.count("on_onset") == names.count("on_false_start"), events


async def test_the_gate_holds_audio_and_resumes_from_the_same_frame():
    turns = TurnState()
    gate = PlaybackGate(turns)  # the output transport's audio filter: every chunk passes it
    assert await gate.filter(b"1") == b"1"
    gate.pause()
    held = asyncio.create_task(gate.filter(b"2"))
    await asyncio.sleep(0.05)
    assert not held.done() and gate.holding
    gate.resume()
    assert await asyncio.wait_for(held, 1) == b"2"
    assert [e.kind for e in turns.events] == ["held", "released"]


async def test_audio_held_across_an_interruption_is_dropped_not_played():
    from pipecat.frames.frames import InterruptionFrame
    from pipecat.observers.base_observer import FramePushed

    turns = TurnState()
    gate = PlaybackGate(turns)
    turns.bot_started()
    gate.pause()  # the person starts talking over the bot...
    held = asyncio.create_task(gate.filter(b"old reply"))
    await asyncio.sleep(0.05)
    # ...and it is a real barge-in: Pipecat interrupts (the held chunk is not in its queue).
    frame = InterruptionFrame()
    await turns.on_push_frame(FramePushed(None, None, frame, None, 0))  # type: ignore[arg-type]
    gate.resume()
    assert await asyncio.wait_for(held, 1) == b""  # no audio: the transport skips the chunk
    assert await gate.filter(b"answer") == b"answer"  # the next reply plays as usual
    kinds = [e.kind for e in turns.events]
    assert kinds == ["bot_started", "held", "interrupted", "released", "dropped"]


def test_exact_prefix_restores_the_generated_spacing():
    generated = "Good question!\n\nThe sky is blue because  air scatters blue light."
    assert (
        exact_prefix(generated, "Good question! The sky is blue because air scatters blue light.")
        == generated
    )
    assert exact_prefix(generated, "Good question! The sky") == "Good question!\n\nThe sky"
    assert exact_prefix(generated, "Good answer!") is None
    assert exact_prefix(generated, "") is None
    assert exact_prefix("Short.", "Short. And more") is None
