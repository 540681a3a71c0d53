"""The ONNX MiniLM gives sentence-transformers' vectors, and is prepared once into the cache."""

from __future__ import annotations

import numpy as np
import pytest

from bots.models import minilm_dir, minilm_onnx
from memory.embedder import DIMENSIONS, Embedder

# The reference is sentence-transformers on PyTorch, which the export also needs (`.[export]`,
# installed on the default Python only: elsewhere PyPI's torch is a multi-GB CUDA build).
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_pytorch():
    # Here, not at import: collecting this file for the fast suite must not load PyTorch.
    pytest.importorskip("sentence_transformers", reason="needs .[export] (PyTorch)")


TEXTS = [
    "What is my dog called?",
    "hi",
    "My sister and I went hiking in the Alps last summer, and it rained every single day.",
    # Longer than the tokenizer file's 128 tokens: must be cut at 256 like sentence-transformers.
    " ".join(["I keep talking about my garden and the tomatoes in it."] * 30),
]


def test_onnx_vectors_match_sentence_transformers(embedder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True
    )
    ours = embedder.embed(TEXTS)
    assert ours.shape == (len(TEXTS), DIMENSIONS) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # Batched (padded) and one-at-a-time embeddings agree, and both match the reference.
    single = np.vstack([embedder.embed([t]) for t in TEXTS])
    assert (ours * reference).sum(1).min() > 0.9999
    assert (single * reference).sum(1).min() > 0.9999
    assert embedder.embed([]).shape == (0, DIMENSIONS)


def test_export_is_cached_and_a_damaged_file_is_rebuilt(tmp_path, embedder):
    path = minilm_onnx(tmp_path)
    assert path.parent == tmp_path
    built = path.stat().st_mtime_ns
    assert minilm_onnx(tmp_path).stat().st_mtime_ns == built  # reused, not exported again
    with path.open("r+b") as f:  # a truncated export (e.g. disk full) is detected
        f.truncate(1000)
    rebuilt = minilm_onnx(tmp_path)
    assert rebuilt.stat().st_size > 80_000_000
    vector = Embedder(rebuilt, minilm_dir()).embed(["hello"])[0]
    assert float(vector @ embedder.embed(["hello"])[0]) > 0.9999
