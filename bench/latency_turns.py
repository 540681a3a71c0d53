"""One measured turn against a live bot over WebRTC, as the latency benchmark plays it.

A turn: wait until the bot has been quiet for 1.5 s, say an utterance in real time, time the
first voiced bot audio after the end of speech (voice-to-voice), let the bot talk 1.5 s, then
talk over it and time how long its audio keeps coming (barge-in stop), then wait for it to
answer the interruption and finish. Alongside: what the bot said it heard (WER) and the
server's own numbers from the RTVI data channel (``metrics`` TTFBs, our ``turn-latency``
server message, and the arrival of ``user-stopped-speaking`` / ``bot-started-speaking``).

All times are wall clock at the client (``time.time()``); durations are in milliseconds.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from testkit.webrtc_client import BotCall
from testkit.wer import wer as corpus_wer

# Received bot audio is digital zero between utterances (no comfort noise on this path) and
# speech is mostly far above 1% of full scale: 300 (-40 dBFS) separates them (see README).
VOICED_RMS = 300
QUIET_BEFORE_TURN = 1.5  # s of bot silence before each utterance
ANSWER_TIMEOUT = 15.0  # s for an answer to start
FINISH_TIMEOUT = 90.0  # s for a (long) answer to end
TALK_BEFORE_BARGE_IN = 1.5  # s of bot speech before talking over it
STOP_SILENCE = 0.3  # s of silence before a barge-in: the bot was already quiet
FLUSH_MARGIN = 0.5  # s after the interruption notice for queued audio to drain
INTERRUPTION = "Hold on a moment I want to ask you something else."  # no comma: no mid pause


@dataclass
class Clip:
    """An utterance: its text and 16 kHz int16 speech."""

    text: str
    pcm: np.ndarray
    engine: str = "piper"


@dataclass
class TurnRecord:
    """Everything measured in one turn (ms unless named otherwise; None = not measured)."""

    text: str
    engine: str
    start: float = 0.0
    end: float = 0.0
    v2v_ms: float | None = None
    error: str | None = None
    heard_text: str = ""
    server: dict | None = None  # our bot's turn-latency message (ms), as sent
    metrics: dict = field(default_factory=dict)  # RTVI metrics TTFB/processing (ms)
    events: dict = field(default_factory=dict)  # RTVI event arrivals after end of speech (ms)
    transport_ms: float | None = None  # v2v - server total
    barge_in: dict = field(default_factory=dict)
    call_lost: bool = False  # the connection died during the turn: open a new one
    loadavg: float = 0.0  # 1-minute load average when the turn started (shared machine)

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


class MicStalledError(RuntimeError):
    """The client's microphone track stopped being read: the connection is gone."""


async def say(call: BotCall, clip: Clip) -> tuple[float, float]:
    """Speak a clip in real time; (start, end) wall clock. Raises MicStalledError."""
    try:
        return await asyncio.wait_for(call.mic.say(clip.pcm), len(clip.pcm) / 16000 + 10)
    except TimeoutError:
        raise MicStalledError("microphone stalled (connection lost?)") from None


def wer(refs: list[str], hyps: list[str]) -> float | None:
    """Corpus word error rate (lowercase, no punctuation); None without references."""
    return corpus_wer(refs, hyps) if refs else None


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def heard_text(call: BotCall, since: float, until: float) -> str:
    """Final user transcriptions the bot reported between two times, joined."""
    texts = [
        m["data"].get("text", "").strip()
        for _at, m in call.messages_between(since, until)
        if m.get("type") == "user-transcription" and m.get("data", {}).get("final")
    ]
    return " ".join(t for t in texts if t)


def _stage(processor: str) -> str | None:
    """'stt', 'llm' or 'tts' for a service name like ``WhisperSTTService#0``."""
    name = processor.lower()
    for stage in ("stt", "llm", "tts"):
        if f"{stage}service" in name:
            return stage
    return None


def server_metrics(call: BotCall, since: float, until: float) -> dict:
    """The last STT/LLM/TTS TTFB and STT processing time reported in a window (ms)."""
    found: dict[str, float] = {}
    for _at, m in call.messages_between(since, until):
        if m.get("type") != "metrics":
            continue
        for kind in ("ttfb", "processing"):
            for item in m.get("data", {}).get(kind, []):
                stage = _stage(item.get("processor", ""))
                if stage and (kind == "ttfb" or stage == "stt"):
                    found[f"{stage}_{kind}"] = _ms(item["value"])
    return found


def first_message(call: BotCall, kind: str, since: float, until: float) -> tuple[float, dict]:
    """Arrival and body of the first message of type ``kind`` in a window, or (0, {})."""
    for at, m in call.messages_between(since, until):
        if m.get("type") == kind:
            return at, m
    return 0.0, {}


def turn_events(call: BotCall, rec: TurnRecord, first_audio: float) -> dict:
    """When turn-end and bot-start notices arrived, relative to the end of speech (ms)."""
    stops = [
        at
        for at, m in call.messages_between(rec.start, first_audio)
        if m.get("type") == "user-stopped-speaking"
    ]
    started, _ = first_message(call, "bot-started-speaking", rec.end, first_audio + 1.0)
    events: dict[str, float | None] = {
        "user_stopped": _ms(stops[-1] - rec.end) if stops else None,
        "bot_started": _ms(started - rec.end) if started else None,
    }
    events["audio_after_bot_started"] = _ms(first_audio - started) if started else None
    return events


