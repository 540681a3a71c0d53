"""Avatar definitions: one TOML file per avatar, validated by a typed model.

An avatar is everything that makes a character distinct (persona, greeting, voice, LLM
sampling, how it takes turns) and nothing that is code. ``AvatarCatalog(user_dir).load("lumina")``
reads ``<user_dir>/lumina.toml`` if there is one (``$AVATARS_DIR``, default
``<data dir>/avatars``, where the browser's avatar editor saves), else the built-in
``bots/avatars/lumina.toml``, and raises :class:`AvatarConfigError` with one line per bad
field, naming the field and the file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from processors.expressions import EXPRESSIONS, Expression

BUILTIN_AVATARS_DIR = Path(__file__).parent / "avatars"
_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")


class AvatarConfigError(ValueError):
    """An avatar file is missing or invalid; the message says which field and why."""


class AvatarValidationError(AvatarConfigError):
    """Avatar data failed validation; ``errors`` pairs each bad field with what is wrong."""

    def __init__(self, where: str, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = [f"{where}: invalid avatar", *(f"  {f}: {m}" for f, m in errors)]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    # A typo in a TOML key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class VoiceConfig(_Strict):
    """How the avatar sounds (Piper)."""

    piper_voice: str = Field(
        default="en_US-joe-medium",
        max_length=300,
        description="Packaged voice name or path to a .onnx Piper voice.",
    )
    speed: Annotated[float, Field(ge=0.5, le=2.0)] = 1.0
    """Speaking rate; 1.0 is the voice's natural pace (Piper length_scale = 1/speed)."""
    expressiveness: Annotated[float, Field(ge=0.0, le=1.5)] = 0.667
    """Piper noise_scale: higher is livelier, lower is flatter."""
    rhythm_variation: Annotated[float, Field(ge=0.0, le=1.5)] = 0.8
    """Piper noise_w: variation in phoneme durations."""

    def synthesis_config(self):  # -> piper.SynthesisConfig (piper is imported only when used)
        """These settings as Piper's knobs."""
        from piper import SynthesisConfig

        return SynthesisConfig(
            length_scale=1.0 / self.speed,
            noise_scale=self.expressiveness,
            noise_w_scale=self.rhythm_variation,
        )


