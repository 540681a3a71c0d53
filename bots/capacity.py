"""How many calls this machine holds: the room's capacity and the LLM engine's slots.

Both default from the cores and the measured cost of a call, so a bigger machine admits more
people with no setting changed, and a small one refuses a call it cannot serve rather than
making everyone's answers late (as LiveKit Agents marks a worker unavailable above a load
threshold, and Kyutai's unmute refuses sessions at capacity).

``CALL_CORE_SHARE`` is what one call costs the room's side on average over a conversation at a
person's pace (audio in and out, VAD, its share of whisper.cpp and Piper while it talks), as a
fraction of one core. Measured on the 2-core bench machine (README "Many people at once"):
8 people at a person's pace kept every call up and heard in time, so 2 cores hold 8 calls.
"""

from __future__ import annotations

import os

from bots.settings import Settings

CALL_CORE_SHARE = 0.25
"""A call's average cost in cores (see the module docstring)."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_capacity(n_cores: int | None = None) -> int:
    """Live calls the room admits by default: the cores divided by what a call costs."""
    return max(1, int((n_cores or cores()) / CALL_CORE_SHARE))


def room_capacity(settings: Settings) -> int:
    """The room's limit on live calls (``AVATARS_ROOM_CAPACITY``, else the default)."""
    return settings.room_capacity or default_capacity()


def default_parallel(settings: Settings) -> int:
    """LLM engine slots: one per call the room admits, and one for work of no call.

    So no live call shares a cache; warm-up and memory distillation go to the last slot
    (``LLMBackend.background_slot``).
    """
    return room_capacity(settings) + 1
