"""Export the packaged all-MiniLM-L6-v2 to one ONNX graph that returns sentence embeddings.

Why: the memory lookup sits inside the voice loop and must add <= 30 ms p95 to a turn. Under
PyTorch a one-sentence query embeds in ~19 ms p50 (25 ms p95) on one core, ~30 ms inside a live
turn where smart-turn and whisper compete for the two cores. The same network under ONNX Runtime
takes ~6.4 ms p50 (10 ms p95) and gives the same vectors (cosine 1.00000 to the
sentence-transformers output), so vectors already stored stay valid. We keep float32: an int8
dynamic quantization was faster still (3.9 ms) but moved some vectors to cosine 0.935 from the
originals, which would reorder recall against the stored ones.

``optimum`` (sentence-transformers' ``backend="onnx"``) would do the export too, but pulls in
another stack for what is one ``torch.onnx.export`` call; we export with torch, which
sentence-transformers already requires, and bake mean pooling and L2 normalization into the
graph so the runtime needs only ``tokenizers`` and ``onnxruntime`` (no torch in the server).
"""

from __future__ import annotations

from pathlib import Path

# Bump when the exported graph changes, so cached exports are rebuilt.
EXPORT_FORMAT = 1
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "embedding"


def export_minilm(model_dir: Path, out: Path) -> None:
    """Write ``out``: token ids -> unit-length mean-pooled embeddings (float32, 384-dim).

    Args:
        model_dir: a sentence-transformers folder holding a BERT model and ``tokenizer.json``.
        out: the ``.onnx`` file to write.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    class SentenceEmbedding(torch.nn.Module):
        """BERT + sentence-transformers' Pooling(mean) + Normalize, as one module."""

        def __init__(self, bert: torch.nn.Module):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: D102
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    # Two sentences of different lengths, so batch and sequence axes are traced as dynamic.
    example = tokenizer(["a short one", "and a somewhat longer sentence"], padding=True)
    args = tuple(torch.tensor(example[name]) for name in INPUT_NAMES)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    dynamic[OUTPUT_NAME] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            SentenceEmbedding(model),
            args,
            str(out),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter handles BERT's masks without graph breaks
        )