class LLMConfig(_Strict):
    """Which model answers and how it samples."""

    ollama_model: str = "llama3.2:3b"
    """Used when an Ollama server is reachable; the embedded server always runs its GGUF."""

    @field_validator("ollama_model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if not _MODEL_RE.match(v):
            raise ValueError("must be an Ollama model name, like llama3.2:3b")
        return v

    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 0.7
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    max_tokens: Annotated[int, Field(ge=16, le=2048)] = 160
    """Spoken replies should be short; this bounds a runaway answer."""
    repeat_penalty: Annotated[float, Field(ge=1.0, le=2.0)] = 1.15
    """The embedded engine's penalty on repeated tokens. llama-server's default is 1.0 (off),
    and the 135M model then loops ("I'm so glad to have you. I'm so glad to have you...") a
    few turns into a conversation (``bench/recall.py``, spoken). Ollama applies its own (1.1)."""
    max_sentences: Annotated[int, Field(ge=0, le=50)] | None = None
    """Most sentences spoken per reply (``processors.reply_cap``). Unset: 3 for small models,
    which ignore the persona's "one to three sentences" and ramble, and no cap for capable
    ones; 0: never cut."""
    memory_prompt: Literal["auto", "small", "capable"] = "auto"
    """How memories are put to the model (``memory.prompting``): ``small`` puts the facts in
    the person's turn and starts answers with them; ``capable`` gives a memory block. ``auto``
    picks by engine and model name."""


class TurnTakingConfig(_Strict):
    """When the avatar decides the person has finished, and when it lets itself be cut off."""

    vad_confidence: Annotated[float, Field(ge=0.1, le=1.0)] = 0.7
    vad_start_secs: Annotated[float, Field(ge=0.05, le=1.0)] = 0.2
    vad_stop_secs: Annotated[float, Field(ge=0.05, le=2.0)] = 0.2
    vad_min_volume: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6
    smart_turn: bool = True
    """Use the smart-turn v3 model to judge whether a pause ends the turn."""
    smart_turn_max_wait_secs: Annotated[float, Field(ge=0.2, le=5.0)] = 0.8
    """Longest silence before the turn ends when smart-turn judges it incomplete. Pipecat's
    default is 3 s; smart-turn v3 calls some complete sentences incomplete (three of the ten
    benchmark utterances, every time), so this is paid in full there unless the words read
    as a finished sentence (``read_words``). 0.8 s still lets a person pause mid-thought."""
    smart_turn_min_silence_secs: Annotated[float, Field(ge=0.0, le=2.0)] = 0.5
    """Silence after the speech before a turn smart-turn calls complete ends (the VAD stops
    after ``vad_stop_secs``). Longer, so a short pause mid-sentence is not taken for the end;
    the transcript takes about as long, and a preemptive reply is made meanwhile. Capped at
    ``smart_turn_max_wait_secs``."""
    read_words: bool = True
    """When smart-turn hears a turn as unfinished, read the words too: the LLM engine's odds
    that the sentence ends there (``bots.sentence_end``). A finished sentence then ends after
    ``smart_turn_min_silence_secs`` instead of ``smart_turn_max_wait_secs``. Needs
    ``smart_turn`` and the embedded llama.cpp engine (Ollama reports no token odds); without
    them smart-turn decides alone."""
    preemptive_replies: bool = True
    """Start the reply on the words heard so far while smart-turn is still confirming the
    turn, and play it once the turn is confirmed; if the person goes on, it is thrown away
    unheard (``processors.preemptive_turn``). Off: the reply starts after the turn ends.
    Needs ``smart_turn``."""
    turn_stop_timeout_secs: Annotated[float, Field(ge=0.5, le=30.0)] = 5.0
    """Longest a turn stays open when nothing decides it is over, e.g. a noise with no words
    in it (Pipecat's ``user_turn_stop_timeout``). After a wordless noise cut the avatar off,
    this is how long it is silent before it picks up where it was."""
    barge_in: bool = True
    """Whether the person can interrupt the avatar by speaking."""
    barge_in_grace_ms: Annotated[int, Field(ge=0, le=3000)] = 300
    """Ignore speech in the first N ms of each bot reply (the bot hearing its own onset)."""
    barge_in_min_speech_ms: Annotated[int, Field(ge=0, le=2000)] = 250
    """Speech must last this long to interrupt: coughs and "mm-hm" don't."""
    pause_on_speech: bool = True
    """Hold the avatar's voice as soon as the VAD hears the person (before the interruption
    is confirmed); if it was only a noise, the reply continues where it paused."""


# Every text field is bounded: an avatar is edited in a browser by anyone in the room, and
# each of these ends up in every prompt or greeting. The persona bound keeps the system
# prompt well inside a small model's context (~1k tokens).
_Line = Annotated[str, Field(max_length=300)]
NAME_PLACEHOLDER = "{name}"


Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", description="A colour as #rrggbb.")]
Accessory = Literal["beard", "moustache", "cap", "glasses", "earrings", "freckles", "blush"]


class FaceConfig(_Strict):
    """How the avatar looks: the 2D face the page draws, or the person's own VRM model.

    The page draws the face itself (``web/static/face.js``) from these parameters, so a face
    costs a few bytes of TOML and needs no image files.
    """

    shape: Literal["round", "oval", "square", "heart", "long"] = "oval"
    """The head's outline."""
    skin: Colour = "#f2c9a8"
    hair: Colour = "#4a3426"
    eyes: Colour = "#4b6f9c"
    """The irises' colour."""
    hairstyle: Literal["none", "short", "bob", "long", "bun", "curly", "spiky"] = "short"
    accessories: Annotated[list[Accessory], Field(max_length=7)] = Field(default_factory=list)
    resting: Expression = "neutral"
    """The expression the face returns to between feelings."""
    expressiveness: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6
    """How far an expression moves the face: 0 never changes, 1 shows it fully."""
    emotion_tags: bool = False
    """Ask the model to mark feelings with tags (``[happy] Great news!``); they are taken out
    before the voice, the transcript and memory. Without tags a lexicon reads the feeling."""
    vrm: bool = False
    """Show the person's uploaded 3D model (``<id>.vrm`` beside the avatar file) instead."""

    @field_validator("accessories")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("lists an accessory twice")
        return v


class AvatarConfig(_Strict):
    """One avatar, as written in ``bots/avatars/<id>.toml``."""

    id: str
    name: Annotated[str, Field(min_length=1, max_length=60)]
    blurb: Annotated[str, Field(max_length=200)] = ""
    persona: Annotated[str, Field(min_length=1, max_length=4000)]
    greeting: _Line = ""
    greeting_returning: _Line = "Welcome back, {name}! What's on your mind today?"
    """Said instead of ``greeting`` to someone the avatar knows by name; ``{name}`` is theirs.
    A fixed placeholder, not a format string: no format specs, no attribute access."""
    style_rules: Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=12)] = (
        Field(default_factory=list)
    )
    voice: VoiceConfig = VoiceConfig()
    llm: LLMConfig = LLMConfig()
    turn_taking: TurnTakingConfig = TurnTakingConfig()
    face: FaceConfig = FaceConfig()

    @field_validator("greeting_returning")
    @classmethod
    def _only_name_placeholder(cls, v: str) -> str:
        if "{" in v.replace(NAME_PLACEHOLDER, "") or "}" in v.replace(NAME_PLACEHOLDER, ""):
            raise ValueError("may contain only the placeholder {name}, as it is")
        return v

    def greeting_for(self, name: str | None) -> str:
        """What to say when someone connects: by name if the avatar knows it."""
        if name and self.greeting_returning:
            return self.greeting_returning.replace(NAME_PLACEHOLDER, name)
        return self.greeting

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError(
                "must be lowercase letters, digits, '-' or '_', starting with a letter"
            )
        return v

    def system_prompt(self) -> str:
        """The system message: persona, then style rules, then rules every spoken bot needs."""
        rules = [
            *self.style_rules,
            "Your words are spoken aloud: no emojis, markdown, lists or stage directions.",
            "Keep replies to one to three short sentences unless asked for more.",
        ]
        if self.face.emotion_tags:
            rules.append(
                "Begin a sentence that shows a feeling with one silent tag: "
                + ", ".join(f"[{e}]" for e in EXPRESSIONS)
                + "."
            )
        bullet_rules = "\n".join(f"- {r}" for r in rules)
        return f"You are {self.name}. {self.persona.strip()}\n\nHow you speak:\n{bullet_rules}"


