"""One line per turn: where the time between "user stopped" and "bot spoke" went.

Built on Pipecat's ``UserBotLatencyObserver`` (which needs ``enable_metrics=True``): at each
``BotStartedSpeakingFrame`` it hands us a breakdown whose parts sum to the measured interval.
We condense it to the numbers people ask for (turn end detection, STT, LLM TTFB, TTS TTFB,
voice-to-voice), log them, keep them for tests and benchmarks, and call listeners (the web
page shows them under the transcript).

This is an observer, not a processor: it sees every frame push without sitting in the graph.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from loguru import logger
from pipecat.observers.user_bot_latency_observer import (
    LatencyBreakdown,
    MeasuredFrom,
    UserBotLatencyObserver,
)


@dataclass
class TurnLatency:
    """Seconds spent in each stage of one turn (server side; excludes network and playout)."""

    total: float
    turn_end: float = 0.0
    stt: float = 0.0
    llm_ttfb: float = 0.0
    tts_ttfb: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict in milliseconds, for JSON."""
        times = {k: v for k, v in asdict(self).items() if isinstance(v, float)}
        d: dict[str, Any] = {k: round(v * 1000) for k, v in times.items()}
        d["stages"] = {k: round(v * 1000) for k, v in self.stages.items()}
        return d

    def summary(self) -> str:
        """Human-readable one-liner."""
        return (
            f"voice-to-voice {self.total * 1000:.0f} ms = turn end {self.turn_end * 1000:.0f}"
            f" + STT {self.stt * 1000:.0f} + LLM TTFB {self.llm_ttfb * 1000:.0f}"
            f" + TTS TTFB {self.tts_ttfb * 1000:.0f} (+ rest)"
        )


def condense(breakdown: LatencyBreakdown) -> TurnLatency:
    """Group a Pipecat breakdown into our stages, by which component owned each part."""
    lat = TurnLatency(total=breakdown.total_secs)
    for part in breakdown.contributions:
        lat.stages[part.label] = lat.stages.get(part.label, 0.0) + part.duration_secs
        owner = part.owner.lower()
        if "stt" in owner:
            lat.stt += part.duration_secs
        elif "llm" in owner:
            lat.llm_ttfb += part.duration_secs
        elif "tts" in owner:
            lat.tts_ttfb += part.duration_secs
        elif owner.startswith("config:") or "turn" in owner or "vad" in owner:
            lat.turn_end += part.duration_secs
    return lat


class TurnLatencyObserver(UserBotLatencyObserver):
    """Collects and logs a :class:`TurnLatency` per turn.

    Args:
        session: label for log lines.
    """

    def __init__(self, *, session: str = "", **kwargs):
        super().__init__(**kwargs)
        self.session = session
        self.turns: list[TurnLatency] = []
        self._listeners: list[Callable[[TurnLatency], Awaitable[None]]] = []
        self.add_event_handler("on_latency_breakdown", self._on_breakdown)

    def add_listener(self, fn: Callable[[TurnLatency], Awaitable[None]]) -> None:
        """Call ``fn`` with each turn's latency."""
        self._listeners.append(fn)

    async def _on_breakdown(self, _observer, breakdown: LatencyBreakdown):
        if breakdown.measured_from == MeasuredFrom.CLIENT_CONNECTED:
            return  # a greeting, not an answer to the user
        lat = condense(breakdown)
        self.turns.append(lat)
        logger.info(f"[{self.session}] turn latency: {lat.summary()}")
        for fn in self._listeners:
            await fn(lat)
