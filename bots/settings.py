"""Process-wide settings, from environment variables, validated at start-up.

Everything an avatar file does not decide: where the servers are, which STT model, where data
lives. Every variable is prefixed ``AVATARS_`` except ``OLLAMA_HOST``, which keeps the name
Ollama itself uses.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime settings (environment variables ``AVATARS_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="AVATARS_", extra="ignore")

    ollama_host: str = Field(
        "http://127.0.0.1:11434",
        validation_alias=AliasChoices("OLLAMA_HOST", "AVATARS_OLLAMA_HOST"),
    )
    llm_host: str = "127.0.0.1"
    llm_port: int = Field(8089, ge=1, le=65535)
    """Port of the embedded llama.cpp server (``python -m bots.llm_server``)."""
    llm_backend: str = Field("auto", pattern="^(auto|ollama|embedded)$")
    """``auto`` prefers a running Ollama, else the embedded server."""
    llm_threads: int = Field(2, ge=1, le=64)
    llm_ctx: int = Field(4096, ge=512, le=131072)
    llm_nice: int = Field(10, ge=0, le=19)
    """CPU priority penalty of the embedded LLM server (Unix ``nice``). Tokens come ~20x
    faster than speech, but on 2 cores the generation competes with Piper synthesizing the
    first words: at equal priority a 4-word chunk took 250 ms instead of 100 (p50); at nice 10
    it took 115 ms, with no loss of tokens/s (bench notes in README)."""
    whisper_model: str = "tiny.en"
    """``tiny.en`` is converted from a PyPI package; other names need internet."""
    stt_threads: int = Field(2, ge=1, le=64)
    stt_interim_secs: float = Field(0.0, ge=0.0, le=5.0)
    """Interim transcripts every N s while the user speaks; 0 = off. Off by default: on 2
    cores they delay the final transcript (+80 ms p50, +370 ms p95; bench/interim_effect)."""
    data_dir: Path = Path.home() / ".local" / "share" / "local-avatars"

    @property
    def embedded_llm_url(self) -> str:
        """OpenAI-compatible base URL of the embedded server."""
        return f"http://{self.llm_host}:{self.llm_port}/v1"


class SettingsError(ValueError):
    """An environment variable has a bad value; the message names it."""


@cache
def get_settings() -> Settings:
    """Load settings once; bad values raise SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as e:
        lines = ["invalid settings:"]
        for err in e.errors():
            name = "AVATARS_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
