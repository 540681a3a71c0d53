"""Local audio: the desktop's default microphone and speakers, no browser.

Optional: needs PyAudio (``pip install -e .[local]``, which needs ``apt-get install
portaudio19-dev``). There is no echo cancellation here, so use headphones or raise the
avatar's ``barge_in_min_speech_ms``.
"""

from __future__ import annotations

from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.transports.base_transport import BaseTransport


class LocalAudioUnavailableError(RuntimeError):
    """PyAudio (and PortAudio) are not installed."""


def local_audio_transport(*, audio_out_filter: BaseAudioFilter | None = None) -> BaseTransport:
    """A transport on the default sound devices (``audio_out_filter``: see ``webrtc_transport``)."""
    try:
        from pipecat.transports.local.audio import LocalAudioTransport, LocalAudioTransportParams
    except (ImportError, ModuleNotFoundError) as e:
        raise LocalAudioUnavailableError(
            "local audio needs PyAudio: run `apt-get install portaudio19-dev` and "
            "`.venv/bin/pip install -e .[local]`"
        ) from e
    return LocalAudioTransport(
        LocalAudioTransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=16000,
            audio_out_enabled=True,
            audio_out_filter=audio_out_filter,
        )
    )