def our_turn_latency(call: BotCall, since: float, until: float) -> dict | None:
    """Our bot's ``turn-latency`` server message for this turn (ms), if one came."""
    for _at, m in call.messages_between(since, until):
        data = m.get("data") or {}
        if m.get("type") == "server-message" and data.get("type") == "turn-latency":
            return {k: v for k, v in data.items() if k != "type"}
    return None


def stop_time(call: BotCall, start: float, anchor: float) -> float | None:
    """Arrival of the bot's last voiced chunk of the interrupted reply.

    ``anchor`` is when the bot acknowledged the interruption (RTVI ``bot-interrupted``). The
    reply may stop before it (our bot holds its audio at the first sound of the user) or a
    little after (queued audio being flushed), so the stop is the last voiced chunk before
    ``anchor + FLUSH_MARGIN``. The answer to the interruption cannot come that early: the user
    is still talking. None when voiced audio keeps coming after that (it did not stop).
    """
    tail = anchor + FLUSH_MARGIN
    if call.voiced(tail, tail + FLUSH_MARGIN, threshold=VOICED_RMS):
        return None
    before = call.voiced(start - 2.0, tail, threshold=VOICED_RMS)
    return before[-1].at if before else start


def barge_in_stop(call: BotCall, start: float, end: float) -> dict:
    """How long the bot's audio kept coming after the interruption started (ms), or why not."""
    anchor, _ = first_message(call, "bot-interrupted", start, end + 0.5)
    if not anchor:
        return {"stop_ms": None, "error": "no interruption (bot-interrupted) seen"}
    result: dict = {"interrupted_event_ms": _ms(anchor - start)}
    if not call.voiced(start - STOP_SILENCE, start, threshold=VOICED_RMS):
        return {**result, "skipped": "bot was silent when the interruption started"}
    stopped = stop_time(call, start, anchor)
    if stopped is None:
        return {**result, "stop_ms": None, "error": "bot audio did not stop"}
    if stopped < start:  # a pause of its own began just before and it never resumed
        return {**result, "skipped": "bot paused on its own as the interruption started"}
    return {**result, "stop_ms": _ms(stopped - start)}


async def barge_in(call: BotCall, interruption: Clip, first_audio: float) -> dict:
    """Talk over the bot 1.5 s into its answer; then wait for its answer to the interruption."""
    await asyncio.sleep(max(0.0, first_audio + TALK_BEFORE_BARGE_IN - time.time()))
    if not call.voiced(time.time() - 0.5, threshold=VOICED_RMS):
        return {"skipped": "answer ended before the barge-in"}
    start, end = await say(call, interruption)
    await asyncio.sleep(STOP_SILENCE + 0.2)
    result = {"start": start, "end": end, **barge_in_stop(call, start, end)}
    answer = await call.wait_voiced(end, ANSWER_TIMEOUT, threshold=VOICED_RMS)
    result["answered"] = answer is not None
    return result


async def settle(call: BotCall, spoke_until: float | None = None) -> bool:
    """Wait until the bot is done: no voice and no data-channel traffic for 1.5 s.

    With ``spoke_until`` (the end of the user's last speech), first wait (up to
    FINISH_TIMEOUT) for the bot to answer that speech at all, so a bot that is still
    transcribing or thinking is not taken for an idle one.
    """
    if spoke_until is not None:
        answer = await call.wait_voiced(spoke_until, FINISH_TIMEOUT, threshold=VOICED_RMS)
        if answer is None:
            return False
    return await call.wait_silent(QUIET_BEFORE_TURN, FINISH_TIMEOUT, VOICED_RMS, idle=True)


async def run_turn(
    call: BotCall,
    clip: Clip,
    interruption: Clip | None,
    *,
    wait_finish: bool = True,
    answer_timeout: float = ANSWER_TIMEOUT,
) -> TurnRecord:
    """Play one utterance and measure the bot's answer (and a barge-in when given a clip).

    ``answer_timeout``: how long the answer may take to start before the turn is an error
    (the load benchmark allows more: queued behind other people, a late answer still counts).
    """
    rec = TurnRecord(clip.text, clip.engine, loadavg=round(os.getloadavg()[0], 2))
    if not await settle(call):
        rec.error = "bot never went quiet before the turn"
        return rec
    try:
        rec.start, rec.end = await say(call, clip)
    except MicStalledError as e:
        rec.error, rec.call_lost = str(e), True
        return rec
    if call.voiced(rec.start, rec.end, threshold=VOICED_RMS):
        rec.error = "bot talked while the user was speaking"
    first = await call.wait_voiced(rec.end, answer_timeout, threshold=VOICED_RMS)
    window_end = first.at if first else rec.end + answer_timeout
    rec.heard_text = heard_text(call, rec.start, window_end)
    if first is None:
        rec.error = rec.error or f"no answer within {answer_timeout:.0f} s"
        await settle(call, rec.end)  # a late answer must not spill into the next turn
        return rec
    await asyncio.sleep(1.0)  # late metrics / server messages of this answer
    if rec.error is None:
        rec.v2v_ms = _ms(first.at - rec.end)
    rec.metrics = server_metrics(call, rec.start, first.at + 0.1)
    rec.events = turn_events(call, rec, first.at)
    rec.server = our_turn_latency(call, rec.end, first.at + 1.0)
    if rec.server and rec.v2v_ms is not None:
        rec.transport_ms = round(rec.v2v_ms - rec.server["total"], 1)
    if interruption is not None:
        try:
            rec.barge_in = await barge_in(call, interruption, first.at)
        except MicStalledError as e:
            rec.barge_in, rec.call_lost = {"error": str(e)}, True
            return rec
    if wait_finish:
        await settle(call, rec.barge_in.get("end", rec.end))
    return rec
