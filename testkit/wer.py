"""Word error rate of what was heard against what was said (lowercase, no punctuation)."""

from __future__ import annotations

import jiwer

_NORM = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """WER of one transcript, or over a corpus when given lists."""
    return float(
        jiwer.wer(reference, hypothesis, reference_transform=_NORM, hypothesis_transform=_NORM)
    )
