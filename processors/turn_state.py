"""Who is speaking, and what was heard: one session's turn state, kept in one place.

An observer: it consumes and emits no frames. From the frames it sees it learns when the bot's
voice is really audible (the output transport's ``BotStartedSpeakingFrame`` /
``BotStoppedSpeakingFrame``, sent as audio starts and stops playing) and when a barge-in
happened (``InterruptionFrame``). The session tells it the rest: when the user aggregator
started and ended the person's turn (with its transcript), and what the assistant aggregator
recorded as heard.

Everything else reads from here: the barge-in guard (is the bot speaking, since when), the
playback gate (did an interruption happen while it held the voice), ending a call between
turns (is anyone mid-turn), the transcript. Each change is also a timestamped
:class:`TurnEvent`, which the session's listeners and tests use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed

EventKind = Literal[
    "user_started",  # the user aggregator started the person's turn (may interrupt the bot)
    "user_stopped",  # ...and ended it; ``text`` is the transcript ("" when nothing was heard)
    "bot_started",  # the bot's voice started playing
    "bot_stopped",  # ...and stopped
    "interrupted",  # an interruption flushed the bot's reply (while it spoke or was replying)
    "held",  # the playback gate paused the bot's voice (the person may be talking)
    "released",  # ...and let it go on
    "dropped",  # ...and dropped the audio it held, which an interruption made stale
    "reply",  # the reply as the person heard it (``text``; ``interrupted`` if cut off)
    "ending",  # the call is about to end (``text`` says why)
    "apology",  # a part failed and the avatar said so (``text``: the error)
]


@dataclass(frozen=True)
class TurnEvent:
    """One change of turn state, at ``at`` (``time.monotonic()``)."""

    kind: EventKind
    at: float
    text: str = ""
    interrupted: bool = False


@dataclass
class TranscriptEntry:
    """One finished turn, as it was actually spoken and heard."""

    role: Literal["user", "assistant"]
    text: str
    interrupted: bool = False


class TurnState(BaseObserver):
    """The single source of truth for a session's turns.

    Args:
        settle_secs: how long after the bot's voice stops a turn still counts as going on (a
            reply pauses between sentences while the next one is synthesized).
    """

    def __init__(self, *, settle_secs: float = 1.0):
        super().__init__(observe_every_push=False)  # each frame once: the updates are idempotent
        self.settle_secs = settle_secs
        self.user_speaking = False
        """The user aggregator's view: the person's turn is open."""
        self.user_audible = False
        """The VAD's view: the person's voice is heard right now (not paused, not stopped)."""
        self._audible = asyncio.Event()
        self.reply_pending = False
        """The person said something and the reply to it is not over yet."""
        self.bot_speaking = False
        self.bot_started_at = 0.0
        self.bot_stopped_at = time.monotonic()
        self.interruptions = 0
        self.transcript: list[TranscriptEntry] = []
        self.events: list[TurnEvent] = []
        self._listeners: list[Callable[[TurnEvent], None]] = []
        self._last_interruption: int | None = None

    def add_listener(self, listener: Callable[[TurnEvent], None]) -> None:
        """Call ``listener`` with every event from now on (on the event loop; keep it quick)."""
        self._listeners.append(listener)

    def _emit(self, kind: EventKind, text: str = "", interrupted: bool = False) -> TurnEvent:
        event = TurnEvent(kind, time.monotonic(), text, interrupted)
        self.events.append(event)
        for listener in self._listeners:
            listener(event)
        return event

    # -- what the frames say -------------------------------------------------------------

    async def on_push_frame(self, data: FramePushed) -> None:
        """Follow the bot's voice and interruptions."""
        frame = data.frame
        if isinstance(frame, BotStartedSpeakingFrame):
            self.bot_started()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.bot_stopped()
        elif isinstance(frame, InterruptionFrame) and (
            # Broadcast both ways as two frames: count the pair once.
            frame.broadcast_sibling_id is None
            or frame.broadcast_sibling_id != self._last_interruption
        ):
            self._last_interruption = frame.id
            self.interrupted()

    def bot_started(self) -> None:
        """The bot's voice started playing."""
        if not self.bot_speaking:
            self.bot_speaking = True
            self.bot_started_at = self._emit("bot_started").at

    def bot_stopped(self) -> None:
        """The bot's voice stopped."""
        if self.bot_speaking:
            self.bot_speaking = False
            self.bot_stopped_at = self._emit("bot_stopped").at

    def interrupted(self) -> None:
        """An interruption flushed whatever the bot was saying.

        Pipecat interrupts at the start of every user turn; only one that cut a reply (or
        the voice) off is an event, but each one counts (the playback gate needs them all).
        """
        self.interruptions += 1
        if self.bot_speaking or self.reply_pending:
            self._emit("interrupted")

    # -- what the session says -----------------------------------------------------------

    def user_heard(self, audible: bool) -> None:
        """The VAD hears the person (speech started or resumed) or not (paused or stopped)."""
        self.user_audible = audible
        if audible:
            self._audible.set()
        else:
            self._audible.clear()

    async def until_user_audible(self) -> None:
        """Return when the person's voice is heard (at once if it is now)."""
        await self._audible.wait()

    def user_started(self) -> None:
        """The user aggregator started the person's turn."""
        self.user_speaking = True
        self._emit("user_started")

    def user_stopped(self, text: str) -> None:
        """The person's turn ended with ``text`` ("" when it held no words)."""
        self.user_speaking = False
        if text:
            self.reply_pending = True
            self.transcript.append(TranscriptEntry("user", text))
        self._emit("user_stopped", text)

    def reply_started(self) -> None:
        """The bot began a reply (its text is being generated)."""
        self.reply_pending = True

    def reply_finished(self, text: str, *, interrupted: bool) -> None:
        """The reply is over; ``text`` is what the person heard of it."""
        self.reply_pending = False
        if text:
            self.transcript.append(TranscriptEntry("assistant", text, interrupted))
        self._emit("reply", text, interrupted)

    def note(self, kind: EventKind, text: str = "") -> None:
        """Record an event that changes no state (the playback gate's, a call ending)."""
        self._emit(kind, text)

    # -- questions ------------------------------------------------------------------------

    def quiet_secs(self) -> float:
        """Seconds since the bot's voice last stopped (0 while it speaks)."""
        return 0.0 if self.bot_speaking else time.monotonic() - self.bot_stopped_at

    @property
    def mid_turn(self) -> bool:
        """Someone is talking, a reply is owed or under way, or the voice only just stopped."""
        return (
            self.user_speaking
            or self.reply_pending
            or self.bot_speaking
            or self.quiet_secs() < self.settle_secs
        )

    def turns(self, role: Literal["user", "assistant"]) -> list[TranscriptEntry]:
        """The finished turns of one side, in order."""
        return [t for t in self.transcript if t.role == role]
