"""Daily rooms (opt-in): put an avatar into a Daily video room.

Audio then leaves this machine and passes through Daily's cloud, so this transport is never a
default and always logs a warning. It needs a room URL (and a token for private rooms).
"""

from __future__ import annotations

from loguru import logger
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.transports.daily.transport import DailyParams, DailyTransport

PRIVACY_WARNING = (
    "Daily transport: audio and transcripts of this session pass through Daily's servers "
    "(daily.co). Use the default WebRTC page to keep everything on this machine."
)


class DailyConfigError(ValueError):
    """The Daily room settings are missing or malformed."""


def daily_params(audio_out_filter: BaseAudioFilter | None = None) -> DailyParams:
    """Transport parameters for a Daily room (built without touching the network)."""
    return DailyParams(
        audio_in_enabled=True,
        audio_in_sample_rate=16000,
        audio_out_enabled=True,
        audio_out_filter=audio_out_filter,
    )


def check_room_url(room_url: str) -> None:
    """Raise DailyConfigError unless ``room_url`` is a Daily room's address."""
    if not room_url or not room_url.startswith("https://") or ".daily.co/" not in room_url:
        raise DailyConfigError(
            f"--room-url must look like https://<domain>.daily.co/<room>, got {room_url!r}"
        )


def daily_transport(
    room_url: str,
    token: str | None,
    bot_name: str,
    *,
    audio_out_filter: BaseAudioFilter | None = None,
) -> DailyTransport:
    """A transport that joins ``room_url`` as ``bot_name`` (``audio_out_filter``: see webrtc)."""
    check_room_url(room_url)
    logger.warning(PRIVACY_WARNING)
    return DailyTransport(room_url, token, bot_name, params=daily_params(audio_out_filter))
