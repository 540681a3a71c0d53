"""Which feeling a reply shows: the emotion tags a model writes, or a lexicon when it writes none.

An avatar told to (``face.emotion_tags``) writes ``[happy]``, ``[sad]``, ``[surprised]``,
``[thinking]``, ``[angry]`` or ``[neutral]`` before the words they colour. :func:`strip_tags`
takes them out and says before which word each stood, so the face changes at that word and
no tag is ever spoken, shown or stored.

The bundled 135M model does not tag reliably, so untagged text goes to :func:`classify`: a
small lexicon with negation and punctuation cues. A text classifier from PyPI was considered
and not used: the smallest emotion models are ~60-250 MB transformers that take 20-80 ms per
sentence on this 2-core machine, on the path to the first audio; the lexicon takes ~20 µs,
and a face only needs the broad feeling of a short spoken sentence.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Expression = Literal["neutral", "happy", "sad", "surprised", "thinking", "angry"]
"""The expressions a face shows; also the emotion tags a reply may carry (``[happy]``)."""
EXPRESSIONS: tuple[str, ...] = get_args(Expression)

# "[happy]", "[ Happy ]", "(happy)"-style brackets are what small models write; a bracketed
# word that is not one of ours stays (it may be speech, e.g. "[sic]").
_TAG = re.compile(r"\s*[\[(]\s*(" + "|".join(EXPRESSIONS) + r")\s*[\])]\s*", re.IGNORECASE)
# A tag cut at a chunk boundary ("[hap"): held back until the rest arrives.
_PARTIAL_TAG = re.compile(r"[\[(][a-zA-Z ]{0,10}$")


def strip_tags(text: str) -> tuple[str, list[tuple[int, str]]]:
    """``text`` without emotion tags, and (index of the word after the tag, emotion) pairs.

    A tag at the end of the text points past its last word (index = number of words).
    """
    cues: list[tuple[int, str]] = []
    out: list[str] = []
    pos = 0
    for m in _TAG.finditer(text):
        out.append(text[pos : m.start()])
        before = "".join(out)
        cues.append((len(before.split()), m.group(1).lower()))
        out.append(" ")
        pos = m.end()
    out.append(text[pos:])
    clean = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s+", " ", "".join(out))).strip()
    return clean, cues


def partial_tag_at_end(text: str) -> int:
    """Where a tag that may still be arriving starts in ``text``; ``len(text)`` if none."""
    m = _PARTIAL_TAG.search(text)
    if m and any(e.startswith(m.group()[1:].strip().lower()) for e in EXPRESSIONS):
        return m.start()
    return len(text)


_LEXICON: dict[str, tuple[str, float]] = {}
for _emotion, _weight, _words in (
    (
        "happy",
        1.0,
        "glad happy great wonderful lovely delighted love enjoy enjoyed fantastic awesome "
        "excellent congratulations congrats yay hooray nice fun pleased welcome haha thanks "
        "thank grand splendid cheers brilliant perfect smile exciting excited",
    ),
    (
        "sad",
        1.0,
        "sorry sad unfortunately sadly miss missed lost loss hurt hurts painful cry tears "
        "lonely heartbroken grief afraid worried regret condolences tough awful terrible",
    ),
    (
        "surprised",
        1.0,
        "wow whoa really oh amazing incredible unbelievable surprising surprised astonishing "
        "goodness gosh blimey wait seriously imagine",
    ),
    (
        "thinking",
        0.8,
        "hmm hm think thinking perhaps maybe wonder wondering consider suppose guess possibly "
        "let's depends probably curious ponder",
    ),
    (
        "angry",
        1.0,
        "angry furious annoyed annoying hate outrageous ridiculous unacceptable mad rude "
        "nonsense blast confound scoundrel",
    ),
):
    for _w in _words.split():
        _LEXICON[_w] = (_emotion, _weight)

_NEGATIONS = {"not", "no", "never", "don't", "isn't", "wasn't", "can't", "won't", "hardly"}
_WORD = re.compile(r"[a-z']+")
# Below this the reply reads as neutral and the face stays at rest.
MIN_SCORE = 0.9


def classify(text: str) -> tuple[str, float] | None:
    """The feeling a short spoken text shows, with a strength in 0..1; None when neutral.

    Counts lexicon words (a negation just before one cancels it: "not happy" is no joy),
    then lets "!" strengthen the leading feeling and a "?" after "really/oh/wow" read as
    surprise.
    """
    words = _WORD.findall(text.lower())
    scores: dict[str, float] = {}
    for i, word in enumerate(words):
        hit = _LEXICON.get(word)
        if hit is None:
            continue
        if any(w in _NEGATIONS for w in words[max(0, i - 2) : i]):
            continue
        emotion, weight = hit
        scores[emotion] = scores.get(emotion, 0.0) + weight
    if not scores:
        return None
    exclaims = text.count("!")
    if exclaims:
        top = max(scores, key=lambda e: scores[e])
        scores[top] += 0.5 * min(exclaims, 2)
    if "?" in text and "surprised" in scores:
        scores["surprised"] += 0.5
    emotion = max(scores, key=lambda e: scores[e])
    score = scores[emotion]
    if score < MIN_SCORE:
        return None
    return emotion, min(1.0, 0.5 + score / 4)
