"""Transport factories: SmallWebRTC, WebSocket, local audio and Daily."""

from pipecat.transports.base_transport import BaseTransport

PIPELINE_OUT_SAMPLE_RATE = 24000
"""Pipecat's default rate for the bot's audio, for transports that do not ask for one."""


def output_sample_rate(transport: BaseTransport) -> int:
    """The rate ``transport`` sends the bot's audio at (its ``audio_out_sample_rate``).

    The session runs its pipeline at this rate, so the TTS resamples once, straight to it:
    the output transport would otherwise resample a second time.
    """
    params = getattr(transport, "_params", None)  # every Pipecat transport keeps its params
    return getattr(params, "audio_out_sample_rate", None) or PIPELINE_OUT_SAMPLE_RATE
