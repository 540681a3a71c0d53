"""The latency tricks' own logic: VAD events on real speech, the playback gate, reply spacing."""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADParams

from bench.utterances import trim_silence
from processors.playback_gate import PlaybackGate
from processors.reply_text import exact_prefix
from processors.vad_events import ReportingSileroVAD, VADListener
from tests.speech import piper_say

FRAME = 320  # 20 ms at 16 kHz, as transports deliver it


async def feed(vad: ReportingSileroVAD, pcm: np.ndarray, events: list, clock: list[float]):
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        clock[0] = i / 16000
        await vad.analyze_audio(pcm[i : i + FRAME].tobytes())


def recording_vad(events: list[tuple[str, float]], clock: list[float]) -> ReportingSileroVAD:
    def note(name):
        return lambda: events.append((name, clock[0]))

    listener = VADListener(**{n: note(n) for n in VADListener.__dataclass_fields__})
    vad = ReportingSileroVAD(
        listeners=[listener], params=VADParams(confidence=0.7, start_secs=0.2, stop_secs=0.2)
    )
    vad.set_sample_rate(16000)
    return vad


async def test_vad_reports_onset_early_then_start_pause_and_stop_in_order():
    silence = np.zeros(16000, dtype=np.int16)
    speech = trim_silence(piper_say("Hold on a moment, I want to ask you something else."))
    events: list[tuple[str, float]] = []
    clock = [0.0]
    await feed(
        recording_vad(events, clock), np.concatenate([silence, speech, silence]), events, clock
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


async def test_a_click_is_a_false_start():
    click = np.zeros(16000, dtype=np.int16)
    click[8000:8200] = 20000  # 12 ms click
    speechlike = piper_say("Hm.")[:2400]  # 150 ms of voice
    events: list[tuple[str, float]] = []
    clock = [0.0]
    vad = recording_vad(events, clock)
    pcm = np.concatenate([click, speechlike, np.zeros(16000, dtype=np.int16)])
    await feed(vad, pcm, events, clock)
    names = [n for n, _ in events]
    assert "on_start" not in names
    assert names.count("on_onset") == names.count("on_false_start"), events


class FakeOutput:
    """Stands in for a transport's output: records what was written (the gate's only contract)."""

    def __init__(self):
        self.written: list[bytes] = []

    async def write_audio_frame(self, frame) -> bool:
        self.written.append(frame)
        return True


async def test_the_gate_holds_audio_and_resumes_from_the_same_frame():
    out = FakeOutput()
    gate = PlaybackGate()
    gate.attach(out)  # type: ignore[arg-type]
    await out.write_audio_frame(b"1")
    gate.pause()
    held = asyncio.create_task(out.write_audio_frame(b"2"))
    await asyncio.sleep(0.05)
    assert out.written == [b"1"] and not held.done()
    gate.resume()
    await asyncio.wait_for(held, 1)
    assert out.written == [b"1", b"2"]


async def test_audio_held_across_an_interruption_is_dropped_not_played():
    from pipecat.frames.frames import InterruptionFrame
    from pipecat.observers.base_observer import FramePushed

    out = FakeOutput()
    gate = PlaybackGate()
    gate.attach(out)  # type: ignore[arg-type]
    gate.pause()  # the person starts talking over the bot...
    held = asyncio.create_task(out.write_audio_frame(b"old reply"))
    await asyncio.sleep(0.05)
    # ...and it is a real barge-in: Pipecat interrupts (the held chunk is not in its queue).
    frame = InterruptionFrame()
    await gate.on_push_frame(FramePushed(None, None, frame, None, 0))  # type: ignore[arg-type]
    gate.resume()
    assert await asyncio.wait_for(held, 1) is False
    assert out.written == []
    await out.write_audio_frame(b"answer")  # the next reply plays as usual
    assert out.written == [b"answer"]


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
