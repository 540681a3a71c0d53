"""Mouth shapes from Piper's phonemes: espeak-ng IPA to 14 viseme classes, timed on the audio.

Piper phonemizes with espeak-ng and, asked for alignments, reports how many audio samples
each phoneme produced (``AudioChunk.phoneme_alignments``). Those durations are the voice's
own, so the mouth moves with the sound rather than with an estimate. Without alignments (a
voice whose model cannot be patched) the phonemes are spread evenly over the chunk.

The classes follow the usual animation set (Preston Blair / Oculus visemes), merged where
the lips look alike:

=======  ==============================  =======  ==========================
rest     silence, pauses, punctuation    AA       a ɑ æ ʌ ɐ (wide open)
MBP      m b p (lips pressed)            E        ɛ e ə (spread, mid-open)
FV       f v (lower lip to teeth)        I        i ɪ j (spread, narrow)
TH       θ ð (tongue between teeth)      O        o ɔ ɒ (rounded, open)
L        l n t d (tongue tip up)         U        u ʊ w (small, round)
S        s z (teeth nearly closed)       R        ɹ ɚ ɝ
CH       ʃ ʒ (lips forward)              KG       k ɡ ŋ h (open, generic)
=======  ==============================  =======  ==========================

The VRM renderer folds these into its five mouth expressions (``VRM_MOUTH``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VISEMES = ("rest", "MBP", "FV", "TH", "L", "S", "CH", "R", "KG", "AA", "E", "I", "O", "U")

_CLASSES: dict[str, str] = {}
for _viseme, _phonemes in {
    "MBP": "mbpɱ",
    "FV": "fv",
    "TH": "θð",
    "L": "lɫntdɾɬɲ",
    "S": "szɕʑ",
    "CH": "ʃʒ",
    "R": "ɹrɚɝɻʁ",
    "KG": "kgɡŋhxɣqʔç",
    "AA": "aɑæʌɐɶ",
    "E": "ɛeəɜœø",
    "I": "iɪjyɨᵻ",
    "O": "oɔɒ",
    "U": "uʊwʉɯɵ",
}.items():
    for _p in _phonemes:
        _CLASSES[_p] = _viseme

# Piper's sentence bounds, espeak's pauses and punctuation: the mouth rests.
_PAUSES = set('^$_.,;:!?¡¿—…"()-')
# Marks that belong to a neighbouring sound: stress goes with the syllable after it, length
# and other diacritics with the sound before.
_STRESS = set("ˈˌ")
_WORD_GAP = " "
# A gap between words shorter than this is coarticulation, not a pause: the lips don't close.
MIN_PAUSE_S = 0.08
# Shapes shorter than this are merged into the one before: the eye cannot see them, and the
# page would spend frames easing towards a shape it never reaches.
MIN_SHAPE_S = 0.02

# The VRM's mouth expressions, from the classes (three-vrm names; VRM 0.x a i u e o).
VRM_MOUTH: dict[str, dict[str, float]] = {
    "rest": {},
    "MBP": {},
    "FV": {"ih": 0.2},
    "TH": {"ih": 0.3, "aa": 0.1},
    "L": {"ih": 0.3, "aa": 0.2},
    "S": {"ih": 0.35},
    "CH": {"ou": 0.5},
    "R": {"ou": 0.35, "aa": 0.1},
    "KG": {"aa": 0.4},
    "AA": {"aa": 1.0},
    "E": {"ee": 0.8, "aa": 0.2},
    "I": {"ih": 0.9},
    "O": {"oh": 1.0},
    "U": {"ou": 1.0},
}


@dataclass(frozen=True)
class Phone:
    """One phoneme and how long the voice took to say it."""

    symbol: str
    seconds: float


def viseme_of(symbol: str) -> str | None:
    """The class of one espeak phoneme; "rest" for a pause; None for a mark or a word gap."""
    if symbol in _PAUSES:
        return "rest"
    if symbol in _STRESS or symbol == _WORD_GAP:
        return None
    return _CLASSES.get(symbol)


def phones_from_alignments(alignments: Iterable, sample_rate: int) -> list[Phone]:
    """Piper's ``PhonemeAlignment`` list as phones with durations in seconds."""
    return [Phone(a.phoneme, int(a.num_samples) / sample_rate) for a in alignments]


def phones_spread(phonemes: Sequence[str], seconds: float) -> list[Phone]:
    """Phonemes without alignments: an even share of the audio each (marks take none)."""
    timed = [p for p in phonemes if p not in _STRESS and p != "ː"]
    share = seconds / max(1, len(timed))
    return [Phone(p, share if p in timed else 0.0) for p in phonemes]


def viseme_track(phones: Sequence[Phone]) -> list[tuple[int, str]]:
    """(start ms, viseme) for the chunk these phones made, from 0, ending with "rest".

    Consecutive equal shapes are one; a word gap becomes a rest only when it is a pause.
    """
    # First give each mark's time to the sound it belongs to.
    slots: list[list] = []  # [viseme, seconds]
    carry = 0.0  # stress: time for the next sound
    for phone in phones:
        viseme = viseme_of(phone.symbol)
        if phone.symbol in _STRESS:
            carry += phone.seconds
        elif phone.symbol == _WORD_GAP:
            if phone.seconds >= MIN_PAUSE_S:
                slots.append(["rest", phone.seconds + carry])
                carry = 0.0
            elif slots:
                slots[-1][1] += phone.seconds
            else:
                carry += phone.seconds
        elif viseme is None:  # length mark or an unknown symbol: part of the sound before
            if slots:
                slots[-1][1] += phone.seconds
            else:
                carry += phone.seconds
        else:
            slots.append([viseme, phone.seconds + carry])
            carry = 0.0
    if carry and slots:
        slots[-1][1] += carry
    # Then merge: equal neighbours, and shapes too short to see.
    merged: list[list] = []
    for viseme, seconds in slots:
        if merged and (merged[-1][0] == viseme or seconds < MIN_SHAPE_S):
            merged[-1][1] += seconds
        else:
            merged.append([viseme, seconds])
    track: list[tuple[int, str]] = []
    elapsed = 0.0
    for viseme, seconds in merged:
        if not track or track[-1][1] != viseme:
            track.append((round(elapsed * 1000), viseme))
        elapsed += seconds
    if not track or track[-1][1] != "rest":
        track.append((round(elapsed * 1000), "rest"))
    return track


def word_starts(phones: Sequence[Phone]) -> list[float]:
    """When each spoken word starts, in seconds from the chunk's start, from its phones.

    A word is a run of sounds between espeak's word gaps and pauses. Used to time words (and
    the expressions tied to them) by the voice's own durations.
    """
    starts: list[float] = []
    elapsed = 0.0
    in_word = False
    for phone in phones:
        sound = phone.symbol in _CLASSES or phone.symbol in _STRESS
        if sound and not in_word:
            starts.append(elapsed)
        if phone.symbol == _WORD_GAP or phone.symbol in _PAUSES:
            in_word = False
        elif sound:
            in_word = True
        elapsed += phone.seconds
    return starts