def field_errors(err: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors as (dotted field, message) pairs, worded for people."""
    out = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(file)"
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "is not a setting avatars have (a typo?)"
        elif e["type"] == "missing":
            message = "is required"
        elif e["type"] == "string_too_short" and e.get("ctx", {}).get("min_length") == 1:
            message = "must not be empty"
        out.append((field, message))
    return out


def validate_avatar(data: dict, where: str = "avatar") -> AvatarConfig:
    """Validate avatar data (a parsed file or an editor form).

    Raises:
        AvatarValidationError: naming every bad field.
    """
    try:
        return AvatarConfig.model_validate(data)
    except ValidationError as e:
        raise AvatarValidationError(where, field_errors(e)) from None


def parse_avatar(path: Path) -> AvatarConfig:
    """Read and validate one avatar file; its id is the file name."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise AvatarConfigError(f"{path}: no such avatar file") from e
    except tomllib.TOMLDecodeError as e:
        raise AvatarConfigError(f"{path}: not valid TOML: {e}") from e
    if "id" in data and data["id"] != path.stem:
        raise AvatarConfigError(f"{path}: id: {data['id']!r} must match the file name")
    data["id"] = path.stem
    return validate_avatar(data, str(path))


@dataclass(frozen=True)
class AvatarCatalog:
    """The avatar files a process can load: people's own folder first, then the built-ins.

    Args:
        user_dir: where avatars made or changed by people live (the editor saves there);
            None: only the built-in avatars.
    """

    user_dir: Path | None = None

    @property
    def dirs(self) -> list[Path]:
        """Folders searched, in order: a file in the user folder wins over a built-in."""
        return [d for d in (self.user_dir, BUILTIN_AVATARS_DIR) if d is not None]

    def ids(self) -> list[str]:
        """Ids of every avatar file found, sorted."""
        # A stray file whose name is not an id (an editor's backup, a temp file left by a
        # crash) is not an avatar: it must not stop the room from starting.
        return sorted(
            {
                p.stem
                for d in self.dirs
                if d.is_dir()
                for p in d.glob("*.toml")
                if _ID_RE.match(p.stem)
            }
        )

    def path(self, avatar_id: str) -> Path | None:
        """The file that defines ``avatar_id`` (the user folder wins over built-ins), if any."""
        if not _ID_RE.match(avatar_id):
            return None  # never turn a request's text into a path outside the avatar folders
        for d in self.dirs:
            path = d / f"{avatar_id}.toml"
            if path.exists():
                return path
        return None

    def load(self, avatar_id: str) -> AvatarConfig:
        """Find ``<avatar_id>.toml`` and validate it.

        Raises:
            AvatarConfigError: no such avatar, or its file is invalid (naming the field).
        """
        path = self.path(avatar_id)
        if path is not None:
            return parse_avatar(path)
        known = ", ".join(self.ids()) or "none"
        raise AvatarConfigError(f"no avatar called {avatar_id!r} (available: {known})")


BUILTIN_AVATARS = AvatarCatalog()
"""The avatars that ship with the product (tests and benchmarks use these)."""
