"""Process-wide settings, from environment variables, validated at start-up.

Everything an avatar file does not decide: where the servers are, which STT model, where data
lives. Every variable is prefixed ``AVATARS_`` except ``OLLAMA_HOST``, which keeps the name
Ollama itself uses.

Settings are read once per process, by whoever builds the process's ``Runtime``
(``bots.runtime``), and passed down from there: nothing reads the environment behind its back.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime settings (environment variables ``AVATARS_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="AVATARS_", extra="ignore")

    ollama_host: str = Field(
        default="http://127.0.0.1:11434",
        validation_alias=AliasChoices("OLLAMA_HOST", "AVATARS_OLLAMA_HOST"),
    )
    llm_host: str = "127.0.0.1"
    llm_port: int = Field(default=8089, ge=1, le=65535)
    """Port of the embedded llama.cpp server (``python -m bots.llm_server``)."""
    llm_backend: str = Field(default="auto", pattern="^(auto|ollama|embedded)$")
    """``auto`` prefers a running Ollama, else the embedded server."""
    llm_threads: int = Field(default=2, ge=1, le=64)
    llm_ctx: int = Field(default=4096, ge=512, le=131072)
    """Context tokens per conversation (per engine slot)."""
    llm_parallel: int = Field(default=0, ge=0, le=256)
    """Slots of the embedded engine: conversations it generates at once. 0: one per call the
    room admits (``bots.capacity``)."""
    llm_urls: str = Field(
        default="", pattern=r"^(\s*https?://[^\s,]+\s*(,\s*https?://[^\s,]+\s*)*)?$"
    )
    """OpenAI-compatible engines to spread sessions over, comma-separated base URLs ending in
    ``/v1`` (llama-server, vLLM, Ollama's ``/v1``; this machine or others). Empty: the embedded
    engine at ``AVATARS_LLM_PORT``."""
    llm_slot_share: tuple[int, int] = (0, 1)
    """This process's share of the engine's slots, ``index,count`` (``bots.llm_backend``
    ``SlotAllocator``); the room sets it for each call worker."""
    llm_nice: int = Field(default=10, ge=0, le=19)
    """CPU priority penalty of the embedded LLM server (Unix ``nice``). Tokens come ~20x
    faster than speech, but on 2 cores the generation competes with Piper synthesizing the
    first words: at equal priority a 4-word chunk took 250 ms instead of 100 (p50); at nice 10
    it took 115 ms, with no loss of tokens/s (bench notes in README)."""
    whisper_model: str = "tiny.en"
    """``tiny.en`` is converted from a PyPI package; other names need internet."""
    stt_threads: int = Field(default=2, ge=1, le=64)
    stt_interim_secs: float = Field(default=0.0, ge=0.0, le=5.0)
    """Interim transcripts every N s while the user speaks; 0 = off. Off by default: on 2
    cores they delay the final transcript (+80 ms p50, +370 ms p95; bench/interim_effect)."""
    data_dir: Path = Path.home() / ".local" / "share" / "local-avatars"
    avatars_dir: Path | None = Field(default=None, validation_alias=AliasChoices("AVATARS_DIR"))
    """Where avatars made or changed by people live (``AVATARS_DIR``); empty:
    ``<data_dir>/avatars``."""
    cache_dir: Path = Path.home() / ".cache" / "local-avatars"
    """Prepared models (converted Whisper, exported MiniLM), checksummed."""
    memory: bool = True
    """Long-term memory (stored conversations, memory cards, retrieval). Off: nothing is kept."""
    memory_uri: str = ""
    """Where the memory database lives: a directory or a LanceDB URI (``s3://bucket/path``).
    Empty: ``<data_dir>/memory``."""
    memory_timeout_ms: int = Field(default=150, ge=10, le=5000)
    """Longest a turn waits for its memories before going on without them."""
    memory_restore_tokens: int = Field(default=400, ge=0, le=8000)
    """How much of the last conversation with an avatar comes back on reconnecting
    (estimated as 4 characters a token). The small default LLM has a 4k context and evaluates
    ~150-300 prompt tokens/s on 2 cores, so every restored token is paid once at the first
    reply; bigger models and machines can afford more."""
    memory_distill: bool = True
    """Ask the LLM for facts worth remembering when a session ends (patterns always run)."""

    login_hours: float = Field(default=168.0, gt=0, le=24 * 365)
    """How long a room sign-in lasts (default a week). A call whose sign-in expires finishes
    its current turn, then ends with a message."""
    login_check_secs: float = Field(default=5.0, gt=0, le=3600)
    """How often live calls are checked for an expired sign-in."""
    room_capacity: int = Field(default=0, ge=0, le=10000)
    """Live calls the room admits at once; beyond it a new call is refused with "the room is
    full". 0: derived from the cores and the measured cost of a call (``bots.capacity``)."""
    workers: int = Field(default=-1, ge=-1, le=64)
    """Worker processes the room (``python -m web``) runs its calls on (``web.workers``).
    -1: one per core; 0: every call on the room's own event loop."""
    ray_address: str = ""
    """A Ray cluster to place the room's call workers on (``host:port`` or ``auto``;
    ``web.ray_workers``). Empty: workers are processes of this machine, no Ray needed."""
    calls_per_person: int = Field(default=2, ge=1, le=100)
    """Live calls one account may have at once (two tabs, say); more are refused."""
    connect_timeout_secs: float = Field(default=20.0, gt=0, le=600)
    """How long an answered WebRTC offer may take to connect before it is dropped and
    everything it holds is released."""
    room_passcode: str = ""
    """Passcode asked for at sign-up when the room is opened to the LAN (``python -m web
    --lan``); when empty there, one is generated and printed at start-up."""

    @property
    def user_avatars_dir(self) -> Path:
        """Where the avatar editor saves, searched before the built-in avatars."""
        return self.avatars_dir or self.data_dir / "avatars"

    @property
    def voices_dir(self) -> Path:
        """Extra Piper voices (``.onnx`` + ``.onnx.json``) every avatar can use."""
        return self.data_dir / "voices"

    @property
    def memory_location(self) -> str:
        """The memory database's directory or URI."""
        return self.memory_uri or str(self.data_dir / "memory")

    @property
    def embedded_llm_url(self) -> str:
        """OpenAI-compatible base URL of the embedded server."""
        return f"http://{self.llm_host}:{self.llm_port}/v1"

    @property
    def engine_urls(self) -> list[str]:
        """The engines sessions are spread over (``AVATARS_LLM_URLS``, else the embedded one)."""
        urls = [u.strip().rstrip("/") for u in self.llm_urls.split(",") if u.strip()]
        return urls or [self.embedded_llm_url]


class SettingsError(ValueError):
    """An environment variable has a bad value; the message names it."""


def load_settings() -> Settings:
    """Read the settings from the environment.

    Raises:
        SettingsError: naming each bad variable.
    """
    try:
        return Settings()
    except ValidationError as e:
        lines = ["invalid settings:"]
        for err in e.errors():
            field = "_".join(str(p) for p in err["loc"])
            name = field if field.isupper() else f"AVATARS_{field.upper()}"  # aliases as is
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
