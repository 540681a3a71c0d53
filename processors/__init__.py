"""Our own Pipecat frame processors and services (STT, TTS, barge-in, latency, memory)."""
